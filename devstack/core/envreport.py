"""What `devstack env` shows: a service's variables, one variable's story, a diff.

Plain functions from a resolved `ProjectEnv` to rows, text or JSON-ready dicts; every
value goes through `secrets.masked` (with the secrets it was built from) unless the user
asked to reveal it. The listing and the story show devstack's own layer (`as_spawned`:
"why does my service see FORCE_COLOR=1?"); `--format` and `--diff` do not.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass

from devstack.core.envmodel import ProjectEnv, ServiceEnv, Source, Variable
from devstack.core.envresolve import admission, as_spawned, own_variable
from devstack.core.errors import closest_names
from devstack.core.model import Project
from devstack.core.secrets import is_secret, masked

_SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class Shown:
    """How values are shown: masked (the default) or revealed."""

    project: Project
    reveal: bool = False

    def value(self, name: str, value: str) -> str:
        """A value as such (a value as written, a live one): secret by name or value."""
        return masked(name, value, self.project.vars, self.reveal)

    def source(self, name: str, source: Source) -> str:
        """A layer's value for `name`, also masked where it holds a secret it interpolated."""
        return masked(name, source.value, self.project.vars, self.reveal, source.derived)


def shown_variables(project: Project, service_env: ServiceEnv) -> dict[str, Variable]:
    """What the listing and the story show: the variables as `up` spawns the service."""
    return as_spawned(project, service_env)


def variable_rows(service_env: ServiceEnv, shown: Shown) -> list[tuple[str, str, str]]:
    """(name, shown value, source) for every variable the service gets, by name."""
    variables = shown_variables(shown.project, service_env)
    return [
        (name, shown.source(name, variable.source), variable.source.label)
        for name, variable in sorted(variables.items())
    ]


def variables_json(service_env: ServiceEnv, shown: Shown) -> dict[str, object]:
    variables = shown_variables(shown.project, service_env)
    return {
        "service": service_env.name,
        "variables": [
            {
                "name": name,
                "value": shown.source(name, v.source),
                "secret": is_secret(name, shown.project.vars, v.value, v.source.derived),
                "source": v.source.label,
                "kind": v.source.kind,
                "passed": _passed(shown.project, service_env.name, name, v.source),
                "shadowed": [
                    {"source": s.label, "value": shown.source(name, s)} for s in v.shadowed
                ],
            }
            for name, v in sorted(variables.items())
        ],
        "dropped": [
            {"name": name, "reason": d.reason, "sources": [s.label for s in d.sources]}
            for name, d in sorted(service_env.dropped.items())
        ],
    }


def _passed(project: Project, service: str, name: str, source: Source) -> str | None:
    """Why strict mode let a shell or root-file value through (None for other layers)."""
    if source.kind not in ("shell", "root-file", "package-manager"):
        return None
    return admission(project, project.services[service]).why_admitted(name)


def exportable(service_env: ServiceEnv, shown: Shown) -> tuple[dict[str, str], list[str]]:
    """(the variables to write for reuse, the names left out). Without --reveal a
    masked placeholder would be written as if it were the value (issue 11 §4), so
    every value with a hidden part is left out (one built from a secret too); so is a
    name no shell can set. `values` holds no devstack layer: a shell that sources this
    file is not one of `up`'s processes, and a run's markers would make the next `up`
    stop what it starts as its own."""
    written, left_out = {}, []
    masking = service_env.masking(shown.project.vars)
    for name, value in sorted(service_env.values.items()):
        hidden = not shown.reveal and masking.has_hidden_part(name, value)
        if hidden or not _SHELL_NAME.match(name):
            left_out.append(name)
        else:
            written[name] = value
    return written, left_out


def as_dotenv(values: dict[str, str]) -> str:
    """One `NAME="value"` per line, read back the same by python-dotenv and devstack.

    A value with `$` is single-quoted, so neither reader expands `${...}` in it
    (python-dotenv only without interpolation: it has no escape for `${`)."""
    lines = []
    for name, value in values.items():
        if "$" in value:
            lines.append(f"{name}='" + value.replace("\\", "\\\\").replace("'", "\\'") + "'")
        else:
            escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
            lines.append(f'{name}="{escaped}"')
    return "".join(line + "\n" for line in lines)


