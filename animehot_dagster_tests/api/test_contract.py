"""The wire contract (SPEC §9, ``api/contract/*.json``): all 18 operations answer it on data
written by the real ingest; a renamed, moved or dropped key fails it; the OpenAPI document
(generated from the models) carries every key the contract requires."""

from __future__ import annotations

import copy

import jsonschema_rs
import pytest

from animehot_dagster.api import contract
from animehot_dagster_tests.api.contract_check import check, violations
from animehot_dagster_tests.api.test_endpoints import ok, whole

ADMIN = {"X-API-Key": "s3cret"}


def test_the_contract_files_are_json_schemas_one_per_operation():
    assert len(contract.operations()) == 18
    for name in [*contract.operations().values(), "error"]:
        assert jsonschema_rs.meta.is_valid(contract.load(name)), name


def test_every_operation_answers_the_contract(client, market):
    """Each call is checked by the client (ContractClient); this exercises all 18."""
    ip = market["calm"]
    client.get("/health")
    whole(client.get("/api/v1/ips"))
    created = ok(client.post("/api/v1/ips", json={"name": "呪術廻戦", "tags": ["jujutsu"]}), 201)
    ok(client.get(f"/api/v1/ips/{ip}"))
    ok(client.put(f"/api/v1/ips/{created['id']}", json={"weight": 2.5, "notes": "n"}))
    ok(client.post(f"/api/v1/ips/{ip}/trigger"))
    for _ in range(2):  # a miss, then the cached answer
        ok(client.get(f"/api/v1/ips/{ip}/liquidity"))
        ok(client.get(f"/api/v1/ips/{ip}/stats/hourly"))
        whole(client.get(f"/api/v1/ips/{ip}/items"))
        ok(client.get("/api/v1/leaderboard", params={"hours": 3}))
    ok(client.get(f"/api/v1/ips/{created['id']}/liquidity"))  # no hour yet
    alerts = ok(client.get("/api/v1/alerts"))
    ok(client.post(f"/api/v1/alerts/{alerts[0]['id']}/ack"))
    ok(client.get("/api/v1/system/status"))
    ok(client.get("/api/v1/system/scheduler"))
    ok(client.post("/api/v1/admin/import", json={"ips": [{"name": "鬼滅の刃"}, {"name": "新IP"}, {}]}, headers=ADMIN))
    ok(client.post("/api/v1/admin/archive/daily?date=2026-11-02", headers=ADMIN))
    ok(client.post("/api/v1/admin/archive/weekly?week_start=2026-11-02", headers=ADMIN))
    ok(client.delete(f"/api/v1/ips/{created['id']}"))
    assert client.seen == set(contract.operations().values())


def _rename(body: dict, path: list, old: str, new: str) -> dict:
    changed = copy.deepcopy(body)
    target = changed
    for step in path:
        target = target[step]
    target[new] = target.pop(old)
    return changed


@pytest.mark.parametrize("mutate", [
    pytest.param(lambda b: {**b, "data": {"items": b["data"], "total": b["total"]}}, id="list moved into data.items"),
    pytest.param(lambda b: {k: v for k, v in b.items() if k != "total"}, id="total dropped"),
    pytest.param(lambda b: _rename(b, ["data", 0], "weight", "priority"), id="IP key renamed"),
    pytest.param(lambda b: _rename(b, ["data", 0], "created_at", "created"), id="time renamed"),
    pytest.param(lambda b: {**b, "data": [{**b["data"][0], "created_at": "2026-11-02T00:00:00Z"}]}, id="time not +09:00"),
    pytest.param(lambda b: {**b, "data": [{**b["data"][0], "tags": None}]}, id="tags null"),
])
def test_the_ip_list_contract_fails_on_a_changed_shape(client, market, mutate):
    body = whole(client.get("/api/v1/ips"))
    assert violations("ips_list", body) == []
    assert violations("ips_list", mutate(body))


