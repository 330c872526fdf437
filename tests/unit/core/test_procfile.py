"""A Procfile becomes a devstack.yaml with honcho's processes and ports."""

from __future__ import annotations

import yaml

from devstack.core.procfile import convert

PROCFILE = """\
# comments and blank lines are fine

web: gunicorn app:app --bind 0.0.0.0:$PORT
worker: python worker.py
web: a second web
release: ./manage.py migrate && echo "done: yes"
not a process line
api: node server.js --port ${PORT:-3000}
"""


def test_processes_in_order_with_honchos_ports_where_commands_use_them() -> None:
    conversion = convert(PROCFILE)
    config = yaml.safe_load(conversion.text)
    assert config["env_mode"] == "loose"  # honcho passes everything
    assert config["services"] == {
        "web": {"cmd": "gunicorn app:app --bind 0.0.0.0:$PORT", "port": 5000},
        "worker": {"cmd": "python worker.py"},
        "release": {"cmd": './manage.py migrate && echo "done: yes"'},
        "api": {"cmd": "node server.js --port ${PORT:-3000}", "port": 5300},
    }
    assert conversion.services == ["web", "worker", "release", "api"]
    assert conversion.text.startswith("# devstack.yaml, converted from Procfile")


def test_what_honcho_would_skip_is_reported_with_its_line() -> None:
    problems = convert(PROCFILE).problems
    assert [(p.severity, str(p.location), p.code) for p in problems] == [
        ("warning", "Procfile:5", "procfile-duplicate"),
        ("warning", "Procfile:7", "procfile-line"),
    ]
    assert "first at line 3" in problems[0].message


def test_an_empty_procfile_is_an_error() -> None:
    conversion = convert("# nothing\n", "deploy/Procfile")
    assert conversion.text == ""
    [problem] = conversion.problems
    assert problem.severity == "error" and "deploy/Procfile defines no process" in problem.message
