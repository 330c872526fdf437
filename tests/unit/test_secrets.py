"""Which names are secret, masking with fingerprints, URL passwords."""

from __future__ import annotations

import pytest

from devstack.errors import Location
from devstack.model import VarDecl
from devstack.secrets import fingerprint, has_hidden_part, is_secret, masked


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


def test_public_prefixes_are_never_masked_unless_declared_secret() -> None:
    assert not is_secret("NEXT_PUBLIC_STRIPE_KEY") and not is_secret("VITE_API_TOKEN")
    assert not is_secret("EXPO_PUBLIC_API_KEY")
    assert masked("NEXT_PUBLIC_STRIPE_KEY", "pk_test_1") == "pk_test_1"
    assert masked("VITE_DB", "postgres://u:pw@h/db") == "postgres://u:••••@h/db"
    declared = {"VITE_KEY": VarDecl("VITE_KEY", Location("devstack.yaml", 1), secret=True)}
    assert is_secret("VITE_KEY", declared) and is_secret("STRIPE_SECRET_KEY")
