"""Interpolation: compose-go's own test table, the grammar fuzzed, and how devstack reports it.

The table transcribes every case of every test function in
compose-spec/compose-go `template/template_test.go` at commit
e70e961c3a3acebf0800b882f1afb3dbf1fb74a2: the mapping it uses, the template and
compose's value or error. Cases where devstack is deliberately stricter (an undefined
`$NAME`/`${NAME}` with no default is an error, not an empty string) are marked
STRICTER; for them the table also checks that the value compose gives is the one
devstack would give if it were not stricter.
"""

from __future__ import annotations

import json
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devstack.core.config import parse_project
from devstack.core.envmodel import ProjectEnv
from devstack.core.envresolve import resolve_project
from devstack.core.interpolate import (
    InvalidTemplate,
    Lookup,
    Reference,
    escape,
    interpolate,
    parse,
)

# -- compose-go's table ----------------------------------------------------------------

DEFAULTS = {"FOO": "first", "BAR": "", "JSON": '{"json":2}'}  # compose-go's `defaults`


@dataclass(frozen=True)
class Value:
    text: str


@dataclass(frozen=True)
class Invalid:
    """compose: an InvalidTemplateError ("Invalid template: ...")."""


@dataclass(frozen=True)
class Required:
    """compose: a MissingRequiredError with this text."""

    text: str


@dataclass(frozen=True)
class Undefined:
    """devstack's error for an undefined `${NAME}` (compose: an empty string)."""

    names: tuple[str, ...]


@dataclass(frozen=True)
class Raised:
    """An error raised by the test's own mapping function."""

    text: str


@dataclass(frozen=True)
class Chose:
    """The operator compose's getSubstitutionFunctionForTemplate picks for `${input}`."""

    operator: str


Outcome = Value | Invalid | Required | Undefined | Raised | Chose


class HookError(LookupError):
    pass


def replacement_hook(applied_only: bool) -> Lookup:
    """TestSubstituteWithReplacement(Applied)Func's replacement function, as a lookup:
    `${NOTHERE}` fails with "bad choice"; otherwise compose's own value, but "foobar" when
    that is empty (ReplacementFunc) or when the variable is unset (ReplacementAppliedFunc)."""

    def lookup(name: str) -> str | None:
        if name == "NOTHERE":
            raise HookError('bad choice: "${NOTHERE}"')
        value = DEFAULTS.get(name)
        if applied_only:
            return "foobar" if value is None else value
        return value or "foobar"

    return lookup


def only_a(name: str) -> str | None:  # TestLazyRequiredMessageDoesNotWarn's mapping
    return "value" if name == "A" else None


@dataclass(frozen=True)
class Case:
    go_test: str
    template: str
    compose: Outcome
    lookup: Lookup = DEFAULTS.get
    stricter: Undefined | None = None  # STRICTER: devstack's outcome where it differs


def choice(name: str, template: str, symbol: str) -> Case:
    return Case(f"TestSubstitutionFunctionChoice/{name}", "${" + template + "}", Chose(symbol))


