"""The tools under test and how each is given the same services.

A scenario describes its services once (`Service`: a name and a shell command run
from the stack's root); this module turns them into a devstack.yaml, a Procfile
for honcho and foreman, an mprocs.yaml for mprocs, or command-line arguments for
concurrently, and a watched service into devstack's `watch:`, watchfiles' CLI or
nodemon. Every command runs under `/bin/sh -c` with every tool, so no tool gets a
cheaper process tree.

The npm peers (concurrently, nodemon, mprocs) are installed on first use into a
cache outside the repo, and only when `node` and `npm` are on PATH. mprocs' npm
package ships its prebuilt binaries inside the package (nothing is downloaded at
install time); the harness runs the binary itself, not the package's node wrapper.
foreman comes from Debian's `ruby-foreman`, installed with apt-get when missing and
running as root.
"""

from __future__ import annotations

import compileall
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.proc import MARKER_VAR

BIN = Path(sys.executable).parent
NPM_PACKAGES = ("concurrently@10", "nodemon@3", "mprocs@0.9")
NPM_TOOLS = ("concurrently", "nodemon", "mprocs")
NODE_CACHE = (
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "devstack-bench" / "node"
)

# Supervisors that print their services' lines on stdout, and those that start them
# (mprocs is a full-screen TUI: it is timed through its per-process log files).
SUPERVISORS = ("devstack", "honcho", "foreman", "concurrently")
STARTERS = (*SUPERVISORS, "mprocs")
WATCHERS = ("devstack", "watchfiles", "nodemon")
ALL_TOOLS = ("devstack", "honcho", "foreman", "concurrently", "mprocs", "watchfiles", "nodemon")
MPROCS_LOGS = ".mprocs-logs"


@dataclass(frozen=True)
class Service:
    name: str
    cmd: str  # a shell command, run from the stack's root
    watch: tuple[str, ...] = ()  # directories whose changes restart it (devstack's `watch:`)


def devstack_yaml(services: Sequence[Service]) -> str:
    """devstack.yaml for `services`; the marker is listed so strict mode passes it on."""
    lines = [f"env: [{MARKER_VAR}]", "services:"]
    for service in services:
        lines += [f"  {service.name}:", f"    cmd: {json.dumps(service.cmd)}"]
        if service.watch:
            lines.append(f"    watch: {json.dumps([f'{path}/' for path in service.watch])}")
    return "\n".join(lines) + "\n"


def procfile(services: Sequence[Service]) -> str:
    return "".join(f"{service.name}: {service.cmd}\n" for service in services)


def mprocs_yaml(services: Sequence[Service]) -> str:
    lines = ["procs:"]
    for service in services:
        lines += [f"  {service.name}:", f"    shell: {json.dumps(service.cmd)}"]
    return "\n".join(lines) + "\n"


