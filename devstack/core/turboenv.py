"""Turborepo's own env lists: what its strict mode always passes, and its frameworks.

Both are copied from vercel/turborepo so that strict mode here is turbo's strict mode
(issue 12 item 3); a difference is a decision documented in the README, not drift.

- `STRICT_PASS_THROUGH`: the `builtin_pass_through` list of `TaskHasher::env` in
  crates/turborepo-task-hash/src/lib.rs at commit 57cf69c2a4314df06e0d7500dbaecc5bf154e6ed,
  plus the names turbo 2.11.11 (the `turbo` package on npm, the version the differential
  test installs) added since: found as strings in its binary next to that list, and each
  seen to pass by running `turbo run dev --env-mode=strict` with it set (see the README).
- `FRAMEWORKS`: packages/turbo-types/src/json/frameworks.json at commit
  5431bd1d71b1d27b31a90370ea14f2dd2a67e2e6 (read by crates/turborepo-frameworks): the
  first framework whose dependency match holds wins, so the order is turbo's.

turbo's wildcards know only `*` (any run of characters, `\\*` a literal star); every other
character is literal, so `ProgramFiles(x86)` is a name, not a pattern.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

STRICT_PASS_THROUGH = (
    "HOME", "USER", "TZ", "LANG", "SHELL", "PWD", "XDG_RUNTIME_DIR", "XAUTHORITY",
    "DBUS_SESSION_BUS_ADDRESS", "CI", "NODE_OPTIONS", "COREPACK_HOME", "LD_LIBRARY_PATH",
    "DYLD_FALLBACK_LIBRARY_PATH", "LIBPATH", "LD_PRELOAD", "DYLD_INSERT_LIBRARIES",
    "COLORTERM", "TERM", "TERM_PROGRAM", "DISPLAY", "TMP", "TEMP",
    "WINDIR", "ProgramFiles", "ProgramFiles(x86)",
    "VSCODE_*", "ELECTRON_RUN_AS_NODE",
    "DOCKER_*", "BUILDKIT_*", "COMPOSE_*",
    "JB_IDE_*", "JB_INTERPRETER", "_JETBRAINS_TEST_RUNNER_RUN_SCOPE_TYPE",
    "VERCEL", "VERCEL_*", "NEXT_*", "USE_OUTPUT_FOR_EDGE_FUNCTIONS", "NOW_BUILDER",
    "VC_MICROFRONTENDS_CONFIG_FILE_NAME",
    "GITHUB_*", "RUNNER_*",
    "APPDATA", "PATH", "PROGRAMDATA", "SYSTEMROOT", "SYSTEMDRIVE", "USERPROFILE",
    "HOMEDRIVE", "HOMEPATH", "PNPM_HOME", "NPM_CONFIG_STORE_DIR",
    # turbo 2.11.11, after that commit
    "COREPACK_*", "XDG_DATA_*", "TMPDIR", "TURBO_*", "__NIXOS_*", "NIX_*", "LOCALAPPDATA",
    "pnpm_config_verify_deps_before_run", "COMSPEC", "PATHEXT", "NO_COLOR", "FORCE_COLOR",
)  # fmt: skip


@dataclass(frozen=True)
class TurboFramework:
    """A framework turbo infers from a package's dependencies, and the names it lets in."""

    slug: str
    name: str
    env_wildcards: tuple[str, ...]
    strategy: str  # "all": every dependency listed; "some": any one of them
    dependencies: tuple[str, ...]

    def matches(self, dependencies: Iterable[str]) -> bool:
        have = set(dependencies)
        test = all if self.strategy == "all" else any
        return test(dep in have for dep in self.dependencies)


def _framework(slug: str, name: str, wildcards: str, strategy: str, deps: str) -> TurboFramework:
    return TurboFramework(slug, name, tuple(wildcards.split()), strategy, tuple(deps.split()))


