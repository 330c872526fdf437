"""Settings for the whole suite."""

from __future__ import annotations

import os

from hypothesis import settings

# In CI every hypothesis test tries the same inputs on every run: a red CI stops a landing,
# so it must not turn red by the luck of a seed. Run locally, without CI set, the tests
# draw fresh inputs each time and go on finding new cases (as one did in scripts.py).
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
