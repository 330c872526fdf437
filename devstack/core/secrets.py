"""Which values are secret, and how they are shown without revealing them.

A variable is secret by its name (`API_TOKEN`, declared `secret: true`) or by its value
(a bearer token, a JWT, a private key, a well-known key prefix such as `sk_live_`).
A masked value keeps a fingerprint (length and a short hash) so two services can be
compared ("same secret?") without anyone reading it. Passwords inside URLs are hidden
whatever the variable is called. Command lines are masked the same way (`--token=V`,
`--password V`, `mysql -pV`, `TOKEN=V app`, URL passwords, secret-looking values)
wherever devstack names a process: stop escalation, the guardian, a port's holder.

Imports only `re`: the guardian uses it on its emergency path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from devstack.core.model import VarDecl

# Words that make a name secret when they are one of its _-separated parts ...
SECRET_PARTS = frozenset(
    {
        "SECRET", "SECRETS", "TOKEN", "TOKENS", "PASSWORD", "PASSWD", "PASS", "KEY", "KEYS",
        "APIKEY", "PRIVATE", "CREDENTIAL", "CREDENTIALS", "CREDS", "SALT", "SIGNATURE", "DSN",
        "AUTHORIZATION", "PWD",
    }
)  # fmt: skip
# ... or anywhere in it (PGPASSWORD, GITHUBTOKEN, CLIENTSECRET).
SECRET_SUBSTRINGS = ("SECRET", "TOKEN", "PASSWORD", "PASSWD", "PRIVATE", "APIKEY", "CREDENTIAL")
# Prefixes whose values a framework ships to the browser (turbo's framework list, plus
# Nuxt's public runtime config): public by construction, so never masked (issue 12 item 5).
PUBLIC_PREFIXES = (
    "NEXT_PUBLIC_", "VITE_", "EXPO_PUBLIC_", "REACT_APP_", "GATSBY_", "PUBLIC_", "VUE_APP_",
    "NUXT_PUBLIC_", "SANITY_STUDIO_", "REDWOOD_ENV_",
)  # fmt: skip
# Names that contain a secret word but hold no secret (the shell's working directory).
NOT_SECRET = frozenset({"PWD", "OLDPWD"})

# `scheme://user:password@host`: the password runs to the last `@` before the host, so
# a password containing `@` is hidden whole (issue 11 §4). Tried only where a scheme can
# begin: from every position inside a run of letters it was quadratic (1.6 s on a
# 20,000-letter value, seconds on one long log line).
_URL_PASSWORD = re.compile(
    r"(?<![A-Za-z0-9+.-])(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)(?P<password>[^\s/]*)@(?=[^@\s/]*(?:[/\s?#]|\Z))"
)
# Values that are secret whatever their name: the token itself is replaced.
_SECRET_VALUE = re.compile(
    r"""
      (?i:\bbearer\s+)(?=\S*\d)[A-Za-z0-9._~+/=-]{12,}                # Authorization values,
    | (?i:\bbasic\s+)(?:(?=\S*[\d+/=])[A-Za-z0-9+/]{8,}={0,2}|(?:[A-Za-z0-9+/]{4}){3,}\b)
    # (a digit, or base64's length: "Bearer tokens" and "Basic authentication" are words)
    | \beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*    # a JWT
    | -----BEGIN[A-Z ]*PRIVATE\ KEY-----[\s\S]*?(?:-----END[A-Z ]*PRIVATE\ KEY-----|\Z)
    | \b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{8,}                       # Stripe
    | \bwhsec_[A-Za-z0-9]{16,}                                         # Stripe webhooks
    | \b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})   # GitHub
    | \bglpat-[A-Za-z0-9_-]{20,}                                       # GitLab
    | \b(?:AKIA|ASIA)[A-Z0-9]{16}\b                                    # AWS access key id
    | \bxox[abposr]-[A-Za-z0-9-]{10,}                                  # Slack
    | \bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}                           # OpenAI, Anthropic
    | \bAIza[0-9A-Za-z_-]{35}                                          # Google API key
    | \bnpm_[A-Za-z0-9]{36}                                            # npm
    | \btr_(?:dev|prod|stg)_[A-Za-z0-9]{8,}                            # trigger.dev
    | \bSG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}                     # SendGrid
    """,
    re.VERBOSE,
)
_ASSIGNMENT = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>[^\s&;|'\"]*)")
# Programs whose short flag carries a password: `mysql -pSECRET`, `redis-cli -a SECRET`.
_SECRET_SHORT_FLAGS = {
    "mysql": "p", "mysqldump": "p", "mysqladmin": "p", "mariadb": "p", "mariadb-dump": "p",
    "sshpass": "p", "redis-cli": "a", "curl": "u",
}  # fmt: skip
MASK = "••••"


def is_secret(
    name: str, declared: Mapping[str, VarDecl] | None = None, value: str | None = None
) -> bool:
    """True for names that look secret, names devstack.yaml declares `secret: true`,
    and (given a value) values that look like a secret whatever the name; never for a
    public prefix (NEXT_PUBLIC_STRIPE_KEY is in every browser) unless declared."""
    if declared and name in declared and declared[name].secret:
        return True
    if name.startswith(PUBLIC_PREFIXES):
        return False
    if value is not None and looks_secret(value):
        return True
    upper = name.upper()
    if upper in NOT_SECRET:
        return False
    if any(part in SECRET_PARTS for part in upper.replace("-", "_").split("_")):
        return True
    return any(word in upper for word in SECRET_SUBSTRINGS)


def looks_secret(value: str) -> bool:
    """A bearer token, a JWT, a private key or a well-known key prefix (sk_live_, ghp_...)."""
    return _SECRET_VALUE.search(value) is not None


def fingerprint(value: str) -> str:
    """`24 chars, #a1b2c3`: enough to tell two values apart, not to recover one."""
    import hashlib  # only shown values need it; `up` imports this module via doctor

    digest = hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()[:6]
    return f"{len(value)} chars, #{digest}"


def masked(
    name: str,
    value: str,
    declared: Mapping[str, VarDecl] | None = None,
    reveal: bool = False,
) -> str:
    """The value as devstack shows it: itself, or masked with a fingerprint."""
    if reveal:
        return value
    if is_secret(name, declared, value):
        return f"{MASK} ({fingerprint(value)})" if value else "(empty)"
    return hide_url_passwords(value)


def hide_url_passwords(value: str) -> str:
    """`postgres://app:hunter2@db/app` -> `postgres://app:••••@db/app`."""
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}@", value)


def has_hidden_part(name: str, value: str, declared: Mapping[str, VarDecl] | None = None) -> bool:
    """Whether showing this value masks anything (so a diff must compare fingerprints)."""
    return is_secret(name, declared, value) or bool(_URL_PASSWORD.search(value))


def mask_text(text: str) -> str:
    """Secret-looking values and URL passwords inside free text, replaced by the mask."""
    text = _SECRET_VALUE.sub(_keep_scheme, text)
    return hide_url_passwords(text)


def _keep_scheme(match: re.Match[str]) -> str:
    """`Bearer abc...` -> `Bearer ••••`: the word says what was hidden."""
    word = re.match(r"(?i)(bearer|basic)\s+", match[0])
    return f"{word[0]}{MASK}" if word else MASK


def mask_argv(argv: Sequence[str]) -> list[str]:
    """A command line fit to show: the values of secret flags (`--token=V`, `--password V`,
    `mysql -pV`), secret assignments (`API_TOKEN=V app`, also inside `sh -c '...'`), URL
    passwords and secret-looking values masked."""
    masker = _ArgvMasker()
    return [masker.argument(argument) for argument in argv]


def mask_command_line(text: str) -> str:
    """`mask_argv` for a command line already joined with spaces (as `ps` shows it)."""
    return "".join(_ArgvMasker().argument(text))


class _ArgvMasker:
    """Walks the words of a command line once, remembering a flag that awaits its value."""

    def __init__(self) -> None:
        self.program = ""
        self.mask_next = False

    def argument(self, argument: str) -> str:
        # An argument may be a whole script (`sh -c 'TOKEN=x app --password y'`).
        pieces = re.split(r"(\s+)", argument)
        return "".join(
            piece if piece.isspace() or not piece else self.word(piece) for piece in pieces
        )

    def word(self, word: str) -> str:
        if self.mask_next:
            self.mask_next = False
            if not word.startswith("-"):
                return MASK
        base = word.rsplit("/", 1)[-1].strip("'\"")
        if base in _SECRET_SHORT_FLAGS:
            self.program = base
        short = _SECRET_SHORT_FLAGS.get(self.program, "")
        if short and re.fullmatch(rf"-{short}\S*", word):
            if word == f"-{short}":
                self.mask_next = True
                return word
            return f"-{short}{MASK}"
        if re.fullmatch(r"--?[A-Za-z][A-Za-z0-9-]*", word) and _is_secret_flag(word):
            self.mask_next = True
            return word
        if re.fullmatch(r"(?i)['\"]?(?:authorization:\s*)?(?:bearer|basic)", word):
            self.mask_next = True
            return word
        word = _ASSIGNMENT.sub(_mask_assignment, word)
        return mask_text(word)


def _is_secret_flag(flag: str) -> bool:
    name = flag.lstrip("-").replace("-", "_")
    return len(name) > 2 and is_secret(name)


def _mask_assignment(match: re.Match[str]) -> str:
    name, value = match["name"], match["value"]
    if value and is_secret(name) and value != MASK:
        return f"{name}={MASK}"
    return match[0]