def test_the_figures_contracts_fail_on_the_old_shapes(client, market):
    ip = market["busy"]
    hourly = client.get(f"/api/v1/ips/{ip}/stats/hourly").json()
    assert violations("ip_stats_hourly", _rename(hourly, ["data"], "stats", "items"))
    assert violations("ip_stats_hourly", _rename(hourly, ["data", "stats", 0], "hour_bucket", "hour"))

    liquidity = client.get(f"/api/v1/ips/{ip}/liquidity").json()
    assert violations("ip_liquidity", _rename(liquidity, ["data"], "on_sale_inflow", "inflow"))
    assert violations("ip_liquidity", {**liquidity, "data": {**liquidity["data"], "hot_score": None}})

    board = client.get("/api/v1/leaderboard", params={"hours": 3}).json()
    assert violations("leaderboard", _rename(board, ["data", "items", 0], "ip_name", "name"))
    assert violations("leaderboard", {**board, "data": {k: v for k, v in board["data"].items() if k != "count"}})

    alerts = client.get("/api/v1/alerts").json()
    assert violations("alerts_list", _rename(alerts, ["data", 0], "metric_value", "actual_value"))

    status = client.get("/api/v1/system/status").json()
    assert violations("system_status", {**status, "data": {**status["data"], "database": "ok"}})
    assert violations("system_status", _rename(status, ["data", "stats"], "active_items", "items_on_sale"))
    rate = copy.deepcopy(status)
    rate["data"]["pipeline"]["success_rate"] = 99.5  # a percentage, not a fraction
    assert violations("system_status", rate)


def test_a_status_other_than_the_contracts_fails():
    body = {"code": 0, "message": "success", "data": {"id": 1, "triggered": True}}
    assert check("POST", "/api/v1/ips/1/trigger", 200, body) == "ip_trigger"
    with pytest.raises(AssertionError, match="the contract says 200"):
        check("POST", "/api/v1/ips/1/trigger", 202, body)
    with pytest.raises(AssertionError, match="error code"):
        check("GET", "/api/v1/ips/1", 404, {"code": 400, "message": "x"})
    with pytest.raises(AssertionError, match="breaks contract/error.json"):
        check("GET", "/api/v1/ips/1", 404, {"code": 404, "error": "x"})


def _resolve(schema: dict, document: dict) -> dict:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    if "anyOf" in schema:  # X | None: the non-null branch
        branches = [s for s in schema["anyOf"] if s.get("type") != "null"]
        if len(branches) == 1:
            return _resolve(branches[0], document)
    return schema


def _missing(required: dict, published: dict, document: dict, where: str) -> list[str]:
    """Keys the contract requires that the OpenAPI schema does not require, recursively."""
    published = _resolve(published, document)
    found = []
    if required.get("type") == "object" or "required" in required:
        for key in required.get("required", []):
            if key not in published.get("required", []):
                found.append(f"{where}.{key}")
            elif key in required.get("properties", {}):
                found += _missing(required["properties"][key], published["properties"][key], document, f"{where}.{key}")
    if "items" in required and isinstance(required["items"], dict):
        found += _missing(required["items"], published.get("items", {}), document, f"{where}[]")
    if "anyOf" in required:
        for branch in required["anyOf"]:
            if branch.get("type") != "null":
                found += _missing(branch, published, document, where)
    return found


def test_the_openapi_document_requires_every_key_of_the_contract(app):
    document = app.openapi()
    for (method, path), name in contract.operations().items():
        operation = document["paths"][path][method.lower()]
        status = str(contract.load(name)["x-operation"]["status"])
        published = operation["responses"][status]["content"]["application/json"]["schema"]
        assert _missing(contract.load(name), published, document, name) == [], (method, path)


def test_the_openapi_check_fails_when_a_model_drops_a_key(app):
    document = copy.deepcopy(app.openapi())
    row = document["components"]["schemas"]["HourlyStatRow"]
    row["required"].remove("hour_bucket")
    published = document["paths"]["/api/v1/ips/{ip_id}/stats/hourly"]["get"]["responses"]["200"]["content"][
        "application/json"]["schema"]
    assert _missing(contract.load("ip_stats_hourly"), published, document, "hourly") == ["hourly.data.stats[].hour_bucket"]