MISSING = "required variable UNSET_VAR is missing a value"
CASES = [
    Case("TestEscaped", "$${foo}", Value("${foo}")),
    Case("TestSubstituteNoMatch", "foo", Value("foo")),
    *(Case("TestUnescaped", t, Value(t)) for t in ("a $ string", "^REGEX$", "$}", "$")),
    *(
        Case("TestInvalid", t, Invalid())
        for t in ("${", "${}", "${ }", "${ foo}", "${foo }", "${foo!}")
    ),
    Case("TestNonBraced", "$FOO-bar", Value("first-bar")),
    Case(
        "TestNoValueNoDefault",
        "This ${missing} var",
        Value("This  var"),
        stricter=Undefined(("missing",)),
    ),
    Case("TestNoValueNoDefault", "This ${BAR} var", Value("This  var")),
    Case("TestValueNoDefault", "This $FOO var", Value("This first var")),
    Case("TestValueNoDefault", "This ${FOO} var", Value("This first var")),
    Case("TestNoValueWithDefault", "ok ${missing:-def}", Value("ok def")),
    Case("TestNoValueWithDefault", "ok ${missing-def}", Value("ok def")),
    # compose: no warning, as the unused ${A} is never looked up; devstack: no error.
    Case("TestLazyDefaultDoesNotWarn", "${A:+${A},}B", Value("B")),
    # compose: "" with a warning that B is not set.
    Case("TestLazyDefaultWarnsWhenUsed", "${A:-${B}}", Value(""), stricter=Undefined(("B",))),
    Case("TestLazyRequiredMessageDoesNotWarn", "${A?${B}}", Value("value"), only_a),
    Case("TestEmptyValueWithSoftDefault", "ok ${BAR:-def}", Value("ok def")),
    Case("TestValueWithSoftDefault", "ok ${FOO:-def}", Value("ok first")),
    Case("TestEmptyValueWithHardDefault", "ok ${BAR-def}", Value("ok ")),
    Case("TestPresentValueWithUnset", "ok ${UNSET_VAR:+presence_value}", Value("ok ")),
    Case("TestPresentValueWithUnset2", "ok ${UNSET_VAR+presence_value}", Value("ok ")),
    Case("TestPresentValueWithNonEmpty", "ok ${FOO:+presence_value}", Value("ok presence_value")),
    Case(
        "TestPresentValueAndNonEmptyWithNonEmpty",
        "ok ${FOO+presence_value}",
        Value("ok presence_value"),
    ),
    Case("TestPresentValueWithSet", "ok ${BAR+presence_value}", Value("ok presence_value")),
    Case("TestPresentValueAndNotEmptyWithSet", "ok ${BAR:+presence_value}", Value("ok ")),
    Case(
        "TestNonAlphanumericDefault",
        "ok ${BAR:-/non:-alphanumeric}",
        Value("ok /non:-alphanumeric"),
    ),
    *(
        Case("TestInterpolationExternalInterference", template, Value(expected))
        for template, expected in (
            ("-ok ${BAR:-defaultValue}", "-ok defaultValue"),
            ("+ok ${UNSET:-${BAR-defaultValue}}", "+ok "),
            ("-ok ${FOO:-defaultValue}", "-ok first"),
            (":-ok ${UNSET-defaultValue}", ":-ok defaultValue"),
            (":-ok ${BAR-defaultValue}", ":-ok "),
            (":?ok ${BAR-defaultValue}", ":?ok "),
            (":?ok ${BAR:-defaultValue}", ":?ok defaultValue"),
            (":+ok ${BAR:-defaultValue}", ":+ok defaultValue"),
            ("+ok ${BAR-defaultValue}", "+ok "),
            ("?ok ${BAR:-defaultValue}", "?ok defaultValue"),
        )
    ),
    *(
        Case("TestDefaultsWithNestedExpansion", template, Value(expected))
        for template, expected in (
            ("ok ${UNSET_VAR-$FOO}", "ok first"),
            ("ok ${UNSET_VAR-${FOO}}", "ok first"),
            ("ok ${UNSET_VAR-${FOO} ${FOO}}", "ok first first"),
            ("ok ${BAR:-$FOO}", "ok first"),
            ("ok ${BAR:-${FOO}}", "ok first"),
            ("ok ${BAR:-${FOO} ${FOO}}", "ok first first"),
            ("ok ${BAR+$FOO}", "ok first"),
            ("ok ${BAR+$FOO ${FOO:+second}}", "ok first second"),
        )
    ),
    *(
        Case("TestMandatoryVariableErrors", template, Required(expected))
        for template, expected in (
            (
                "not ok ${UNSET_VAR:?Mandatory Variable Unset}",
                f"{MISSING}: Mandatory Variable Unset",
            ),
            (
                "not ok ${BAR:?Mandatory Variable Empty}",
                "required variable BAR is missing a value: Mandatory Variable Empty",
            ),
            ("not ok ${UNSET_VAR:?}", MISSING),
            (
                "not ok ${UNSET_VAR?Mandatory Variable Unset}",
                f"{MISSING}: Mandatory Variable Unset",
            ),
            ("not ok ${UNSET_VAR?}", MISSING),
        )
    ),
    *(
        Case("TestMandatoryVariableErrorsWithNestedExpansion", t, Required(f"{MISSING}: {m}"))
        for t, m in (
            ("not ok ${UNSET_VAR:?Mandatory Variable ${FOO}}", "Mandatory Variable first"),
            ("not ok ${UNSET_VAR?Mandatory Variable ${FOO}}", "Mandatory Variable first"),
        )
    ),
    Case("TestDefaultsForMandatoryVariables", "ok ${FOO:?err}", Value("ok first")),
    Case("TestDefaultsForMandatoryVariables", "ok ${FOO?err}", Value("ok first")),
    Case("TestDefaultsForMandatoryVariables", "ok ${BAR?err}", Value("ok ")),
    # Its custom function errIsMissing makes an unset ${NAME} an error: devstack's default.
    Case("TestSubstituteWithCustomFunc", "ok ${FOO}", Value("ok first")),
    Case("TestSubstituteWithCustomFunc", "ok ${BAR}", Value("ok ")),
    Case("TestSubstituteWithCustomFunc", "ok ${NOTHERE}", Undefined(("NOTHERE",))),
    *(
        Case(
            f"TestSubstituteWith{kind}",
            template,
            expected,
            replacement_hook(kind != "ReplacementFunc"),
        )
        for kind, template, expected in (
            ("ReplacementFunc", "ok ${FOO}", Value("ok first")),
            ("ReplacementFunc", "ok ${BAR}", Value("ok foobar")),
            ("ReplacementFunc", "ok ${UNSET}", Value("ok foobar")),
            ("ReplacementFunc", "ok ${NOTHERE}", Raised("bad choice")),
            ("ReplacementAppliedFunc", "ok ${FOO}", Value("ok first")),
            ("ReplacementAppliedFunc", "ok ${BAR}", Value("ok ")),
            ("ReplacementAppliedFunc", "ok ${UNSET}", Value("ok foobar")),
            ("ReplacementAppliedFunc", "ok ${NOTHERE}", Raised("bad choice")),
        )
    ),
    # The last check of TestSubstituteWithReplacementFunc uses the default mapping.
    Case(
        "TestSubstituteWithReplacementFunc",
        "ok ${SUBDOMAIN:-redis}.${FOO:?}",
        Value("ok redis.first"),
    ),
    Case("TestPrecedence", "${UNSET_VAR?bar-baz}", Required(f"{MISSING}: bar-baz")),
    Case("TestPrecedence", "${UNSET_VAR-myerror?msg}", Value("myerror?msg")),
    Case("TestPrecedence", "${FOO?bar-baz}", Value("first")),
    Case(
        "TestPrecedence",
        "${BAR:-default_value_for_empty_var}",
        Value("default_value_for_empty_var"),
    ),
    Case(
        "TestPrecedence",
        "${UNSET_VAR-default_value_for_unset_var}",
        Value("default_value_for_unset_var"),
    ),
    choice("Error when EMPTY or UNSET", "VARNAME:?val?ue", ":?"),
    choice("Error when UNSET 1", "VARNAME?val:?ue", "?"),
    choice("Error when UNSET 2", "VARNAME?va-lu+e:?e", "?"),
    choice("Error when UNSET 3", "VARNAME?va+lu-e:?e", "?"),
    choice("Default when EMPTY or UNSET", "VARNAME:-value", ":-"),
    choice("Default when UNSET 1", "VARNAME-va:-lu:?e", "-"),
    choice("Default when UNSET 2", "VARNAME-va+lu?e", "-"),
    choice("Default when UNSET 3", "VARNAME-va?lu+e", "-"),
    choice("Default when NOT EMPTY", "VARNAME:+va:?lu:-e", ":+"),
    choice("Default when SET 1", "VARNAME+va:+lue", "+"),
    choice("Default when SET 2", "VARNAME+va?lu-e", "+"),
    choice("Default when SET 3", "VARNAME+va-lu?e", "+"),
    *(
        Case("TestNoValueWithCurlyBracesDefault", t, Value('ok {"json":1}'))
        for t in ('ok ${missing:-{"json":1}}', 'ok ${missing-{"json":1}}')
    ),
    *(
        Case("TestValueWithCurlyBracesDefault", t, Value('ok {"json":2}'))
        for t in ('ok ${JSON:-{"json":1}}', 'ok ${JSON-{"json":1}}')
    ),
]