class Tools:
    """Which tools this machine has, and the argv that runs each on a stack."""

    def __init__(self, *, npm: bool = True, only: Sequence[str] = (), log=print) -> None:  # type: ignore[no-untyped-def]
        self.log = log
        self.skipped: dict[str, str] = {}
        if only:
            npm = npm and bool(set(NPM_TOOLS) & set(only))
            others = set(ALL_TOOLS) - set(only)
            self.skipped.update(dict.fromkeys(others, "not in --tools"))
        self.node_bin = self._node_bin() if npm else None
        self.mprocs = self._mprocs_binary() if self.node_bin is not None else None
        for name in NPM_TOOLS:
            if name in self.skipped:
                continue
            if not npm:
                self.skipped[name] = "--no-npm"
            elif self.node_bin is None:
                self.skipped[name] = "no node/npm (or npm install failed)"
            elif name == "mprocs" and self.mprocs is None:
                self.skipped[name] = "mprocs' npm package has no binary for this platform"
        self.foreman = None if "foreman" in self.skipped else self._foreman()
        if self.foreman is None:
            self.skipped.setdefault("foreman", "not installed (apt-get install ruby-foreman)")

    def compile_python_peers(self) -> None:
        """Write the .pyc files of devstack, honcho and watchfiles, as a normal install
        does. An editable checkout run with PYTHONDONTWRITEBYTECODE=1 would otherwise
        compile every devstack module on every start (~100 ms) and no peer's."""
        for package in ("devstack", "honcho", "watchfiles"):
            spec = importlib.util.find_spec(package)
            for location in (spec.submodule_search_locations or []) if spec else []:
                compileall.compile_dir(location, quiet=1)

    def _node_bin(self) -> Path | None:
        if not (shutil.which("node") and shutil.which("npm")):
            return None
        bin_dir = NODE_CACHE / "node_modules" / ".bin"
        if all((bin_dir / name).exists() for name in NPM_TOOLS):
            return bin_dir
        self.log(f"installing {' '.join(NPM_PACKAGES)} into {NODE_CACHE} (once)")
        NODE_CACHE.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [
                "npm",
                "install",
                "--no-audit",
                "--no-fund",
                "--silent",
                "--prefix",
                str(NODE_CACHE),
                *list(NPM_PACKAGES),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            self.log(f"npm install failed, skipping the npm peers:\n{done.stderr.strip()}")
            return None
        return bin_dir

    def _mprocs_binary(self) -> Path | None:
        """The native binary inside mprocs' npm package (its index.js names it)."""
        done = subprocess.run(
            ["node", "-p", f"require({json.dumps(str(NODE_CACHE / 'node_modules' / 'mprocs'))})"],
            capture_output=True,
            text=True,
            check=False,
        )
        binary = Path(done.stdout.strip())
        return binary if done.returncode == 0 and binary.is_file() else None

    def _foreman(self) -> Path | None:
        found = shutil.which("foreman")
        if found or os.geteuid() != 0 or not shutil.which("apt-get"):
            return Path(found) if found else None
        self.log("installing Debian's ruby-foreman with apt-get (once)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "ruby-foreman"]
        if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, check=False)
            done = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                self.log(f"apt-get install ruby-foreman failed:\n{done.stderr.strip()}")
                return None
        found = shutil.which("foreman")
        return Path(found) if found else None

    def available(self, names: Sequence[str]) -> list[str]:
        return [name for name in names if name not in self.skipped]

    def version(self, name: str) -> str:
        argv = {
            "devstack": [
                str(BIN / "python"),
                "-c",
                "import importlib.metadata as m; print(m.version('devstack'))",
            ],
            "honcho": [
                str(BIN / "python"),
                "-c",
                "import importlib.metadata as m; print(m.version('honcho'))",
            ],
            "watchfiles": [
                str(BIN / "python"),
                "-c",
                "import importlib.metadata as m; print(m.version('watchfiles'))",
            ],
        }.get(name)
        if name == "foreman" and self.foreman is not None:
            argv = [str(self.foreman), "version"]
        elif name == "mprocs" and self.mprocs is not None:
            argv = [str(self.mprocs), "--version"]
        elif argv is None and self.node_bin is not None:
            argv = [str(self.node_bin / name), "--version"]
        if argv is None:
            return "?"
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        words = done.stdout.split()
        return words[-1] if words else "?"  # `mprocs --version` prints "mprocs 0.9.6"

    def supervise(self, tool: str, root: Path, services: Sequence[Service]) -> list[str]:
        """Write what `tool` reads into `root`; return the argv that runs `services`."""
        if tool == "devstack":
            (root / "devstack.yaml").write_text(devstack_yaml(services))
            return [str(BIN / "devstack"), "up"]
        if tool == "honcho":
            (root / "Procfile").write_text(procfile(services))
            return [str(BIN / "honcho"), "start", "-f", "Procfile"]
        if tool == "foreman" and self.foreman is not None:
            (root / "Procfile").write_text(procfile(services))
            return [str(self.foreman), "start", "-f", "Procfile", "-d", "."]
        if tool == "mprocs" and self.mprocs is not None:
            (root / "mprocs.yaml").write_text(mprocs_yaml(services))
            shutil.rmtree(root / MPROCS_LOGS, ignore_errors=True)  # its logs are appended to
            return [str(self.mprocs), "--config", "mprocs.yaml", "--log-dir", MPROCS_LOGS]
        if tool == "concurrently" and self.node_bin is not None:
            names = ",".join(service.name for service in services)
            return [str(self.node_bin / "concurrently"), "--names", names] + [
                service.cmd for service in services
            ]
        raise ValueError(f"{tool} cannot supervise here")

    @staticmethod
    def launch_options(tool: str, root: Path) -> dict[str, object]:
        """How `Launched` must run `tool`: mprocs wants a terminal, and its services'
        lines are read from its log files (its screen shows one service at a time)."""
        if tool == "mprocs":
            return {"tty": True, "log_dir": root / MPROCS_LOGS}
        return {}

    def watch(self, tool: str, root: Path, service: Service, watched: str) -> list[str]:
        """argv that runs `service` and restarts it when anything under `watched` changes."""
        if tool == "devstack":
            watching = Service(service.name, service.cmd, watch=(watched,))
            (root / "devstack.yaml").write_text(devstack_yaml([watching]))
            return [str(BIN / "devstack"), "up"]
        if tool == "watchfiles":
            return [str(BIN / "watchfiles"), service.cmd, watched]
        if tool == "nodemon" and self.node_bin is not None:
            return [
                str(self.node_bin / "nodemon"),
                "--watch",
                watched,
                "--ext",
                "py",
                "--exec",
                service.cmd,
            ]
        raise ValueError(f"{tool} cannot watch here")
