"""Schemathesis over /openapi.json: no server error, and every response (status code, content
type, body) conforms to the document the service publishes and to the wire contract
(``api/contract/*.json``). Bounded: a few dozen examples per operation."""

from __future__ import annotations

import time

import hypothesis
import schemathesis
from hypothesis import HealthCheck
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from animehot_dagster.api.app import create_app
from animehot_dagster_tests.api.conftest import NOW
from animehot_dagster_tests.api.contract_check import check as contract_check

# Invalid inputs must be refused with a documented status, never a server error.
NEGATIVE_CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES_PER_OPERATION = 20
BUDGET_SECONDS = 90


def _runner(operation, mode, checks):
    @hypothesis.settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                         suppress_health_check=list(HealthCheck), derandomize=True)
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def check(case):
        # With the right key most of the time, so the admin operations run past the 401.
        if case.headers is None or sum(map(ord, repr(case.query))) % 3:
            case.headers = {**(case.headers or {}), "X-API-Key": "s3cret"}
        response = case.call_and_validate(checks=checks)
        content_type = response.headers.get("content-type") or ""
        if (content_type[0] if isinstance(content_type, list) else content_type).startswith("application/json"):
            contract_check(case.method, case.formatted_path, response.status_code, response.json())

    return check


def test_the_api_conforms_to_its_openapi_document(settings, mysql_engine, queue_redis, market):
    app = create_app(settings, mysql_engine, queue_redis, clock=lambda: NOW)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    started = time.monotonic()
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        _runner(operation, GenerationMode.POSITIVE, CHECKS)()
        try:
            _runner(operation, GenerationMode.NEGATIVE, NEGATIVE_CHECKS)()
        except hypothesis.errors.Unsatisfiable:
            pass  # nothing to make invalid: the operation takes no parameters
    assert operations == 18
    assert time.monotonic() - started < BUDGET_SECONDS
