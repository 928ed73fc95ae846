"""Every answer of the API checked against the wire contract (``api/contract/*.json``): the
operation's schema for a success, ``error.json`` for an error. :class:`ContractClient` checks
each response it receives, so every endpoint test is also a contract test."""

from __future__ import annotations

import functools
import json

import jsonschema_rs
from fastapi.testclient import TestClient

from animehot_dagster.api import contract


@functools.cache
def validator(name: str):
    return jsonschema_rs.validator_for(contract.load(name))


def violations(name: str, body) -> list[str]:
    return [f"{'/'.join(map(str, e.instance_path)) or '(root)'}: {e.message}" for e in validator(name).iter_errors(body)]


def check(method: str, path: str, status: int, body) -> str | None:
    """Raise AssertionError naming each violation; return the schema name used (None: not an
    operation of the API and not an error)."""
    name = contract.operation_for(method, path)
    if status >= 400:
        name = "error"
        assert body.get("code") == status, f"{method} {path}: error code {body.get('code')} != HTTP {status}"
    elif name is None:
        return None
    else:
        expected = contract.load(name)["x-operation"]["status"]
        assert status == expected, f"{method} {path}: HTTP {status}, the contract says {expected}"
    found = violations(name, body)
    assert not found, f"{method} {path} breaks contract/{name}.json:\n  " + "\n  ".join(found)
    return name


class ContractClient(TestClient):
    """A TestClient whose every JSON answer must satisfy the contract; ``seen`` collects the
    operations answered successfully."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.seen: set[str] = set()

    def request(self, method, url, *args, **kwargs):
        response = super().request(method, url, *args, **kwargs)
        if response.headers.get("content-type", "").startswith("application/json"):
            name = check(method, response.request.url.path, response.status_code, json.loads(response.content))
            if name and name != "error":
                self.seen.add(name)
        return response