def devstack_outcome(case: Case) -> Outcome:
    if isinstance(case.compose, Chose):
        [reference] = parse(case.template)
        assert isinstance(reference, Reference)
        return Chose(reference.operator or "")
    try:
        expansion = interpolate(case.template, case.lookup)
    except InvalidTemplate:
        return Invalid()
    except HookError as error:
        return Raised("bad choice") if "bad choice" in str(error) else Raised(str(error))
    if expansion.missing:
        return Required(str(expansion.missing[0]))  # compose returns the first error
    if expansion.undefined:
        assert case.stricter is None or Value(expansion.value) == case.compose
        return Undefined(tuple(reference.name for reference in expansion.undefined))
    return Value(expansion.value)


@pytest.mark.parametrize("case", CASES, ids=[f"{c.go_test}:{c.template}" for c in CASES])
def test_compose_go_template_table(case: Case) -> None:
    assert devstack_outcome(case) == (case.stricter or case.compose)


def test_the_table_is_whole() -> None:
    """93 cases in 33 test functions at that commit; 2 of them marked STRICTER."""
    assert len(CASES) == 93
    assert len({case.go_test.split("/")[0] for case in CASES}) == 33
    assert sum(case.stricter is not None for case in CASES) == 2


# -- the grammar, fuzzed ----------------------------------------------------------------

