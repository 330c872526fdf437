"""The tools under test and how each is given the same services.

A scenario describes its services once (`Service`: a name and a shell command run
from the stack's root); this module turns them into a devstack.yaml, a Procfile
for honcho, or command-line arguments for concurrently, and a watched service into
devstack's `watch:`, watchfiles' CLI or nodemon. Every command runs under
`/bin/sh -c` with every tool, so no tool gets a cheaper process tree.

The npm peers (concurrently, nodemon) are installed on first use into a cache
outside the repo, and only when `node` and `npm` are on PATH.
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
NPM_PACKAGES = ("concurrently@10", "nodemon@3")
NODE_CACHE = (
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "devstack-bench" / "node"
)

SUPERVISORS = ("devstack", "honcho", "concurrently")
WATCHERS = ("devstack", "watchfiles", "nodemon")


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


class Tools:
    """Which tools this machine has, and the argv that runs each on a stack."""

    def __init__(self, *, npm: bool = True, only: Sequence[str] = (), log=print) -> None:  # type: ignore[no-untyped-def]
        self.log = log
        self.skipped: dict[str, str] = {}
        if only:
            npm = npm and bool({"concurrently", "nodemon"} & set(only))
            others = {"devstack", "honcho", "watchfiles", "concurrently", "nodemon"} - set(only)
            self.skipped.update(dict.fromkeys(others, "not in --tools"))
        self.node_bin = self._node_bin() if npm else None
        for name in ("concurrently", "nodemon"):
            if name in self.skipped:
                continue
            if not npm:
                self.skipped[name] = "--no-npm"
            elif self.node_bin is None:
                self.skipped[name] = "no node/npm (or npm install failed)"

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
        if all((bin_dir / name).exists() for name in ("concurrently", "nodemon")):
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
        if argv is None and self.node_bin is not None:
            argv = [str(self.node_bin / name), "--version"]
        if argv is None:
            return "?"
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        return done.stdout.strip() or "?"

    def supervise(self, tool: str, root: Path, services: Sequence[Service]) -> list[str]:
        """Write what `tool` reads into `root`; return the argv that runs `services`."""
        if tool == "devstack":
            (root / "devstack.yaml").write_text(devstack_yaml(services))
            return [str(BIN / "devstack"), "up"]
        if tool == "honcho":
            (root / "Procfile").write_text(procfile(services))
            return [str(BIN / "honcho"), "start", "-f", "Procfile"]
        if tool == "concurrently" and self.node_bin is not None:
            names = ",".join(service.name for service in services)
            return [str(self.node_bin / "concurrently"), "--names", names] + [
                service.cmd for service in services
            ]
        raise ValueError(f"{tool} cannot supervise here")

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
