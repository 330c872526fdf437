"""A string `cmd` -> the argv devstack execs: the words themselves when the string has
no shell syntax, else `/bin/sh -c` with the string (issue 16).

Exec'ing `node server.js` directly leaves no `sh` between devstack and the service:
one process less per service (its memory, its fork and exec at start), and signals
reach the service itself. The test is deliberately conservative: anything a POSIX
shell would treat specially (quoting, expansion, redirection, globbing, comments,
assignments, builtins and reserved words) keeps the shell, so the result is the same
command the shell would have run, word for word.
"""

from __future__ import annotations

import shlex

SHELL = "/bin/sh"

# Quoting, expansion, redirection, pipes, lists, globs, comments, tilde, assignments
# (`=` anywhere: `A=1 cmd`), job specs, history/negation and braces. Control characters
# other than space and tab (a `\r` from a CRLF file, a newline) keep the shell too: sh
# splits on neither the same way as a word splitter would.
_SHELL_SYNTAX = frozenset("|&;<>()$`\\\"'*?[]#~=%!{}")

# Builtins and reserved words of dash and bash: as a first word they are the shell's,
# not a program on PATH (`cd`, `exec`, `export`, `echo` whose escapes differ from
# /bin/echo's, `[`, `if` ...).
_BUILTINS_AND_RESERVED = """
! . : [ [[ ]] { } alias bg break builtin case cd command continue declare do done echo
elif else esac eval exec exit export false fc fg fi for function getopts hash if in
jobs kill let local newgrp printf pwd read readonly return select set shift source
test then time times trap true type typeset ulimit umask unalias unset until wait while
"""
_SHELL_WORDS = frozenset(_BUILTINS_AND_RESERVED.split())


def command_argv(cmd: str | tuple[str, ...]) -> tuple[str, ...]:
    """The argv that runs `cmd`: a tuple as it is; a string split into its words when
    that is exactly what the shell would run, else under `/bin/sh -c`."""
    if not isinstance(cmd, str):
        return cmd
    words = plain_words(cmd)
    return words if words is not None else (SHELL, "-c", cmd)


def plain_words(cmd: str) -> tuple[str, ...] | None:
    """The words of `cmd` if it has no shell syntax at all, else None."""
    if any(char in _SHELL_SYNTAX or not (char.isprintable() or char == "\t") for char in cmd):
        return None
    words = tuple(shlex.split(cmd))
    if not words or words[0] in _SHELL_WORDS:
        return None
    if "/" in words[0] and not words[0].startswith("/"):
        # The repo's own script (`./bin/dev`, `scripts/run.sh`): one without a `#!` line
        # runs under sh (a shell's ENOEXEC fallback), but exec'd it fails with "Exec
        # format error". dash execs a lone command anyway, so the shell costs no process.
        return None
    return words
