"""Which values are secret, and how they are shown without revealing them.

A variable is secret by its name (`API_TOKEN`, declared `secret: true`) or by its value
(a bearer token, a JWT, a private key, a well-known key prefix such as `sk_live_`), or
because it was built by interpolation from one (`OWNER=ops ${API_TOKEN}`): `derived`
is then the values of the secret variables it used, transitively (envresolve computes
it, `derived_from`). A value secret in itself is masked whole; a derived one shows the
text around its secrets, `ops ••••`, as CI logs mask a secret where it appears.
A masked value keeps a fingerprint (length and a short hash) so two services can be
compared ("same secret?") without anyone reading it. Every verdict on a variable goes
through `is_secret`, every shown value through `masked` (or `Masking`, the two bound to
one environment). Passwords inside URLs are hidden whatever the variable is called.
Command lines are masked the same way (`--token=V`, `--password V`, `mysql -pV`,
`TOKEN=V app`, URL passwords, secret-looking values) wherever devstack names a process:
stop escalation, the guardian, a port's holder; `KnownSecrets` masks the stack's own
secret values in them too, where a shell expanded one (`app $OWNER`).

Imports only `re`: the guardian uses it on its emergency path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
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
    name: str,
    declared: Mapping[str, VarDecl] | None = None,
    value: str | None = None,
    derived: Sequence[str] = (),
) -> bool:
    """True for names that look secret, names devstack.yaml declares `secret: true`,
    (given a value) values that look like a secret whatever the name, and values built
    from a secret (`derived`: the secret values used, see `derived_from`). A public
    prefix (NEXT_PUBLIC_STRIPE_KEY is in every browser) is never secret by its name or
    value unless declared, but is when it interpolates a secret: the secret's own name
    says so, and it should not be in the browser either."""
    if any(derived):
        return True
    return _secret_in_itself(name, declared, value)


def _secret_in_itself(name: str, declared: Mapping[str, VarDecl] | None, value: str | None) -> bool:
    """Secret by declaration, name or value: masked whole."""
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
    # CPython's own sha256, not hashlib's: `import hashlib` maps OpenSSL's libcrypto,
    # which `up` would keep for good once it showed one masked value (issue 16).
    from devstack.runtime.lean import sha256

    digest = sha256(value.encode("utf-8", "surrogateescape")).hexdigest()[:6]
    return f"{len(value)} chars, #{digest}"


def derived_from(
    uses: Iterable[tuple[str, str, Sequence[str]]], declared: Mapping[str, VarDecl] | None
) -> tuple[str, ...]:
    """The secret values inside a value built from `uses` (each a variable it interpolated:
    name, value, and that value's own `derived`): a used secret's whole value, or, for a
    used value that is secret only by derivation, its secrets. Empty values hide nothing."""
    found: dict[str, None] = {}
    for name, value, derived in uses:
        for text in (value,) if _secret_in_itself(name, declared, value) else derived:
            if text:
                found[text] = None
    return tuple(found)


def masked(
    name: str,
    value: str,
    declared: Mapping[str, VarDecl] | None = None,
    reveal: bool = False,
    derived: Sequence[str] = (),
) -> str:
    """The value as devstack shows it: itself; masked whole, with a fingerprint, when it is
    secret in itself; or, when it was built from secrets (`derived`), with each of their
    occurrences masked and the whole value's fingerprint: `ops •••• (19 chars, #9cd55d)`.
    A derived value in which none of them appears (`${TOKEN:+--auth}`, or a live value
    older than the resolved one) is masked whole: nothing there shows what is safe."""
    if reveal:
        return value
    if _secret_in_itself(name, declared, value):
        return f"{MASK} ({fingerprint(value)})" if value else "(empty)"
    if any(derived):
        if not value:
            return "(empty)"
        shown = _mask_occurrences(value, derived)
        if shown == value:
            return f"{MASK} ({fingerprint(value)})"
        return f"{hide_url_passwords(shown)} ({fingerprint(value)})"
    return hide_url_passwords(value)


def _mask_occurrences(value: str, secrets: Sequence[str]) -> str:
    """`value` with every character inside an occurrence of one of `secrets` (overlapping
    ones too) masked, one MASK per run: replacing in turn could leave a secret's edge."""
    hidden = [False] * len(value)
    for secret in secrets:
        if not secret:
            continue
        start = value.find(secret)
        while start != -1:
            hidden[start : start + len(secret)] = [True] * len(secret)
            start = value.find(secret, start + 1)
    pieces: list[str] = []
    for index, char in enumerate(value):
        if not hidden[index]:
            pieces.append(char)
        elif index == 0 or not hidden[index - 1]:
            pieces.append(MASK)
    return "".join(pieces)


def hide_url_passwords(value: str) -> str:
    """`postgres://app:hunter2@db/app` -> `postgres://app:••••@db/app`."""
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}@", value)


def has_hidden_part(
    name: str,
    value: str,
    declared: Mapping[str, VarDecl] | None = None,
    derived: Sequence[str] = (),
) -> bool:
    """Whether showing this value masks anything (so a diff must compare fingerprints)."""
    return is_secret(name, declared, value, derived) or bool(_URL_PASSWORD.search(value))


class Masking:
    """`is_secret`, `masked` and `has_hidden_part` bound to one environment: devstack.yaml's
    declarations, and for each name the secret values its value was built from. For the
    callers that hold only names and values (config, the plan, `--live`, MCP)."""

    __slots__ = ("declared", "derived")

    def __init__(
        self,
        declared: Mapping[str, VarDecl] | None = None,
        derived: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.declared = declared
        self.derived: Mapping[str, Sequence[str]] = derived or {}

    def is_secret(self, name: str, value: str | None = None) -> bool:
        return is_secret(name, self.declared, value, self.derived.get(name, ()))

    def masked(self, name: str, value: str, reveal: bool = False) -> str:
        return masked(name, value, self.declared, reveal, self.derived.get(name, ()))

    def has_hidden_part(self, name: str, value: str) -> bool:
        return has_hidden_part(name, value, self.declared, self.derived.get(name, ()))

    def secret_texts(self, name: str, value: str) -> tuple[str, ...]:
        """What free text must never show of this variable: its whole value when it is
        secret in itself, else the secrets it was built from."""
        if _secret_in_itself(name, self.declared, value):
            return (value,)
        return tuple(self.derived.get(name, ()))


class KnownSecrets:
    """Known secret values (`Masking.secret_texts` of an environment), replaced by the mask
    wherever they appear in free text: a message naming a process whose command line a
    shell expanded (`app --owner $OWNER`), a log line. A value shorter than `min_length`
    is not searched for: "1" or "dev" would blank out every line."""

    __slots__ = ("pattern",)

    def __init__(self, values: Iterable[str] = (), min_length: int = 6) -> None:
        wanted = sorted({v for v in values if len(v) >= min_length}, key=len, reverse=True)
        # Longest first: a secret that contains another is masked whole.
        alternatives = "|".join(re.escape(value) for value in wanted)
        self.pattern = re.compile(alternatives) if wanted else None

    def __bool__(self) -> bool:
        return self.pattern is not None

    def text(self, text: str) -> str:
        return text if self.pattern is None else self.pattern.sub(MASK, text)


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
