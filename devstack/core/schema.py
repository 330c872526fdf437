"""The JSON Schema of devstack.yaml, for editors that validate and complete it.

Kept next to the parser's key lists; a unit test checks they name the same keys.
"""

from __future__ import annotations

from typing import Any

SCHEMA_ID = "https://devstack.dev/schema/devstack.schema.json"

_VAR_NAME = "^[A-Za-z_][A-Za-z0-9_]*$"
_STRINGS = {"type": "array", "items": {"type": "string"}}

_ENV: dict[str, Any] = {
    "description": "Variables passed to services: NAME, PREFIX_*, !NAME, NAME=value; "
    "or a mapping NAME: value (null passes NAME through). Values use compose-spec "
    "interpolation: $NAME, ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:+alt}, "
    "${NAME+alt}, ${NAME:?error}, ${NAME?error}, nested in defaults; $$ is a literal $. "
    "An undefined ${NAME} without a default is an error (allow it with ${NAME-}).",
    "oneOf": [
        {"type": "array", "items": {"type": "string"}},
        {
            "type": "object",
            "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
        },
    ],
}
_ENV_FILES = {**_STRINGS, "description": "env files, lowest precedence first"}

_PROBE: dict[str, Any] = {
    "type": "object",
    "description": "When the service counts as ready: exactly one of http, tcp, log, cmd.",
    "properties": {
        "http": {"type": "string", "description": "a URL that answers 2xx"},
        "tcp": {"type": "string", "description": "host:port that accepts connections"},
        "log": {"type": "string", "description": "a regex matched against output lines"},
        "cmd": {"type": "string", "description": "a command that exits 0"},
        "timeout": {"type": "number", "default": 60},
        "interval": {"type": "number", "default": 0.25},
    },
    "additionalProperties": False,
    "oneOf": [{"required": [kind]} for kind in ("http", "tcp", "log", "cmd")],
}

_WATCH: dict[str, Any] = {
    "description": "Files whose change restarts the service (globs relative to cwd).",
    "oneOf": [
        _STRINGS,
        {
            "type": "object",
            "properties": {
                "paths": _STRINGS,
                "ignore": _STRINGS,
                "debounce_ms": {"type": "integer", "minimum": 0, "default": 50},
            },
            "required": ["paths"],
            "additionalProperties": False,
        },
    ],
}

# compose's names are accepted too: service_started, service_healthy (ready),
# service_completed_successfully; and its shorthand `db: service_healthy`.
_CONDITION = {
    "enum": [
        "started", "ready", "completed",
        "service_started", "service_healthy", "service_completed_successfully",
    ]
}  # fmt: skip
_DEPENDS_ON: dict[str, Any] = {
    "oneOf": [
        _STRINGS,
        {
            "type": "object",
            "additionalProperties": {
                "oneOf": [
                    {"type": "null"},
                    _CONDITION,
                    {
                        "type": "object",
                        "properties": {"condition": _CONDITION},
                        "additionalProperties": False,
                    },
                ]
            },
        },
    ]
}
# `x-*` keys hold YAML anchors and are ignored, as in compose.
_EXTENSIONS: dict[str, Any] = {"^x-": {}}

_IMAGE: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "description": "container image for `devstack export compose|kubernetes`",
}

_SERVICE: dict[str, Any] = {
    "type": "object",
    "required": ["cmd"],
    "additionalProperties": False,
    "patternProperties": _EXTENSIONS,
    "properties": {
        "cmd": {
            "description": (
                "a string without shell syntax is exec'd as its words, else runs under"
                " /bin/sh -c; a list is exec'd as it is"
            ),
            "oneOf": [{"type": "string"}, _STRINGS],
        },
        "cwd": {"type": "string", "description": "relative to the repo root (default: root)"},
        "env": _ENV,
        "env_files": _ENV_FILES,
        "depends_on": _DEPENDS_ON,
        "ready": _PROBE,
        "port": {"type": "integer", "minimum": 1, "maximum": 65535, "description": "sets PORT"},
        "restart": {"enum": ["no", "on-failure", "always", False], "default": "no"},
        "max_restarts": {"type": "integer", "minimum": 0},
        "stop_signal": {"type": ["string", "integer"], "default": "SIGTERM"},
        "stop_timeout": {"type": "number", "minimum": 0, "default": 5},
        "autostart": {"type": "boolean", "default": True},
        "tty": {"type": "boolean", "default": False},
        "watch": _WATCH,
        "restart_dependents": {"type": "boolean", "default": False},
        "package": {
            "type": "string",
            "description": "the package name, accepted wherever the service name is "
            "(default: the name in <cwd>/package.json)",
        },
        "image": _IMAGE,
    },
}

_VAR: dict[str, Any] = {
    "type": ["object", "null"],
    "additionalProperties": False,
    "properties": {
        "required": {"type": "boolean"},
        "secret": {"type": "boolean"},
        "same_across": {"oneOf": [{"const": "all"}, _STRINGS]},
        "pattern": {"type": "string", "format": "regex"},
        "description": {"type": "string"},
    },
}


def devstack_schema() -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "devstack.yaml",
        "type": "object",
        "additionalProperties": False,
        "patternProperties": _EXTENSIONS,
        "required": ["services"],
        "properties": {
            "env_mode": {"enum": ["strict", "loose"], "default": "strict"},
            "env": _ENV,
            "env_files": _ENV_FILES,
            "image": _IMAGE,
            "vars": {
                "type": "object",
                "propertyNames": {"pattern": _VAR_NAME},
                "additionalProperties": _VAR,
            },
            "services": {
                "type": "object",
                "propertyNames": {"pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]*$"},
                "additionalProperties": _SERVICE,
            },
        },
    }
