"""Real monorepos' config files (tests/fixtures/) made runnable in a temporary copy.

Each copy gets stand-ins for the dev tools its scripts call (next, vite, email, tsc ...)
in its `node_modules/.bin`, as a package manager's install would put them there: they
write the environment they received to `received-<tool>.json` in their cwd, print it,
and stay up like a dev server (build steps exit 0). `dotenv` is the real dotenv-cli,
installed by the Makefile with turbo, pnpm and bun into .venv/node.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
NODE_BIN = Path(__file__).parents[1] / ".venv" / "node" / "node_modules" / ".bin"
STAND_INS = (
    "next", "vite", "email", "tsc", "expo", "supabase", "react-router", "rimraf",
    "prisma", "concurrently", "publint", "trigger", "bunx",
)  # fmt: skip

STAND_IN = """\
#!/usr/bin/env python3
# A stand-in for a dev tool: records the environment it got, then runs like a server.
import json, os, signal, sys
name = os.path.basename(sys.argv[0])
args = sys.argv[1:]
with open(f"received-{name}.json.tmp", "w") as out:
    json.dump(dict(os.environ), out, sort_keys=True)
os.replace(f"received-{name}.json.tmp", f"received-{name}.json")
terminal = " on a terminal" if os.isatty(1) else ""
print(f"{name} stand-in ready: {len(os.environ)} variables{terminal}", flush=True)
print("env " + json.dumps(dict(os.environ), sort_keys=True), flush=True)
one_shot = name in ("tsc", "rimraf", "prisma", "publint") and "--watch" not in args
one_shot = one_shot or ("build" in args and "--watch" not in args)
if not one_shot:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    while True:
        signal.pause()
"""


def node_tool(name: str) -> Path:
    """A JS tool the Makefile installs; a missing one fails the test (never a skip)."""
    path = NODE_BIN / name
    assert path.exists(), f"{path} is missing: run `make test` (its install step gets it)"
    return path


def copy_fixture(name: str, dest: Path) -> Path:
    """A runnable copy of fixture `name` at `dest`, a git repo with stand-ins installed."""
    shutil.copytree(FIXTURES / name, dest, ignore=shutil.ignore_patterns("README.md"))
    bin_dir = dest / "node_modules" / ".bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "stand-in").write_text(STAND_IN)
    (bin_dir / "stand-in").chmod(0o755)
    for tool in STAND_INS:
        (bin_dir / tool).symlink_to("stand-in")
    (bin_dir / "dotenv").symlink_to(node_tool("dotenv").resolve())
    # pnpm would otherwise download the exact pnpm version named in packageManager
    (dest / ".npmrc").write_text("manage-package-manager-versions=false\nupdate-notifier=false\n")
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], cwd=dest, check=True)
    subprocess.run([*git, "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-qm", "fixture"], cwd=dest, check=True)
    return dest


def shell_path(copy: Path) -> str:
    """PATH with the copy's node_modules/.bin and the installed tools first."""
    return os.pathsep.join([str(copy / "node_modules" / ".bin"), str(NODE_BIN), "/usr/bin", "/bin"])


def received(copy: Path) -> dict[str, dict[str, str]]:
    """What each stand-in received, by its folder relative to the copy and its name."""
    found = {}
    for path in sorted(copy.rglob("received-*.json")):
        key = f"{path.parent.relative_to(copy).as_posix()}:{path.stem.removeprefix('received-')}"
        found[key] = json.loads(path.read_text())
    return found
