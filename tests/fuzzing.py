"""Hypothesis strategies for hostile input (issue 11): devstack.yaml documents and env
files. Shared by the in-process fuzz tests and the slower CLI fuzz (`-m slow_fuzz`).

YAML documents are built from a small grammar of what devstack.yaml holds, salted with
what broke the loader before: tags, anchors and aliases, merge keys, YAML 1.1 scalars,
control characters, tabs, deep nesting and alias bombs; then some are mutated byte by
byte. Env files are random bytes, text in other encodings, and NULs.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# DEVSTACK_FUZZ_EXAMPLES=20000 for a longer run; CI keeps the suite fast.
SCALE = int(os.environ.get("DEVSTACK_FUZZ_EXAMPLES", "0") or 0)


def fuzz_settings(examples: int) -> settings:
    """`examples` in CI (derandomized: the same inputs each run); DEVSTACK_FUZZ_EXAMPLES
    runs that many instead, with fresh random inputs."""
    return settings(
        max_examples=SCALE or examples,
        deadline=None,
        database=None,
        derandomize=not SCALE,
        suppress_health_check=list(HealthCheck),
    )


KEYS = [
    "services", "env", "env_mode", "env_files", "vars", "cmd", "cwd", "depends_on", "ready",
    "port", "restart", "max_restarts", "stop_signal", "stop_timeout", "autostart", "tty",
    "watch", "paths", "ignore", "debounce_ms", "http", "tcp", "log", "timeout", "condition",
    "required", "secret", "same_across", "pattern", "api", "jobs", "db", "x-base", "<<",
    "1", "on", "off", "yes", "!NAME", "API_TOKEN", "DEBUG = 1", "PORT", "servces",
]  # fmt: skip
SCALARS = [
    "yes", "NO", "on", "Off", "1.10", "01234", "12:30", "0x1F", "0o17", "1e3", ".inf", ".nan",
    "~", "null", "", "2020-01-01", "2020-13-45", "2001-12-14t21:59:43.10-05:00",
    "!env x", "!reference [a, b]", "!NAME", "!!int abc", "!!float x", "!!bool maybe",
    "!!timestamp nope", "!!binary '%%'", "!!seq x", "!!map x", "!!str 1", "!!null x",
    "'quoted'", '"esc \\x1b \\0 \\ud800 \\t"', "python -m api", "[python, -m, api]",
    "http://localhost:${PORT}/health", "127.0.0.1:${PORT}", "${UNDEFINED}", "$$",
    "./run.sh", "~/x", "a\\\\b", "/abs/path", "../../outside", "service_healthy",
    "postgres://u:p@ss@db/x", "Bearer abcdefghijk", "sk_live_abcdefghijk", "SIGINT", "9",
    "70000", "-1", "[1, [2, [3]]]", "{a: {b: {c: d}}}", "*a", "*missing",
]  # fmt: skip
SALT = [
    "\x1b", "\x00", "\t", "\r", "\r\n", "\ufeff", "\u2028", "\x85", "\x7f", "&a ", "*a",
    "<<: *a", "!tag ", "!!int ", "%YAML 1.1\n", "---\n", "...\n", "? ", "- ", ": ", "#",
    "'", '"', "{", "}", "[", "]", ",", "|", ">", "\n  ", "@", "`",
]  # fmt: skip


def _node(max_leaves: int) -> st.SearchStrategy[str]:
    """A flow-style value: a scalar, or mappings and lists of them, maybe tagged/anchored."""
    scalar = st.sampled_from(SCALARS) | st.text(max_size=6)
    tag = st.sampled_from(["", "", "", "&a ", "&b ", "!!map ", "!custom "])

    def extend(child: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        mapping = st.builds(
            lambda t, pairs: t + "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}",
            tag,
            st.lists(st.tuples(st.sampled_from(KEYS), child), max_size=3),
        )
        sequence = st.builds(
            lambda t, items: t + "[" + ", ".join(items) + "]", tag, st.lists(child, max_size=3)
        )
        return mapping | sequence

    return st.recursive(scalar, extend, max_leaves=max_leaves)


def _block_document() -> st.SearchStrategy[str]:
    """Block style, as people write it: services with keys, maybe anchors and merges."""
    service = st.builds(
        lambda name, pairs: f"  {name}:\n" + "".join(f"    {k}: {v}\n" for k, v in pairs),
        st.sampled_from(["api", "jobs", "db", "1", "on", "x-base", "<<", "web"]),
        st.lists(st.tuples(st.sampled_from(KEYS), _node(4)), max_size=5),
    )
    head = st.sampled_from(
        ["", "x-base: &a {cwd: sub, env: {A: yes}}\n", "env: [A, '!B', !C]\n", "env_mode: loose\n"]
    )
    return st.builds(
        lambda h, services: h + "services:\n" + "".join(services),
        head,
        st.lists(service, max_size=4),
    )


def _deep() -> st.SearchStrategy[str]:
    return st.builds(
        lambda n, opener: "services: " + opener * n + ("]" if opener == "[" else "}") * n,
        st.integers(50, 6000),
        st.sampled_from(["[", "{a: "]),
    )


def _bomb() -> st.SearchStrategy[str]:
    def build(levels: int, width: int) -> str:
        lines = [f"l0: &l0 [{', '.join(['x'] * width)}]"]
        lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
        return "\n".join(lines) + f"\nservices: {{a: {{cmd: x, env: *l{levels - 1}}}}}\n"

    return st.builds(build, st.integers(2, 9), st.integers(2, 10))


@st.composite
def _mutated(draw: st.DrawFn, base: st.SearchStrategy[str]) -> str:
    text = draw(base)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        if draw(st.booleans()) and text:
            text = text[:at] + text[at + 1 :]
        else:
            text = text[:at] + draw(st.sampled_from(SALT) | st.characters()) + text[at:]
    return text


def yaml_documents() -> st.SearchStrategy[str]:
    generated = st.one_of(_block_document(), _node(10).map(lambda n: f"services: {n}\n"))
    return st.one_of(generated, _mutated(generated), _deep(), _bomb(), _node(6))


ENV_LINES = [
    "A=1", "export B='two words'", 'C="multi\nline"', "D=${A}", "E=${MISSING}", "F=$$", "=",
    "G", "1BAD=x", "A-B=1", 'H="unclosed', "I='unclosed", "# comment", "", "J = spaced",
    "K=a\x00b", "L=\ud800", "PATH=/usr/bin:/bin", "API_TOKEN=Bearer abcdefghijk",
]  # fmt: skip
ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-32", "latin-1", "cp1252"]


def _env_text() -> st.SearchStrategy[str]:
    line = st.sampled_from(ENV_LINES) | st.text(max_size=20)
    return st.lists(line, max_size=8).map("\n".join)


def env_file_bytes() -> st.SearchStrategy[bytes]:
    encoded = st.builds(
        lambda text, encoding: text.encode(encoding, "replace"),
        _env_text(),
        st.sampled_from(ENCODINGS),
    )
    utf8 = _env_text().map(lambda t: t.encode("utf-8", "surrogatepass"))
    return st.one_of(utf8, encoded, st.binary(max_size=200))
