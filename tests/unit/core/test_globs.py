"""globs: .gitignore lines compiled by pathspec, decided without it, as pathspec decides.

The oracle is pathspec's own GitIgnoreSpec (installed from PyPI with the test set-up):
`Globs.check` must give its `check_file(...).include` for every line and path.
"""

from __future__ import annotations

import pickle

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pathspec import GitIgnoreSpec

from devstack.core.globs import Globs, compile_globs


def pathspec_says(lines: list[str], path: str) -> bool | None:
    return GitIgnoreSpec.from_lines(lines).check_file(path).include  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("lines", "path", "verdict"),
    [
        (["*.log"], "a.log", True),
        (["*.log"], "deep/down/a.log", True),  # no slash: any depth
        (["*.log"], "a.txt", None),
        (["*.log", "!keep.log"], "keep.log", False),  # taken back
        (["!keep.log", "*.log"], "keep.log", True),  # the later line decides
        (["build/"], "build/", True),  # a directory pattern, the directory itself
        (["build/"], "build/out.js", True),  # ... and what is below it
        (["build/"], "build", None),  # a file named build is not the directory
        (["/src/*.ts"], "src/a.ts", True),
        (["/src/*.ts"], "lib/src/a.ts", None),  # anchored at the root
        (["src/**/*.ts"], "src/a/b/c.ts", True),
        (["dist/", "!dist/keep.js"], "dist/keep.js", False),  # a file back from a directory
        (["!dist/keep.js", "dist/"], "dist/keep.js", False),  # ...whatever the order
        (["node_modules"], "packages/x/node_modules/y/z.js", True),
        (["#comment", "", "   "], "comment", None),  # no-op lines
        (["\\#hash"], "#hash", True),  # an escaped #
        (["!", "a\\", "*.md"], "README.md", True),  # lines pathspec cannot read are skipped
        (["*.log"], "./a.log", True),  # pathspec's normalisation: no leading ./ or /
        (["*.log"], "/a.log", True),
    ],
)
def test_check_decides_as_gitignore_does(lines: list[str], path: str, verdict: bool | None) -> None:
    assert compile_globs(lines).check(path) is verdict


def test_joined_globs_are_the_lines_of_both_in_order() -> None:
    joined = compile_globs(["*.log"]) + compile_globs(["!keep.log"])
    assert (joined.check("keep.log"), joined.check("a.log")) == (False, True)
    assert joined == compile_globs(["*.log", "!keep.log"])


def test_globs_travel_pickled_and_keep_deciding() -> None:
    globs = compile_globs(["dist/", "!dist/keep.js", "*.tmp"])
    back = pickle.loads(pickle.dumps(globs))
    assert isinstance(back, Globs)
    for path in ("dist/a.js", "dist/keep.js", "x.tmp", "src/a.ts"):
        assert back.check(path) is globs.check(path)


SEGMENTS = st.sampled_from(
    ["a", "b", "ab", ".x", "x.py", "*", "**", "?", "*.py", "a*", "[ab]", "[!a]", "\\*", "b?"]
)
PATH_PARTS = st.sampled_from(["a", "b", "ab", ".x", "x.py", "c.py", "*", "aa", "ba"])


@st.composite
def lines(draw: st.DrawFn) -> str:
    body = "/".join(draw(st.lists(SEGMENTS, min_size=1, max_size=4)))
    return (
        draw(st.sampled_from(["", "!"]))
        + draw(st.sampled_from(["", "/"]))
        + body
        + draw(st.sampled_from(["", "/"]))
    )


@st.composite
def paths(draw: st.DrawFn) -> str:
    return "/".join(draw(st.lists(PATH_PARTS, min_size=1, max_size=5))) + draw(
        st.sampled_from(["", "/"])
    )


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(lines(), min_size=1, max_size=6), st.lists(paths(), min_size=1, max_size=8))
def test_check_agrees_with_pathspec(spec_lines: list[str], checked: list[str]) -> None:
    globs = compile_globs(spec_lines)
    for path in checked:
        assert globs.check(path) is pathspec_says(spec_lines, path), (spec_lines, path)


def test_lines_pathspec_cannot_read_are_named() -> None:
    unreadable: list[str] = []
    globs = compile_globs(["*.md", "!", "notes\\", "src/"], unreadable)
    assert unreadable == ["!", "notes\\"]
    assert (globs.check("a.md"), globs.check("src/x.py")) == (True, True)
