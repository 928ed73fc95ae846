"""The wire contract (SPEC §9): one JSON Schema per operation, ``<name>.json`` beside this file,
written from the SPEC, not from the models; ``error.json`` for every error. Each operation's
file names it under ``x-operation`` (method, path template, success status)."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

HERE = Path(__file__).parent


@functools.cache
def load(name: str) -> dict:
    return json.loads((HERE / f"{name}.json").read_text(encoding="utf-8"))


@functools.cache
def operations() -> dict[tuple[str, str], str]:
    """(method, path template) → schema name, for the 18 operations."""
    found = {}
    for path in sorted(HERE.glob("*.json")):
        operation = load(path.stem).get("x-operation")
        if operation:
            found[(operation["method"], operation["path"])] = path.stem
    return found


def _pattern(template: str) -> re.Pattern:
    return re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$")


def operation_for(method: str, path: str) -> str | None:
    """The schema name of the operation answering ``method`` on the concrete ``path``."""
    for (op_method, template), name in operations().items():
        if op_method == method.upper() and _pattern(template).match(path):
            return name
    return None
