"""Benchmarks of `devstack up` side by side with honcho and friends.

Run with `python -m bench` (or `make bench`); see BENCHMARKS.md for the figures and
`python -m bench --help` for the options. Not part of the test suite.

Every scenario generates its services in a temporary directory, as a devstack.yaml
and the equivalent Procfile / command lines for the peers, runs each tool the same
way (stdout piped to the harness, own session, one environment marker), measures,
and ends every process it started by pid or process group.
"""