PIECES = (
    *("$", "$$", "${", "{", "}", ":-", "-", ":+", "+", ":?", "?", ":"),
    *("FOO", "BAR", "UNSET", "_x1", "1", " ", "x", '"', "'", "\\", "\n", "é"),
)
texts_from_the_grammar = st.lists(st.sampled_from(PIECES), max_size=16).map("".join)


def never_called(name: str) -> str | None:
    raise AssertionError(f"looked up {name}")


@settings(max_examples=300, deadline=None)
@given(texts_from_the_grammar)
def test_any_text_from_the_grammar_expands_or_is_invalid_at_a_dollar(text: str) -> None:
    try:
        expansion = interpolate(text, DEFAULTS.get)
    except InvalidTemplate as error:
        assert text[error.offset : error.offset + 2] == "${"
        assert error.snippet.startswith("${")
        return
    if "$" not in text:
        assert expansion.value == text
    assert all(f"${name}" in text or f"${{{name}" in text for name in expansion.used)
    assert all(reference.name not in DEFAULTS for reference in expansion.undefined)


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    deep = "${A:-" * 10_000 + "x" + "}" * 10_000
    with pytest.raises(InvalidTemplate, match="nest more than 32 deep"):
        interpolate(deep, DEFAULTS.get)
    assert interpolate("${A:-" * 32 + "x" + "}" * 32, DEFAULTS.get).value == "x"


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), texts_from_the_grammar))
def test_escaping_any_text_round_trips(text: str) -> None:
    expansion = interpolate(escape(text), never_called)
    assert expansion.value == text
    assert not (expansion.used or expansion.undefined or expansion.missing)


@settings(max_examples=60, deadline=None)
@given(texts_from_the_grammar, texts_from_the_grammar)
def test_any_value_from_the_grammar_resolves_or_is_a_config_error(
    in_env_file: str, in_config: str
) -> None:
    """Through devstack: an env file and a devstack.yaml value built from the pieces give
    values or problems with a file and line; `env`, `run` and `up` raise DevstackError."""
    from devstack.commands import fail_on_env_errors
    from devstack.core.errors import DevstackError

    with tempfile.TemporaryDirectory() as root:
        env = resolve(
            Path(root),
            "env_mode: loose\nservices:\n"
            f"  api: {{cmd: run, env: {{FROM_CONFIG: {json.dumps(in_config)}}}}}\n",
            {".env": f'FOO=first\nFROM_FILE="{in_env_file}"\n'},
        )
    assert all(problem.location and problem.location.line for problem in env.problems)
    try:
        fail_on_env_errors(env)
    except DevstackError:
        return
    assert set(env.services["api"].values) >= {"FOO", "FROM_CONFIG"}


# -- through envresolve: where values come from and what goes wrong -----------------------


def resolve(
    root: Path, config: str, files: dict[str, str], shell: dict[str, str] | None = None
) -> ProjectEnv:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    path = root / "devstack.yaml"
    path.write_text(textwrap.dedent(config))
    return resolve_project(parse_project(path.read_text(), path), shell or {}, {})


LOOSE_API = "env_mode: loose\nservices:\n  api: {cmd: run, port: 8400, env: [%s]}\n"


