"""A Procfile (honcho, foreman) as a devstack.yaml: the same processes, ports and env.

honcho parses the Procfile and assigns the ports, so a converted stack gets exactly
what `honcho start` would have given it. honcho skips lines it cannot read without a
word; here each one becomes a warning with its line number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from devstack.core.errors import Location, Problem

HONCHO_BASE_PORT = 5000  # honcho's and foreman's default: 5000, 5100, 5200, ...
_USES_PORT = re.compile(r"\$(PORT\b|\{PORT[}:])")

HEADER = """\
# devstack.yaml, converted from {procfile} by `devstack init`.
# honcho and foreman pass every variable of the shell and .env to every process, and
# so does env_mode: loose. Strict mode (the default) passes each service only what it
# lists under `env:` and what its own .env files define, and `devstack doctor` then
# tells you about a variable that does not reach a service.
"""


@dataclass(frozen=True)
class Conversion:
    """The devstack.yaml text for a Procfile, and what could not be taken over."""

    text: str
    services: list[str]
    problems: list[Problem] = field(default_factory=list)


def convert(procfile_text: str, procfile_name: str = "Procfile") -> Conversion:
    """devstack.yaml for `procfile_text`; `PORT` as honcho gives it, where a command uses it."""
    import yaml
    from honcho.environ import expand_processes, parse_procfile

    lines, problems = _readable_lines(procfile_text, procfile_name)
    processes = dict(parse_procfile("\n".join(lines)).processes)
    if not processes:
        problems.append(
            Problem(
                f"{procfile_name} defines no process",
                Location(procfile_name),
                "each line reads `name: command`",
            )
        )
        return Conversion("", [], problems)
    ports = {
        params.name.rsplit(".", 1)[0]: int(params.env["PORT"])
        for params in expand_processes(processes, port=HONCHO_BASE_PORT)
    }
    services: dict[str, dict[str, object]] = {}
    for name, command in processes.items():
        service: dict[str, object] = {"cmd": command}
        if _USES_PORT.search(command):
            service["port"] = ports[name]
        services[name] = service
    body = yaml.safe_dump({"env_mode": "loose", "services": services}, sort_keys=False, width=100)
    return Conversion(HEADER.format(procfile=procfile_name) + body, list(services), problems)


def _readable_lines(text: str, procfile_name: str) -> tuple[list[str], list[Problem]]:
    """The process lines for honcho's parser, which skips any other line without a word
    and fails on a name given twice; a warning, in line order, for each of those."""
    from honcho.environ import PROCFILE_LINE

    first_at: dict[str, int] = {}
    kept: list[str] = []
    problems: list[Problem] = []
    for number, line in enumerate(text.splitlines(), 1):
        match = PROCFILE_LINE.match(line)
        if match is None:
            if line.strip() and not line.lstrip().startswith("#"):
                problems.append(
                    Problem(
                        f"not a process line, left out: {line.strip()!r}",
                        Location(procfile_name, number),
                        "a process line reads `name: command` (name: letters, digits, _ and -)",
                        severity="warning",
                        code="procfile-line",
                    )
                )
        elif match.group(1) in first_at:
            problems.append(
                Problem(
                    f"process {match.group(1)!r} is defined again (first at line "
                    f"{first_at[match.group(1)]}); this line is left out",
                    Location(procfile_name, number),
                    "give each process its own name",
                    severity="warning",
                    code="procfile-duplicate",
                )
            )
        else:
            first_at[match.group(1)] = number
            kept.append(line)
    return kept, problems
