"""Which variables are secret, and how their values are shown without revealing them.

A masked value keeps a fingerprint (length and a short hash) so two services can be
compared ("same secret?") without anyone reading it. Passwords inside URLs are hidden
whatever the variable is called.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from devstack.model import VarDecl

# Words that make a name secret when they are one of its _-separated parts ...
SECRET_PARTS = frozenset(
    {
        "SECRET", "SECRETS", "TOKEN", "TOKENS", "PASSWORD", "PASSWD", "PASS", "KEY", "KEYS",
        "APIKEY", "PRIVATE", "CREDENTIAL", "CREDENTIALS", "CREDS", "SALT", "SIGNATURE", "DSN",
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
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)(?P<password>[^@\s]+)@")
MASK = "••••"


def is_secret(name: str, declared: Mapping[str, VarDecl] | None = None) -> bool:
    """True for names that look secret, or that devstack.yaml declares `secret: true`;
    never for a public prefix (NEXT_PUBLIC_STRIPE_KEY is in every browser) unless declared."""
    if declared and name in declared and declared[name].secret:
        return True
    if name.startswith(PUBLIC_PREFIXES):
        return False
    upper = name.upper()
    if any(part in SECRET_PARTS for part in upper.split("_")):
        return True
    return any(word in upper for word in SECRET_SUBSTRINGS)


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
    if is_secret(name, declared):
        return f"{MASK} ({fingerprint(value)})" if value else "(empty)"
    return hide_url_passwords(value)


def hide_url_passwords(value: str) -> str:
    """`postgres://app:hunter2@db/app` -> `postgres://app:••••@db/app`."""
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}@", value)


def has_hidden_part(name: str, value: str, declared: Mapping[str, VarDecl] | None = None) -> bool:
    """Whether showing this value masks anything (so a diff must compare fingerprints)."""
    return is_secret(name, declared) or bool(_URL_PASSWORD.search(value))