def as_shell(values: dict[str, str]) -> str:
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in values.items())


def left_out_note(names: list[str]) -> str | None:
    """What stderr says about the names `exportable` left out, and how to include them."""
    if not names:
        return None
    hidden = [n for n in names if _SHELL_NAME.match(n)]
    invalid = [n for n in names if not _SHELL_NAME.match(n)]
    parts = []
    if hidden:
        parts.append(
            f"left out {len(hidden)} secret value{'s' if len(hidden) != 1 else ''}"
            f" ({', '.join(hidden)}); add --reveal to write them"
        )
    if invalid:
        parts.append(f"left out {', '.join(invalid)}: not a name a shell can set")
    return "devstack env: " + "; ".join(parts)


def variable_story(project: Project, env: ProjectEnv, service: str, name: str, shown: Shown) -> str:
    """Every layer that defines `name` for `service`, which wins and why, or the near misses."""
    service_env = env.services[service]
    lines = [f"{name} for {service}:"]
    variable = shown_variables(project, service_env).get(name)
    if variable is not None:
        lines.append(f"  value   {shown.source(name, variable.source)}")
        lines.append(f"  from    {variable.source.label}  ({_why_wins(name, variable.source)})")
        if variable.source.kind in ("shell", "root-file", "package-manager"):
            lines.append(
                f"  passed  {admission(project, project.services[service]).why_admitted(name)}"
            )
        lines += _uses(name, variable.source, shown)
        for source in variable.shadowed:
            lines.append(f"  shadows {source.label}: {shown.source(name, source)}")
        lines += _own_note(name, variable)
        if service in env.loaders and variable.source.kind == "framework-file":
            loader, refs = env.loaders[service]
            order = ", ".join(ref.display for ref in reversed(refs))
            lines.append(f"  {loader.name} reads {order} itself, first wins, never over the shell")
    dropped = service_env.dropped.get(name)
    rules = admission(project, project.services[service])
    shell_value = env.shell.get(name)
    if dropped is not None:
        lines.append(f"  not passed: {dropped.reason}")
        for source in dropped.sources:
            lines.append(f"    defined at {source.label}: {shown.source(name, source)}")
    if shell_value is not None and not rules.admits(name):
        lines.append(f"  your shell has {name} too, but {rules.reason_dropped(name)}")
    if (dropped is not None or shell_value is not None) and not rules.admits(name):
        lines.append("  to pass it: " + _how_to_pass(project, service, name))
    if variable is None and dropped is None and shell_value is None:
        lines.append("  not defined in any env file, the shell or devstack.yaml")
        lines += _listed_in_examples(project, service, name)
        lines += _near_misses(project, env, service, name)
    return "\n".join(lines)


def _uses(name: str, source: Source, shown: Shown) -> list[str]:
    """The value as written (`API_URL = http://localhost:${PORT}`) and each name it used."""
    if source.written is None:
        return []
    lines = [f"  written {name} = {shown.value(name, source.written)}"]
    for use in source.uses:
        if use.source is None:
            lines.append(f"  uses    {use.name}: not defined")
            continue
        value = shown.source(use.name, use.source)
        lines.append(f"  uses    {use.name} = {value}  (from {use.source.label})")
    return lines


def _own_note(name: str, variable: Variable) -> list[str]:
    """For devstack's own variables: why devstack sets it, and whose value wins."""
    own = own_variable(name)
    if own is None:
        return []
    mine = variable.source.kind == "devstack"
    if own.wins:
        whose = "devstack's value beats every layer" + (", yours too" if variable.shadowed else "")
    else:
        whose = "set only where no layer does" + ("" if mine else ": yours wins")
    lines = [f"  devstack sets {name} when `up` spawns a service ({own.why}); {whose}"]
    lines.append("  `run`, `export` and `env --format` leave devstack's value out")
    return lines


