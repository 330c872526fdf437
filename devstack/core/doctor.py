"""Every check of a project at once: a list of problems, errors before warnings.

`devstack doctor` prints them; `devstack up` stops on errors and prints warnings.
Values in messages are masked like everywhere else, so a report about a secret that
differs between two services can be pasted into a chat.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

from devstack.core.envmodel import ProjectEnv, Variable
from devstack.core.envresolve import admission
from devstack.core.errors import Location, Problem
from devstack.core.imports import import_without
from devstack.core.model import EnvFileRef, Project, Service, VarDecl
from devstack.core.scripts import service_ports
from devstack.core.secrets import is_secret

# Words a `cmd` string may start with that are not programs to look up on PATH.
SHELL_WORDS = frozenset(
    {
        "cd", ".", "source", "exec", "export", "set", "unset", "trap", "eval", "if", "for",
        "while", "until", "case", "test", "[", "[[", "true", "false", ":", "echo", "printf",
        "read", "wait", "ulimit", "umask", "{", "(",
    }
)  # fmt: skip

PortHolder = Callable[[int], "str | None"]


def diagnose(
    project: Project,
    env: ProjectEnv,
    *,
    check_ports: bool = True,
    port_holder: PortHolder | None = None,
) -> list[Problem]:
    """All problems of `project` with its resolved `env`: errors first, then warnings.

    Only about `project.services`: `up jobs --no-deps` passes just the services it
    starts, and a warning about one it leaves alone is noise (issue 11 §5)."""
    env = narrowed(project, env)
    problems = list(env.problems)
    for decl in project.vars.values():
        problems += _check_declared(project, env, decl)
    problems += _secrets_that_differ(project, env)
    problems += _dropped_everywhere(project, env)
    problems += _shell_overrides(project, env)
    for service in project.services.values():
        problems += _check_service(project, env, service)
    problems += _port_problems(project, check_ports, port_holder)
    problems += _framework_readings(env)
    problems += _cross_file_references(env)
    problems += _example_files(project, env)
    problems += _empty_secrets(project, env)
    problems += _shared_packages(project)
    problems += fd_limit_problems(len(project.services))
    return sorted(problems, key=lambda p: (p.severity != "error", p.location or Location("")))


def narrowed(project: Project, env: ProjectEnv) -> ProjectEnv:
    """`env` narrowed to the project's services and the env files that feed them
    (`up jobs --no-deps` checks only jobs)."""
    if set(env.services) <= set(project.services):
        return env
    loaders = {name: env.loaders[name] for name in project.services if name in env.loaders}
    feeding = {ref.display for ref in project.env_files}
    feeding |= {ref.display for s in project.services.values() for ref in s.env_files}
    feeding |= {ref.display for _, refs in loaders.values() for ref in refs}  # a framework's
    other_files = {f.display for f in env.files.values()} - feeding
    return dataclasses.replace(
        env,
        services={name: e for name, e in env.services.items() if name in project.services},
        loaders=loaders,
        problems=[
            p for p in env.problems if p.location is None or p.location.file not in other_files
        ],
    )


# -- declared vars -------------------------------------------------------------------


def _check_declared(project: Project, env: ProjectEnv, decl: VarDecl) -> Iterator[Problem]:
    name = decl.name
    receivers = {s: e.values[name] for s, e in env.services.items() if name in e.values}
    listed = [s for s in project.services if admission(project, project.services[s]).listed(name)]
    expected = list(decl.same_across) if decl.same_across else listed
    if decl.required:
        missing = [s for s in expected if s not in receivers]
        if missing:
            yield Problem(
                f"{name} is required but {_names(missing)} {_do(missing)} not get it",
                decl.location,
                f"define {name} in .env (or the service's .env)",
                code="required-var",
            )
        elif not receivers:
            yield Problem(
                f"{name} is required but no service receives it",
                decl.location,
                f"define it in .env and list it in `env: [{name}]`",
                code="required-var",
            )
    if decl.pattern:
        for service, value in receivers.items():
            if not re.search(decl.pattern, value):
                shown = env.services[service].masking(project.vars).masked(name, value)
                where = env.services[service].variables[name].source.label
                yield Problem(
                    f"{service}: {name} = {shown} (from {where}) does not match {decl.pattern!r}",
                    decl.location,
                    f"fix the value at {where}",
                    code="pattern",
                )
    if decl.same_across is not None:
        group = decl.same_across or tuple(receivers)
        values = {s: receivers[s] for s in group if s in receivers}
        if len(set(values.values())) > 1:
            yield _differs(project, env, name, values, decl.location, "error", "same-across")


def _differs(
    project: Project,
    env: ProjectEnv,
    name: str,
    values: dict[str, str],
    where: Location | None,
    severity: str,
    code: str,
) -> Problem:
    lines = [
        f"    {service}: {env.services[service].masking(project.vars).masked(name, value)} "
        f"from {env.services[service].variables[name].source.label}"
        for service, value in values.items()
    ]
    # Two services whose values really differ: with a, b equal and c apart, not a and b.
    first = next(iter(values))
    second = next(s for s, v in values.items() if v != values[first])
    return Problem(
        f"{name} differs between {_names(list(values))}:\n" + "\n".join(lines),
        where,
        f"give them the same value; compare with `devstack env --diff {first} {second}`",
        severity=severity,  # type: ignore[arg-type]
        code=code,
    )


def _secrets_that_differ(project: Project, env: ProjectEnv) -> Iterator[Problem]:
    """Undeclared secret-looking names that several services get with different values."""
    by_name: dict[str, dict[str, str]] = defaultdict(dict)
    for service, service_env in env.services.items():
        for name, value in service_env.values.items():
            if is_secret(name, project.vars, value) and name not in project.vars:
                by_name[name][service] = value
    for name, values in sorted(by_name.items()):
        if len(set(values.values())) > 1:
            yield _differs(project, env, name, values, None, "warning", "secret-differs")


# -- env files and the shell -----------------------------------------------------------


def _dropped_everywhere(project: Project, env: ProjectEnv) -> Iterator[Problem]:
    """Names an env file defines that no service receives, one warning per file and
    reason (one per name flooded the screen, issue 11 §5)."""
    received = {name for service_env in env.services.values() for name in service_env.values}
    groups: dict[tuple[str, str], list[tuple[str, Location | None]]] = defaultdict(list)
    seen: set[str] = set()
    for service_env in env.services.values():
        for name, dropped in service_env.dropped.items():
            if name in received or name in seen:
                continue
            seen.add(name)
            where = next((s.location for s in dropped.sources if s.location), None)
            groups[(where.file if where else "", dropped.reason)].append((name, where))
    for (_, reason), found in sorted(groups.items()):
        names = [name for name, _ in found]
        where = min((w for _, w in found if w), default=None)
        if len(names) == 1:
            message = f"{names[0]} is defined here but no service receives it ({reason})"
        else:
            message = (
                f"{len(names)} variables defined in {where.file if where else 'env files'}"
                f" reach no service ({reason}): {_short(', '.join(names), 200)}"
            )
        yield Problem(
            message,
            where,
            _how_to_let_through(project, names),
            severity="warning",
            code="dropped",
        )


def _how_to_let_through(project: Project, names: list[str]) -> str:
    name = names[0] if len(names) == 1 else "them"
    if project.env:
        where = project.env[0].location
        return f"add {name} to `env` at {where} (every service), or to a service's `env`"
    listed = ", ".join(names) if len(names) <= 3 else f"{names[0]}, ..."
    return f"add `env: [{listed}]` to devstack.yaml (every service), or to a service's `env`"


def _shell_overrides(project: Project, env: ProjectEnv) -> Iterator[Problem]:
    overridden: dict[tuple[str, str], list[str]] = defaultdict(list)
    for service, service_env in env.services.items():
        for name, variable in service_env.variables.items():
            if variable.source.kind != "shell":
                continue
            files = [s for s in variable.shadowed if s.kind.endswith("file")]
            if files and files[0].value != variable.value:
                overridden[(name, files[0].label)].append(service)
    for (name, label), services in sorted(overridden.items()):
        yield Problem(
            f"{name} from your shell overrides {label} for {_names(services)}",
            None,
            f"unset {name} in this shell if the file's value is the one you want",
            severity="warning",
            code="shell-override",
        )


# -- services ------------------------------------------------------------------------


def _check_service(project: Project, env: ProjectEnv, service: Service) -> Iterator[Problem]:
    yield from _unspawnable_values(env, service)
    yield from _check_probe(project, env, service)
    cwd = project.display_path(service.cwd) or "."
    if service.cwd.is_file():
        yield Problem(
            f"{service.name}: cwd {cwd} is a file, not a directory",
            service.location,
            f"point cwd at the folder that holds it: {project.display_path(service.cwd.parent)}",
            code="missing-cwd",
        )
        return
    if not service.cwd.is_dir():
        yield Problem(
            f"{service.name}: cwd {cwd} does not exist",
            service.location,
            "create the directory or fix `cwd`",
            code="missing-cwd",
        )
        return
    program = _program(service.cmd)
    if program is not None:
        yield from _check_program(env, service, program, project.root)


def _which(program: str, path: str) -> str | None:
    """shutil.which. shutil is imported without bz2 and lzma, which it imports only to
    know which archive formats it can make: `up` runs this check, and would keep them
    for as long as it runs (issue 16). Nothing in devstack makes archives."""
    import_without("shutil", "bz2", "lzma")
    import shutil

    return shutil.which(program, path=path)


def _check_program(
    env: ProjectEnv, service: Service, program: str, root: Path
) -> Iterator[Problem]:
    """Whether the command's program can be exec'd, with the reason exec would give."""
    # The shell it was resolved from, passed in: the core never reads os.environ.
    values = env.services[service.name].values
    path = _search_path(service, values.get("PATH", env.shell.get("PATH", "")))
    if "/" in program:
        candidate: str | None = str(service.cwd / program)
    else:
        candidate = _which(program, path)
    problem = None
    exists = candidate is not None and os.path.lexists(candidate)
    if isinstance(service.cmd, tuple) and len(service.cmd) == 1 and " " in program and not exists:
        problem = (
            f"cmd is a list holding one whole command line, '{_short(program)}'",
            "a list is exec'd without a shell, so that is one program name; write it as a"
            f' string, cmd: "{_short(program)}", or split it: {_as_list(program)}',
        )
    elif candidate is None or not exists:
        here = service.cwd / program
        hint = "install it, or fix `cmd` (PATH is the service's own PATH)"
        if "/" not in program and here.is_file():
            hint = f"it is in the service's cwd, which is not on PATH: write ./{program}"
        elif "/" not in program and (install := _js_install_hint(service, root)):
            hint = install
        problem = (f"command '{program}' not found", hint)
    elif os.path.isdir(candidate):
        problem = (f"command '{program}' is a directory", "fix `cmd`")
    elif not os.access(candidate, os.X_OK):
        problem = (
            f"'{program}' exists but is not executable",
            f"make it executable (chmod +x {program}), or run it with its interpreter",
        )
    else:
        problem = _shebang_problem(candidate, program)
    if problem:
        message, hint = problem
        yield Problem(
            f"{service.name}: {message}", service.location, hint, code="command-not-found"
        )


def _js_install_hint(service: Service, root: Path) -> str | None:
    """A JS package whose dependencies were never installed: no `node_modules` from its
    cwd up to the repo root, so none of its tools (next, vite, tsc) can be found."""
    from devstack.core.jsworkspace import find_workspace

    if not (service.cwd / "package.json").is_file():
        return None
    root, folder = root.resolve(), service.cwd.resolve()
    for directory in (folder, *folder.parents):
        if (directory / "node_modules").is_dir():
            return None
        if directory == root:
            break
    workspace = find_workspace(root)
    manager = workspace.manager if workspace else "npm"
    return (
        "the JS dependencies are not installed (no node_modules up to the repo root):"
        f" run `{manager} install` at the repo root"
    )


def _shebang_problem(path: str, program: str) -> tuple[str, str] | None:
    """A `#!` line exec cannot follow: CRLF line endings, or an interpreter that is absent."""
    try:
        with open(path, "rb") as file:
            first = file.read(256).split(b"\n", 1)[0]
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    if first.endswith(b"\r"):
        return (
            f"'{program}' has Windows line endings (CRLF): its #! line names"
            " an interpreter ending in \\r, which does not exist",
            f"convert it to LF: sed -i 's/\\r$//' {program} (or dos2unix {program})",
        )
    words = first[2:].decode("utf-8", "replace").split()
    if words and words[0].startswith("/") and not os.path.exists(words[0]):
        return (
            f"the #! line of '{program}' names {words[0]}, which does not exist",
            "install it, or fix the #! line (#!/usr/bin/env NAME finds it on PATH)",
        )
    return None


def _unspawnable_values(env: ProjectEnv, service: Service) -> Iterator[Problem]:
    """NUL bytes and lone surrogates: exec would fail after doctor passed (issue 11)."""
    from devstack.core.config import unspawnable

    for name, variable in env.services[service.name].variables.items():
        why = unspawnable(name) or unspawnable(variable.value)
        if why:
            yield Problem(
                f"{service.name}: {name} (from {variable.source.label}) {why}",
                variable.source.location or service.location,
                "a process environment cannot hold it: remove it from the value",
                code="unspawnable",
            )


def _check_probe(project: Project, env: ProjectEnv, service: Service) -> Iterator[Problem]:
    """The ready target as the probe will use it: interpolated, then parsed."""
    from urllib.parse import urlsplit

    from devstack.core.plan import resolved_probe, shown_probe_target

    if service.ready is None:
        return
    probe, unresolved = resolved_probe(service.ready, env.services[service.name].values)
    where, what = service.ready.location, f"{service.name}: ready.{probe.kind}"
    for phrase in unresolved:
        yield Problem(
            f"{what} {phrase} for {service.name}",
            where,
            f"give {service.name} the variable (`port:` sets PORT), or write ${{NAME:-default}}",
            code="undefined-variable",
        )
    if unresolved:
        return
    masking = env.services[service.name].masking(project.vars)
    try:
        if probe.kind == "http":
            url = urlsplit(probe.target)
            valid = url.scheme in ("http", "https") and bool(url.hostname) and url.port != 0
        elif probe.kind == "tcp":
            valid = bool(re.fullmatch(r"\[?[\w.:-]+\]?:\d{1,5}", probe.target))
            valid = valid and 0 < int(probe.target.rpartition(":")[2]) < 65536
        else:
            return
    except ValueError:
        valid = False
    if not valid:
        example = "http://127.0.0.1:${PORT}/health" if probe.kind == "http" else "127.0.0.1:5432"
        yield Problem(
            f"{what} is not a valid {'URL' if probe.kind == 'http' else 'host:port'}"
            " once interpolated: "
            + shown_probe_target(service.ready, env.services[service.name].values, masking),
            where,
            f"for example: {example}",
            code="invalid-probe",
        )


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _as_list(command: str) -> str:
    try:
        words = shlex.split(command[:_SHLEX_LIMIT])
    except ValueError:
        words = command.split()
    return _short("[" + ", ".join(f'"{word}"' for word in words) + "]")


# Only the first words of a command matter; shlex is quadratic on a long token, so a
# 2 MB cmd took doctor 15 s (issue 11).
_SHLEX_LIMIT = 4096


def _search_path(service: Service, path: str | None) -> str:
    """The service's own PATH as its process searches it: a relative entry (such as
    `node_modules/.bin` from `env:`) is relative to the service's cwd, not doctor's."""
    if path is None:
        path = ""
    return os.pathsep.join(
        str(service.cwd / entry) if entry and not os.path.isabs(entry) else entry
        for entry in path.split(os.pathsep)
    )


def _program(cmd: str | tuple[str, ...]) -> str | None:
    """The program a command runs first, when it can be told without running a shell."""
    if isinstance(cmd, tuple):
        return cmd[0]
    words = _first_words(cmd[:_SHLEX_LIMIT], complete=len(cmd) <= _SHLEX_LIMIT)
    if words is None:
        return None
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
        words.pop(0)  # VAR=value cmd
    if words and words[0] == "exec":
        words.pop(0)
    if not words or words[0] in SHELL_WORDS or any(c in words[0] for c in "$`;&|<>(){}"):
        return None
    return words[0]


def _first_words(text: str, complete: bool) -> list[str] | None:
    """Shell words up to the program's name (past `VAR=value` and `exec`); None when
    they cannot be read (an unclosed quote, or a word cut at the limit)."""
    lexer = shlex.shlex(text, posix=True)
    lexer.whitespace_split = True
    words: list[str] = []
    try:
        while (word := lexer.get_token()) is not None:
            words.append(word)
            if word != "exec" and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", word):
                break
    except ValueError:
        return None
    if not complete and lexer.instream.read(1) == "" and not text[-1:].isspace():
        return None  # the last word read may continue past the limit
    return words


# -- env files a framework reads itself (issue 12 item 4) ----------------------------


def _framework_readings(env: ProjectEnv) -> Iterator[Problem]:
    """Lines of the files a framework reads itself that its JS dotenv grammar reads
    differently from devstack: the app would not get the value `devstack env` shows."""
    from devstack.core.frameworks import js_reading_differs

    readers: dict[tuple[str, bool], list[str]] = defaultdict(list)
    for service in sorted(env.loaders):
        loader, refs = env.loaders[service]
        for ref in refs:
            if loader.name not in readers[(ref.display, loader.expands)]:
                readers[(ref.display, loader.expands)].append(loader.name)
    for (display, expands), names in readers.items():
        env_file = next((f for f in env.files.values() if f.display == display), None)
        if env_file is None or not env_file.exists:
            continue
        try:
            text = env_file.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue  # already reported by envfile
        for found in js_reading_differs(text, expands):
            yield Problem(
                f"{found.name}: {found.why.replace('the framework', ' and '.join(names), 1)}",
                Location(display, found.line),
                found.fix,
                severity="warning",
                code="js-dotenv-differs",
            )


# -- example files and empty secrets (issue 12 item 5) ---------------------------------


def _env_dirs(project: Project, env: ProjectEnv) -> dict[Path, tuple[set[Path], list[str]]]:
    """Each folder env files are read from: the files read there (normalized: `../../.env`
    is the root's) and who reads them. An explicitly listed file is left out: a missing one
    is already an error, whose hint names the example to copy."""
    dirs: dict[Path, tuple[set[Path], list[str]]] = {}
    explicit: set[Path] = set()

    def note(ref: EnvFileRef, services: list[str]) -> None:
        path = Path(os.path.normpath(ref.path))
        reads, readers = dirs.setdefault(path.parent, (set(), []))
        (explicit if ref.explicit else reads).add(path)
        readers.extend(s for s in services if s not in readers)

    for ref in project.env_files:
        note(ref, list(project.services))
    for service in project.services.values():
        framework_refs = env.loaders.get(service.name, (None, ()))[1]
        for ref in (*service.env_files, *framework_refs):
            note(ref, [service.name])
    for reads, _ in dirs.values():
        reads -= explicit
    return dirs


def _example_files(project: Project, env: ProjectEnv) -> Iterator[Problem]:
    """A missing env file whose example exists; names an example lists that are set nowhere."""
    from devstack.core.examples import examples_in

    files = {Path(os.path.normpath(path)): env_file for path, env_file in env.files.items()}
    for directory, (reads, readers) in _env_dirs(project, env).items():
        for example in examples_in(directory, project.display_path(directory)):
            if example.target not in reads:
                continue  # e.g. .env.production.example: no dev service reads it
            present = [
                path
                for path in reads
                if path.name.startswith(example.target.name) and path.is_file()
            ]
            if not present:
                yield Problem(
                    f"{example.target_display} does not exist, but {example.display} does",
                    Location(example.display),
                    f"cp {example.display} {example.target_display}, then fill in its values",
                    code="missing-env-file",
                )
                continue
            defined = {name for path in present if path in files for name in files[path].names()}
            missing = [
                (name, line)
                for name, line in example.names.items()
                if name not in defined and not any(name in env.services[s].values for s in readers)
            ]
            if missing:
                shown = ", ".join(f"{name} (line {line})" for name, line in missing)
                yield Problem(
                    f"{example.display} lists {shown}, set in no env file here and received by"
                    f" none of {_names(readers)}",
                    Location(example.display, missing[0][1]),
                    f"add {'it' if len(missing) == 1 else 'them'} to {example.target_display}",
                    severity="warning",
                    code="example-not-set",
                )


def _empty_secrets(project: Project, env: ProjectEnv) -> Iterator[Problem]:
    """A secret-looking or `secret: true` variable that a service gets empty."""
    empty: dict[tuple[str, str], tuple[Location | None, list[str]]] = {}
    for service, service_env in env.services.items():
        for name, variable in service_env.variables.items():
            if variable.value == "" and is_secret(name, project.vars):
                key = (name, variable.source.label)
                empty.setdefault(key, (variable.source.location, []))[1].append(service)
    for (name, label), (where, services) in sorted(empty.items()):
        yield Problem(
            f"{name} is empty for {_names(services)}, and it looks like a secret",
            where,
            f"set its value at {label}",
            severity="warning",
            code="empty-secret",
        )


def _shared_packages(project: Project) -> Iterator[Problem]:
    from devstack.core.packages import shared_packages

    for package, services in shared_packages(project).items():
        later = project.services[services[1]]
        yield Problem(
            f"{_names(services)} all have the package name {package}, and none depends on"
            f" the others; it means {services[0]}",
            later.location,
            f"give {services[1]} its own `package:` name",
            severity="warning",
            code="package-shared",
        )


_REFERENCE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")
_IN_ENVIRONMENT = ("shell", "config", "cli", "port")


def _cross_file_references(env: ProjectEnv) -> Iterator[Problem]:
    """@next/env expands each file on its own, against the environment and that file
    only: `${BASE}` in .env.local never sees a BASE that only .env defines, while
    devstack's layers do. Said once per line, whichever services read the file."""
    said: set[Location] = set()
    for service in sorted(env.loaders):
        loader, refs = env.loaders[service]
        if not loader.expands_per_file:
            continue
        variables = env.services[service].variables
        for ref in refs:
            env_file = env.files.get(ref.path)
            earlier: set[str] = set()  # names the same file defines above: dotenv-expand sees them
            for entry in env_file.entries if env_file else ():
                borrowed = [
                    name
                    for name in (_REFERENCE.findall(entry.value) if entry.interpolate else ())
                    if name not in earlier and _from_another_file(variables.get(name), ref.display)
                ]
                earlier.add(entry.name)
                if borrowed and entry.location not in said:
                    said.add(entry.location)
                    yield Problem(
                        f"{entry.name}: {loader.name} expands {ref.display} on its own, so"
                        f" ${{{borrowed[0]}}} cannot see the {borrowed[0]} that devstack takes"
                        " from another env file",
                        entry.location,
                        f"define {borrowed[0]} in {ref.display} too, or in devstack.yaml `env`",
                        severity="warning",
                        code="js-dotenv-differs",
                    )


def _from_another_file(variable: Variable | None, display: str) -> bool:
    """Whether devstack's value comes from a framework file other than `display` (and not
    from the environment, which the framework's loader sees too)."""
    if variable is None or variable.source.kind in _IN_ENVIRONMENT:
        return False
    return any(
        source.kind == "framework-file" and source.location and source.location.file != display
        for source in (variable.source, *variable.shadowed)
    )


# -- ports ---------------------------------------------------------------------------


def _port_problems(
    project: Project, check_ports: bool, port_holder: PortHolder | None
) -> Iterator[Problem]:
    owners: dict[int, list[Service]] = defaultdict(list)
    for service in project.services.values():
        for port in service_ports(service.port, service.cmd):  # `-p 3000` too (issue 12 item 6)
            owners[port].append(service)
    for port, services in owners.items():
        if len(services) > 1:
            yield Problem(
                f"port {port} is given to {_names([s.name for s in services])}",
                services[1].location,
                "give each service its own port (in `port:` or in its cmd)",
                code="port-duplicate",
            )
    if not check_ports or not owners:
        return
    if port_holder is None:
        from devstack.runtime.ports import port_holder as default_holder

        port_holder = default_holder
    for port, services in owners.items():
        holder = port_holder(port)
        if holder:
            yield Problem(
                f"{services[0].name}: port {port} is in use by {holder}",
                services[0].location,
                "stop that process, or change the service's port (`port:` or its cmd)",
                code="port-in-use",
            )


# -- the open-file limit (issue 11 §2) --------------------------------------------------

# The soft limit `up` raises itself to, where the hard limit allows: each service
# takes a few descriptors, each control connection one. macOS's default soft limit
# is 256; its kernel refuses more than OPEN_MAX (10240) per process.
FD_LIMIT = 10_240
FDS_PER_SERVICE = 6  # in devstack: its stdout and stderr pipes, a pidfd, its log, spare
FDS_BASE = 64  # devstack's own: the control socket and clients, the watcher, the terminal


def fd_limit_problems(services: int, hard_limit: int | None = None) -> list[Problem]:
    """A warning when the open-file limit `up` can raise itself to (the hard limit)
    is too low for this many services: some would fail to start with EMFILE."""
    if hard_limit is None:
        import resource

        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        hard_limit = FD_LIMIT if hard == resource.RLIM_INFINITY else min(hard, FD_LIMIT)
    needed = FDS_BASE + FDS_PER_SERVICE * services
    if hard_limit >= needed:
        return []
    return [
        Problem(
            f"the open-file limit is {hard_limit}, too low for {services} services"
            f" (devstack up needs about {needed})",
            None,
            f"raise it before devstack up: `ulimit -n {max(needed * 2, 1024)}`"
            " (or the hard limit in /etc/security/limits.conf, launchctl limit on macOS)",
            severity="warning",
            code="fd-limit",
        )
    ]


# -- the platform (issue 15) -----------------------------------------------------------


def platform_note(system: str, caveat: str) -> str | None:
    """What doctor tells a user once (one note, not a problem of the stack) where a
    guarantee of devstack is weaker than on Linux: macOS, or DEVSTACK_PORTABLE=1."""
    if not caveat:  # Linux: nothing weaker
        return None
    where = "macOS" if system == "darwin" else "this platform"
    if system.startswith("linux"):
        where = "DEVSTACK_PORTABLE=1 (macOS's code paths)"
    return (
        f"note: on {where}, {caveat}\n"
        "  hint: run such a daemon in the foreground (most have a flag for it), or keep"
        " DEVSTACK_RUN_ID in its environment; README: Platforms"
    )


def _names(names: list[str]) -> str:
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]


def _do(names: list[str]) -> str:
    return "do" if len(names) > 1 else "does"