def test_every_form_in_an_env_file_and_in_devstack_yaml(tmp_path: Path) -> None:
    env = resolve(
        tmp_path,
        LOOSE_API % '"API_URL=http://$HOST:${PORT}/${PREFIX-v1}", "SEEN=${EMPTY:+yes}${HOST+h}"',
        {
            ".env": """\
            HOST=localhost
            EMPTY=
            DB=postgres://${DB_USER:-app}@${HOST}/${DB_NAME-${HOST}_dev}
            JSON=${CONFIG:-{"debug":true}}
            PRICE=$$5 and $1 and a $ alone
            LITERAL='${NOT_EXPANDED} $HOST'
            OPTIONAL=[${EMPTY-unset}]
            REQUIRED=${HOST:?set HOST in .env}
            """
        },
        shell={"USER": "me"},
    )
    assert env.problems == []
    values = env.services["api"].values
    assert values["DB"] == "postgres://app@localhost/localhost_dev"
    assert values["JSON"] == '{"debug":true}'
    assert values["PRICE"] == "$5 and $1 and a $ alone"
    assert values["LITERAL"] == "${NOT_EXPANDED} $HOST"
    assert values["OPTIONAL"] == "[]"
    assert values["REQUIRED"] == "localhost"
    assert values["API_URL"] == "http://localhost:8400/v1"
    assert values["SEEN"] == "h"


def test_a_value_keeps_the_sources_of_the_names_it_used(tmp_path: Path) -> None:
    env = resolve(
        tmp_path,
        LOOSE_API % '"API_URL=http://localhost:${PORT}", "HOME_URL=file://$HOME/${DB_PORT:-5432}"',
        {".env": "PLAIN=1\n"},
        shell={"HOME": "/home/me"},
    )
    api = env.services["api"].variables
    assert api["API_URL"].source.written == "http://localhost:${PORT}"
    [port] = api["API_URL"].source.uses
    assert (
        port.name == "PORT" and port.source and port.source.label == "devstack.yaml:3 (port: 8400)"
    )
    home, db_port = api["HOME_URL"].source.uses
    assert home.source and home.source.kind == "shell" and db_port.source is None
    assert api["PLAIN"].source.written is None and api["PLAIN"].source.uses == ()


def test_an_undefined_name_is_an_error_that_says_how_to_allow_it(tmp_path: Path) -> None:
    env = resolve(
        tmp_path,
        LOOSE_API % '"URL=${API_HOST}"',
        {".env": "API_HOSTNAME=x\nGREETING=hi$there\nDB_PASSWORD=pa$word\n"},
    )
    rendered = "\n".join(problem.render() for problem in env.problems)
    assert rendered.count("error:") == 3, rendered
    assert (
        "devstack.yaml:3:" in rendered and "URL uses ${API_HOST}, which is not defined" in rendered
    )
    assert "did you mean API_HOSTNAME?" in rendered and "${API_HOST-} to allow it unset" in rendered
    assert ".env:2: error: GREETING uses $there, which is not defined" in rendered
    assert "hint: for a literal $, write $$ ($$there); or define there" in rendered
    # In a secret, `$word` is more likely a piece of the value: the message does not show it.
    assert ".env:3: error: DB_PASSWORD uses an undefined $NAME at character 3" in rendered
    assert "word" not in rendered


def test_a_required_variable_fails_with_the_users_own_message(tmp_path: Path) -> None:
    env = resolve(
        tmp_path,
        LOOSE_API % '"KEY=${STRIPE_KEY:?ask ${OWNER}, not ${API_TOKEN}}"',
        {
            ".env": "API_TOKEN=tok_123\nOWNER=ops\nTOKEN_USER=${API_TOKEN}\n"
            "BLANK=\nNEEDED=${BLANK:?}\n"
        },
    )
    by_line = {str(p.location).split(":")[1]: p for p in env.problems}
    needed = by_line["5"]
    assert needed.message == "NEEDED: required variable BLANK is missing a value"
    assert needed.hint == "define BLANK with a value that is not empty in an env file or the shell"
    key = by_line["3"]
    assert str(key.location).startswith("devstack.yaml:3")
    assert key.message.startswith(
        "KEY: required variable STRIPE_KEY is missing a value: ask ops, not"
    )
    assert "tok_123" not in key.message and "7 chars" in key.message  # masked, as `env` shows it
    assert len(env.problems) == 2


def test_invalid_syntax_is_an_error_at_its_line_that_never_shows_a_secret(tmp_path: Path) -> None:
    env = resolve(
        tmp_path,
        LOOSE_API % "",
        {".env": "OK=1\nURL=http://${HOST\nDB_PASSWORD=hunter${2}\n"},
    )
    url, password = env.problems
    assert str(url.location) == ".env:2" and url.code == "invalid-interpolation"
    assert url.message == "URL: invalid interpolation `${HOST`: the `${` is never closed by `}`"
    assert password.message == (
        "DB_PASSWORD: invalid interpolation at character 7: a name must follow `${`"
    )
