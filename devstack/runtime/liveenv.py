"""`devstack env SERVICE --live`: the environment a running service really has,
compared with the one devstack gave it.

The running `up` tells (through the control socket) the environment it spawned the
service with and the pid. Below that pid a wrapper (`sh -c`, `npm run`) may run the
real program; the leaf of the single-child chain is read with psutil. What the diff
shows is the environment that program was started with: a wrapper or a dotenv
loader that starts a child changes it, a program that edits its own environment
after starting does not (Linux exposes only the initial one). Values are masked as
everywhere else unless `reveal`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from devstack.core.secrets import KnownSecrets, Masking, mask_argv

if TYPE_CHECKING:
    import psutil

    from devstack.core.envmodel import ProjectEnv
    from devstack.core.model import Project

# Set by shells and package managers on their own: not a difference worth a row.
WRAPPER_NAMES = frozenset({"PWD", "OLDPWD", "SHLVL", "_", "INIT_CWD", "NODE", "COLOR", "EDITOR"})
WRAPPER_PREFIXES = ("npm_", "NPM_", "npm_config_", "YARN_", "PNPM_", "BERRY_")
MARKER_PREFIX = "DEVSTACK_"  # devstack's own markers are what they are


@dataclass(frozen=True)
class EnvDiff:
    added: dict[str, str] = field(default_factory=dict)  # in the process, not intended
    removed: dict[str, str] = field(default_factory=dict)  # intended, not in the process
    changed: dict[str, tuple[str, str]] = field(default_factory=dict)  # intended, live
    by_wrappers: tuple[str, ...] = ()  # names shells and npm add on their own

    @property
    def same(self) -> bool:
        return not (self.added or self.removed or self.changed)


def diff_env(intended: Mapping[str, str], live: Mapping[str, str]) -> EnvDiff:
    """What differs between the environment given and the one the process has."""
    added, by_wrappers = {}, []
    for name in sorted(live.keys() - intended.keys()):
        if name.startswith(MARKER_PREFIX):
            continue
        if name in WRAPPER_NAMES or name.startswith(WRAPPER_PREFIXES):
            by_wrappers.append(name)
        else:
            added[name] = live[name]
    return EnvDiff(
        added=added,
        removed={name: intended[name] for name in sorted(intended.keys() - live.keys())},
        changed={
            name: (intended[name], live[name])
            for name in sorted(intended.keys() & live.keys())
            if intended[name] != live[name]
        },
        by_wrappers=tuple(by_wrappers),
    )


def render_diff(
    service: str,
    diff: EnvDiff,
    *,
    process: str,
    masking: Masking | None = None,
    reveal: bool = False,
) -> str:
    """The diff as text, every value masked (as `masking` says: a value built from a
    secret too) unless `reveal`."""
    masking = masking or Masking()

    def show(name: str, value: str) -> str:
        return masking.masked(name, value, reveal)

    lines = [f"{service}: {process}"]
    if diff.same:
        lines.append("  the environment is exactly what devstack gave it")
    rows: list[tuple[str, str, str]] = []
    rows += [("changed", n, f"{show(n, a)} -> {show(n, b)}") for n, (a, b) in diff.changed.items()]
    rows += [("added", n, show(n, v)) for n, v in diff.added.items()]
    rows += [("removed", n, f"(was {show(n, v)})") for n, v in diff.removed.items()]
    width = max((len(name) for _, name, _ in rows), default=0)
    lines += [f"  {kind:<8} {name:<{width}}  {text}" for kind, name, text in rows]
    if diff.by_wrappers:
        lines.append(f"  also set by wrappers: {', '.join(diff.by_wrappers)}")
    return "\n".join(lines)


# -- the running process -------------------------------------------------------------


def leaf_process(pid: int) -> tuple[psutil.Process, list[psutil.Process]]:
    """The program below wrappers: follow single children down from `pid`.

    Returns the leaf and the wrappers above it (outermost first). A process with
    several children is the program itself (a server with workers)."""
    import psutil

    current = psutil.Process(pid)
    wrappers: list[psutil.Process] = []
    while True:
        children = [c for c in current.children() if c.status() != psutil.STATUS_ZOMBIE]
        if len(children) != 1:
            return current, wrappers
        wrappers.append(current)
        current = children[0]


def mask_command(argv: list[str]) -> list[str]:
    """A command line fit to show (a wrapper like `sh -c 'TOKEN=x app'` carries values)."""
    return mask_argv(argv)


def describe(proc: psutil.Process) -> str:
    import psutil

    try:
        command = " ".join(mask_command(proc.cmdline())) or proc.name()
    except psutil.Error:
        command = "?"
    if len(command) > 60:
        command = command[:59] + "…"
    return f"pid {proc.pid} ({command})"


def live_env_report(
    project: Project, env: ProjectEnv, service: str, reveal: bool
) -> tuple[str, int]:
    """The text `devstack env SERVICE --live` prints, and its exit status.

    `env` is the caller's own resolution; the running `up` is asked for the one it
    really used, which may be older (it reloads on changes) or have other --env."""
    import psutil

    from devstack.runtime import control

    reply = control.request(project.root, "env", services=[service])
    pid = reply.get("pid")
    if not pid:
        return f"{service} has no running process (it is {reply.get('state')})", 1
    try:
        leaf, wrappers = leaf_process(pid)
        live = leaf.environ()
    except psutil.NoSuchProcess:
        return f"{service} (pid {pid}) ended while its environment was being read", 1
    except psutil.AccessDenied:
        return f"cannot read the environment of {service} (pid {pid}): permission denied", 1
    process = describe(leaf)
    if wrappers:
        process += " below " + " → ".join(describe(wrapper) for wrapper in wrappers)
    diff = diff_env(reply["values"], live)
    masking = env.services[service].masking(project.vars)
    if not reveal:  # a shell may have expanded a secret into a command line: `app $OWNER`
        given = (masking.secret_texts(name, value) for name, value in reply["values"].items())
        known = env.secret_texts(project.vars).union(*given)
        process = KnownSecrets(known).text(process)
    return render_diff(service, diff, process=process, masking=masking, reveal=reveal), 0
