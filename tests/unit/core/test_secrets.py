"""Which names are secret, masking with fingerprints, URL passwords."""

from __future__ import annotations

import pytest

from devstack.core.errors import Location
from devstack.core.model import VarDecl
from devstack.core.secrets import (
    KnownSecrets,
    Masking,
    derived_from,
    fingerprint,
    has_hidden_part,
    hide_url_passwords,
    is_secret,
    mask_argv,
    mask_command_line,
    masked,
)


@pytest.mark.parametrize(
    "name",
    ["JOBS_SECRET_KEY", "GITHUB_TOKEN", "PGPASSWORD", "STRIPE_API_KEY", "PRIVATE_PEM", "DB_PASS"],
)
def test_secret_looking_names(name: str) -> None:
    assert is_secret(name)


@pytest.mark.parametrize("name", ["PORT", "DATABASE_HOST", "NODE_ENV", "MONKEY", "KEYBOARD"])
def test_plain_names(name: str) -> None:
    assert not is_secret(name)


def test_declared_secret() -> None:
    declared = {"BRAND": VarDecl("BRAND", Location("devstack.yaml", 3), secret=True)}
    assert is_secret("BRAND", declared)
    assert masked("BRAND", "acme", declared).startswith("••••")


def test_masked_value_shows_length_and_stable_fingerprint_only() -> None:
    shown = masked("JOBS_SECRET_KEY", "tr_dev_abcdef")
    assert "tr_dev" not in shown
    assert shown == masked("JOBS_SECRET_KEY", "tr_dev_abcdef")
    assert shown != masked("JOBS_SECRET_KEY", "tr_dev_abcdeg")
    assert "13 chars" in shown and fingerprint("tr_dev_abcdef") in shown
    assert masked("JOBS_SECRET_KEY", "tr_dev_abcdef", reveal=True) == "tr_dev_abcdef"


def test_url_passwords_are_hidden_whatever_the_name() -> None:
    shown = masked("DATABASE_URL", "postgres://app:hunter2@db:5432/app")
    assert shown == "postgres://app:••••@db:5432/app"
    assert has_hidden_part("DATABASE_URL", "postgres://app:hunter2@db/app")
    assert masked("SITE", "https://example.com/a:b") == "https://example.com/a:b"


# -- issue 11 §4: secrets by value, and in command lines --------------------------------

PLANTED = "Zq9planted7Xw"


@pytest.mark.parametrize(
    "value",
    [
        f"Bearer {PLANTED}abc",
        f"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.{PLANTED}",
        f"-----BEGIN RSA PRIVATE KEY-----\nMIIE{PLANTED}\n-----END RSA PRIVATE KEY-----",
        f"sk_live_{PLANTED}",
        f"ghp_{PLANTED}abcdefghijklmnop",
        "Basic dXNlcjpwYXNz",
        "AKIAIOSFODNN7EXAMPLE",
        f"xoxb-123456-{PLANTED}",
        f"sk-ant-api03-{PLANTED}abcdefghijk",
    ],
)
def test_secret_values_are_masked_whatever_the_name(value: str) -> None:
    shown = masked("AUTH_HEADER_VALUE", value)
    assert shown.startswith("••••") and PLANTED not in shown and "EXAMPLE" not in shown
    assert has_hidden_part("X", value) and is_secret("X", value=value)


@pytest.mark.parametrize("value", ["true", "http://localhost:8400", "sk_", "bearer", "debug"])
def test_ordinary_values_are_shown(value: str) -> None:
    assert masked("SOME_SETTING", value) == value


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["app", f"--token={PLANTED}"], "app --token=••••"),
        (["app", "--password", PLANTED, "--port", "80"], "app --password •••• --port 80"),
        (["app", "--api-key", PLANTED], "app --api-key ••••"),
        (["mysql", "-uroot", f"-p{PLANTED}"], "mysql -uroot -p••••"),
        (["redis-cli", "-a", PLANTED], "redis-cli -a ••••"),
        (["uvicorn", "app:app", "-p", "8000"], "uvicorn app:app -p 8000"),
        (["psql", f"postgres://app:{PLANTED}@db/app"], "psql postgres://app:••••@db/app"),
        (["psql", f"postgres://app:p@ss{PLANTED}@db:5432/a"], "psql postgres://app:••••@db:5432/a"),
        (["sh", "-c", f"API_TOKEN={PLANTED} node x --secret {PLANTED}"],
         "sh -c API_TOKEN=•••• node x --secret ••••"),
        (["curl", "-H", f"Authorization: Bearer {PLANTED}"], "curl -H Authorization: Bearer ••••"),
        (["worker", f"sk_live_{PLANTED}"], "worker ••••"),
    ],
)  # fmt: skip
def test_command_lines_are_masked(argv: list[str], shown: str) -> None:
    assert " ".join(mask_argv(argv)) == shown
    assert PLANTED not in mask_command_line(" ".join(argv))


def test_url_password_with_at_sign_is_hidden_whole() -> None:
    assert hide_url_passwords("redis://:p@ss@w0rd@cache:6379/0") == "redis://:••••@cache:6379/0"
    assert hide_url_passwords("see https://a.com/x@y") == "see https://a.com/x@y"