_NITRO = (
    "NITRO_* SERVER_* AWS_APP_ID INPUT_AZURE_STATIC_WEB_APPS_API_TOKEN CLEAVR CF_PAGES"
    " FIREBASE_APP_HOSTING NETLIFY STORMKIT NOW_BUILDER ZEABUR RENDER"
)
# frameworks.json's `envConditionals` (nextjs: VERCEL_DEPLOYMENT_ID when
# VERCEL_SKEW_PROTECTION_ENABLED=1) are left out: VERCEL_* passes in strict mode anyway.
FRAMEWORKS = (
    _framework("astro", "Astro", "PUBLIC_*", "all", "astro"),
    _framework("blitzjs", "Blitz", "NEXT_PUBLIC_*", "all", "blitz"),
    _framework("create-react-app", "Create React App", "REACT_APP_*", "some",
               "react-scripts react-dev-utils"),
    _framework("expo", "Expo", "EXPO_PUBLIC_*", "all", "expo"),
    _framework("gatsby", "Gatsby", "GATSBY_*", "all", "gatsby"),
    _framework("nextjs", "Next.js", "NEXT_PUBLIC_*", "all", "next"),
    _framework("nitro", "Nitro", _NITRO, "some", "nitropack nitropack-nightly nitro nitro-nightly"),
    _framework("nuxtjs", "Nuxt.js", "NUXT_* " + _NITRO + " LAUNCH_EDITOR", "some",
               "nuxt nuxt-edge nuxt3 nuxt3-edge"),
    _framework("redwoodjs", "RedwoodJS", "REDWOOD_ENV_*", "all", "@redwoodjs/core"),
    _framework("sanity", "Sanity Studio", "SANITY_STUDIO_*", "all", "@sanity/cli"),
    _framework("solidstart", "Solid", "VITE_*", "all", "solid-js solid-start"),
    _framework("sveltekit", "SvelteKit", "VITE_* PUBLIC_*", "all", "@sveltejs/kit"),
    _framework("vite", "Vite", "VITE_*", "all", "vite"),
    _framework("vue", "Vue", "VUE_APP_* LAUNCH_EDITOR", "all", "@vue/cli-service"),
)  # fmt: skip


def infer_framework(dependencies: Iterable[str]) -> TurboFramework | None:
    """The framework turbo would infer for a package with these dependencies."""
    deps = set(dependencies)
    return next((fw for fw in FRAMEWORKS if fw.matches(deps)), None)


@functools.lru_cache(maxsize=512)
def wildcard_regex(pattern: str) -> re.Pattern[str]:
    """turbo's wildcard as a regex: `*` is any run of characters, `\\*` a literal `*`."""
    pieces = re.split(r"(\\\*|\*)", pattern)
    text = "".join(
        ".*" if piece == "*" else re.escape("*" if piece == "\\*" else piece) for piece in pieces
    )
    return re.compile(text + r"\Z")


def matching_wildcard(name: str, patterns: Iterable[str]) -> str | None:
    """The first of `patterns` that `name` matches, in turbo's wildcard grammar."""
    return next((p for p in patterns if wildcard_regex(p).match(name)), None)


@functools.lru_cache(maxsize=256)
def _read_package_json(path: Path, mtime_ns: int) -> Mapping[str, object] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def package_json(directory: Path) -> Mapping[str, object] | None:
    """`<directory>/package.json` as a mapping, or None when absent or unreadable.
    Cached per modification time: `up` resolves every service again on a change."""
    path = directory / "package.json"
    try:
        mtime_ns = path.stat().st_mtime_ns
    except OSError:
        return None
    return _read_package_json(path, mtime_ns)


def package_dependencies(directory: Path) -> frozenset[str]:
    """Every dependency `<directory>/package.json` names, as turbo reads them for inference
    (dependencies, devDependencies and optionalDependencies; not peerDependencies)."""
    data = package_json(directory) or {}
    names: set[str] = set()
    for key in ("dependencies", "devDependencies", "optionalDependencies"):
        section = data.get(key)
        if isinstance(section, dict):
            names.update(str(name) for name in section)
    return frozenset(names)