def _why_wins(name: str, source: Source) -> str:
    if source.kind == "devstack":
        own = own_variable(name)
        return "the run's marker, above every layer" if own and own.wins else "no layer sets it"
    return {
        "cli": "--env beats everything",
        "config": "set in devstack.yaml, above env files and the shell",
        "port": "`port:` sets PORT",
        "shell": "the shell beats env files",
        "service-file": "the service's own env file beats the root env files",
        "root-file": "root env file",
        "framework-file": "read in the framework's own order; the shell and devstack.yaml beat it",
        "package-manager": "as the package manager runs scripts",
    }[source.kind]


def _how_to_pass(project: Project, service: str, name: str) -> str:
    spec = project.services[service]
    rules = [r for r in (*project.env, *spec.env) if r.kind == "negate"]
    for rule in rules:
        if rule.name == name:
            return f"remove '!{name}' at {rule.location}"
    if project.env:
        return f"add {name} to `env` at {project.env[0].location} (all services)"
    return f"add `env: [{name}]` to {service} at {spec.location}"


def _listed_in_examples(project: Project, service: str, name: str) -> list[str]:
    """`listed in apps/web/.env.example:6, not set` (issue 12 item 5)."""
    from devstack.core.examples import examples_in

    folders = dict.fromkeys((project.services[service].cwd, project.root))
    return [
        f"  listed in {example.display}:{example.names[name]}, not set"
        + (
            f" (add it to {example.target_display})"
            if example.target.is_file()
            else f" (cp {example.display} {example.target_display}, then fill it in)"
        )
        for folder in folders
        for example in examples_in(folder, project.display_path(folder))
        if name in example.names
    ]


def _near_misses(project: Project, env: ProjectEnv, service: str, name: str) -> list[str]:
    known = set(env.services[service].values) | set(env.services[service].dropped)
    for file in env.files.values():
        known |= file.names()
    lines = []
    close = closest_names(name, known)
    if close:
        lines.append(f"  did you mean {', '.join(close)}?")
    elsewhere = [s for s, e in env.services.items() if name in e.values and s != service]
    if elsewhere:
        lines.append(f"  {', '.join(elsewhere)} get{'s' if len(elsewhere) == 1 else ''} it")
    return lines


@dataclass(frozen=True)
class EnvDiff:
    differing: list[tuple[str, str, str]]  # name, left shown, right shown
    only_left: list[str]
    only_right: list[str]


def diff_services(env: ProjectEnv, left: str, right: str, shown: Shown) -> EnvDiff:
    """The layers' values only: devstack's own (DEVSTACK_SERVICE) differ by design."""
    a, b = env.services[left].values, env.services[right].values
    masks = [env.services[side].masking(shown.project.vars) for side in (left, right)]
    differing = [
        (
            name,
            masks[0].masked(name, a[name], shown.reveal),
            masks[1].masked(name, b[name], shown.reveal),
        )
        for name in sorted(a.keys() & b.keys())
        if a[name] != b[name]
    ]
    return EnvDiff(differing, sorted(a.keys() - b.keys()), sorted(b.keys() - a.keys()))


def diff_text(diff: EnvDiff, left: str, right: str) -> str:
    if not (diff.differing or diff.only_left or diff.only_right):
        return f"{left} and {right} get the same environment"
    lines = []
    if diff.differing:
        lines.append(f"different values ({left} | {right}):")
        width = max(len(name) for name, _, _ in diff.differing)
        for name, a, b in diff.differing:
            lines.append(f"  {name.ljust(width)}  {a}  |  {b}")
    for side, names in ((left, diff.only_left), (right, diff.only_right)):
        if names:
            lines.append(f"only {side}: {', '.join(names)}")
    return "\n".join(lines)


def diff_json(diff: EnvDiff, left: str, right: str) -> str:
    return json.dumps(
        {
            "left": left,
            "right": right,
            "different": [{"name": n, left: a, right: b} for n, a, b in diff.differing],
            f"only_{left}": diff.only_left,
            f"only_{right}": diff.only_right,
        },
        indent=2,
    )