def test_secrets_module_imports_only_re() -> None:
    import subprocess
    import sys

    code = (
        "import sys, devstack.core.secrets;"
        " print(sorted(m for m in sys.modules if m.startswith('devstack')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['devstack', 'devstack.core', 'devstack.core.secrets']"


@pytest.mark.parametrize(
    "value",
    ["invalid token provided", "Bearer authentication required", "Basic authentication needed"],
)
def test_words_about_tokens_are_not_tokens(value: str) -> None:
    assert masked("ERROR_MESSAGE", value) == value


def test_public_prefixes_are_never_masked_unless_declared_secret() -> None:
    assert not is_secret("NEXT_PUBLIC_STRIPE_KEY") and not is_secret("VITE_API_TOKEN")
    assert not is_secret("EXPO_PUBLIC_API_KEY")
    assert masked("NEXT_PUBLIC_STRIPE_KEY", "pk_test_1") == "pk_test_1"
    assert masked("VITE_DB", "postgres://u:pw@h/db") == "postgres://u:••••@h/db"
    declared = {"VITE_KEY": VarDecl("VITE_KEY", Location("devstack.yaml", 1), secret=True)}
    assert is_secret("VITE_KEY", declared) and is_secret("STRIPE_SECRET_KEY")


# -- secrecy flows through interpolation ------------------------------------------------

TOKEN = "tok_Zq9derived"
FP = fingerprint


@pytest.mark.parametrize(
    ("name", "value", "derived", "shown"),
    [
        # The secret's text masked where it appears, the rest shown, the whole fingerprinted.
        ("OWNER", f"ops {TOKEN}", (TOKEN,), f"ops •••• ({FP(f'ops {TOKEN}')})"),
        ("CHAIN", f"{TOKEN}/{TOKEN}x", (TOKEN,), f"••••/••••x ({FP(f'{TOKEN}/{TOKEN}x')})"),
        # Overlapping occurrences: no edge of the secret is left showing.
        ("OVERLAP", "xaaay", ("aa",), f"x••••y ({FP('xaaay')})"),
        ("TWO", f"{TOKEN}:pw123456", (TOKEN, "pw123456"), f"••••:•••• ({FP(TOKEN + ':pw123456')})"),
        # Derived, but the secret's text is not there (`${TOKEN:+--auth}`): masked whole.
        ("FLAG", "--auth", (TOKEN,), f"•••• ({FP('--auth')})"),
        ("EMPTY", "", (TOKEN,), "(empty)"),
        # Empty secrets hide nothing (`${TOKEN:-none}` with TOKEN empty).
        ("DEFAULTED", "none", ("",), "none"),
        # Secret in itself (name, value shape): masked whole, as before.
        ("SERVICE_TOKEN", f"ops {TOKEN}", (TOKEN,), f"•••• ({FP(f'ops {TOKEN}')})"),
        ("AUTH_HEADER", f"Bearer {TOKEN}1", (TOKEN,), f"•••• ({FP(f'Bearer {TOKEN}1')})"),
        # A public prefix does not protect a secret it interpolated.
        ("NEXT_PUBLIC_URL", f"/x?k={TOKEN}", (TOKEN,), f"/x?k=•••• ({FP(f'/x?k={TOKEN}')})"),
        # URL passwords still hidden around the derived part.
        ("DB", f"pg://u:pw@h/{TOKEN}", (TOKEN,), f"pg://u:••••@h/•••• ({FP(f'pg://u:pw@h/{TOKEN}')})"),
    ],
)  # fmt: skip
def test_a_value_built_from_a_secret_shows_only_what_is_not_secret(
    name: str, value: str, derived: tuple[str, ...], shown: str
) -> None:
    assert masked(name, value, derived=derived) == shown
    assert masked(name, value, derived=derived, reveal=True) == value
    assert has_hidden_part(name, value, derived=derived) == (shown != value)
    assert is_secret(name, value=value, derived=derived) == any(derived)


DECLARED = {"BRAND": VarDecl("BRAND", Location("devstack.yaml", 1), secret=True)}


@pytest.mark.parametrize(
    ("uses", "found"),
    [
        ([("HOST", "db", ())], ()),
        ([("API_TOKEN", TOKEN, ())], (TOKEN,)),  # by name
        ([("BRAND", "acme", ())], ("acme",)),  # declared
        ([("X", "sk_live_Zq9abcdef", ())], ("sk_live_Zq9abcdef",)),  # by value
        ([("OWNER", f"ops {TOKEN}", (TOKEN,))], (TOKEN,)),  # transitively: the secret itself
        ([("API_TOKEN", "", ())], ()),  # empty: nothing to hide
        ([("API_TOKEN", TOKEN, ()), ("OWNER", f"x {TOKEN}", (TOKEN,))], (TOKEN,)),  # once
        ([("MY_PASSWORD", "pw", ()), ("HOST", "db", ())], ("pw",)),
    ],
)
def test_derived_from_finds_the_secrets_a_value_used(
    uses: list[tuple[str, str, tuple[str, ...]]], found: tuple[str, ...]
) -> None:
    assert derived_from(uses, DECLARED) == found


def test_masking_binds_declarations_and_derivations() -> None:
    masking = Masking(DECLARED, {"OWNER": (TOKEN,)})
    assert masking.masked("OWNER", f"ops {TOKEN}").startswith("ops •••• (")
    assert masking.masked("OTHER", f"ops {TOKEN}") == f"ops {TOKEN}"  # derived by name only
    assert masking.masked("BRAND", "acme").startswith("•••• (")
    assert masking.is_secret("OWNER", "x") and not masking.is_secret("HOST", "db")
    assert masking.secret_texts("OWNER", f"ops {TOKEN}") == (TOKEN,)
    assert masking.secret_texts("BRAND", "acme") == ("acme",)
    assert masking.secret_texts("HOST", "db") == ()


def test_known_secrets_are_masked_in_free_text_longest_first() -> None:
    known = KnownSecrets([TOKEN, TOKEN + "_longer", "dev"])
    line = f"python3 app.py ops {TOKEN}_longer --x {TOKEN} dev"
    assert known.text(line) == "python3 app.py ops •••• --x •••• dev"  # "dev": too short
    assert not KnownSecrets(["dev", ""]) and KnownSecrets([TOKEN])
    assert KnownSecrets().text(line) == line
