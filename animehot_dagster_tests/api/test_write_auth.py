"""Issue 17: with APP_ENV=prod the writes of the catalog (create, update, delete, trigger, alert
ack) need the admin key, as /api/v1/admin/* does; reads stay open. With APP_ENV=local (the
original's behaviour, SPEC §9) the catalog writes stay open, and the admin routes need the key
only when ADMIN_API_KEY is set."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from animehot_dagster.api.app import create_app
from animehot_dagster.settings import load_settings
from animehot_dagster.storage.schema import ip_alerts, ip_metadata
from animehot_dagster_tests.api.conftest import NOW
from animehot_dagster_tests.api.contract_check import ContractClient
from animehot_dagster_tests.api.test_endpoints import err, ok

KEY = {"X-API-Key": "s3cret"}


def _client(env: dict, mysql_engine, queue_redis) -> ContractClient:
    settings = load_settings({"AUTO_MIGRATE": "false", **env})
    return ContractClient(create_app(settings, mysql_engine, queue_redis, clock=lambda: NOW))


@pytest.fixture
def prod(mysql_engine, queue_redis, market) -> Iterator[ContractClient]:
    with _client({"APP_ENV": "prod", "ADMIN_API_KEY": "s3cret"}, mysql_engine, queue_redis) as client:
        yield client


def _alert_id(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(sa.select(sa.func.min(ip_alerts.c.id))).scalar_one()


def _writes(market, alert_id):
    """(method, path, body) of every catalog write."""
    calm, idle = market["calm"], market["idle"]
    return [
        ("POST", "/api/v1/ips", {"name": "葬送のフリーレン"}),
        ("PUT", f"/api/v1/ips/{calm}", {"weight": 2}),
        ("POST", f"/api/v1/ips/{calm}/trigger", None),
        ("POST", f"/api/v1/alerts/{alert_id}/ack", None),
        ("DELETE", f"/api/v1/ips/{idle}", None),
    ]


def _state(engine) -> tuple:
    with engine.connect() as connection:
        ips = connection.execute(sa.select(ip_metadata.c.id, ip_metadata.c.weight, ip_metadata.c.status)
                                 .order_by(ip_metadata.c.id)).all()
        acked = connection.execute(sa.select(sa.func.sum(ip_alerts.c.acknowledged))).scalar_one()
    return ips, acked


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}, {"X-API-Key": "s3cret-and-more"}],
                         ids=["no_key", "wrong_key", "longer_key"])
def test_in_prod_a_catalog_write_without_the_key_is_refused_and_changes_nothing(
        prod, market, mysql_engine, queue_redis, headers):
    before = _state(mysql_engine)
    for method, path, body in _writes(market, _alert_id(mysql_engine)):
        err(prod.request(method, path, json=body, headers=headers), 401, "X-API-Key")
    assert _state(mysql_engine) == before
    assert queue_redis.llen("animetop:queue:tasks") == 0  # no trigger got through


def test_in_prod_the_key_opens_every_catalog_write(prod, market, mysql_engine):
    statuses = [prod.request(method, path, json=body, headers=KEY).status_code
                for method, path, body in _writes(market, _alert_id(mysql_engine))]
    assert statuses == [201, 200, 200, 200, 200]
    assert ok(prod.get(f"/api/v1/ips/{market['calm']}"))["weight"] == 2


def test_in_prod_reads_stay_open(prod, market):
    calm = market["calm"]
    for path in ("/health", "/api/v1/ips", f"/api/v1/ips/{calm}", f"/api/v1/ips/{calm}/liquidity",
                 f"/api/v1/ips/{calm}/stats/hourly", f"/api/v1/ips/{calm}/items", "/api/v1/leaderboard",
                 "/api/v1/alerts", "/api/v1/system/status"):
        assert prod.get(path).status_code == 200, path


def test_in_prod_the_admin_routes_still_need_the_key(prod, market):
    err(prod.post("/api/v1/admin/archive/daily"), 401, "X-API-Key")
    assert prod.post("/api/v1/admin/archive/daily", headers=KEY).status_code == 200


@pytest.mark.parametrize("env", [{"ADMIN_API_KEY": "s3cret"}, {}], ids=["local_with_key", "local_without_key"])
def test_in_development_the_catalog_writes_stay_open(mysql_engine, queue_redis, market, env):
    with _client(env, mysql_engine, queue_redis) as client:
        statuses = [client.request(method, path, json=body).status_code
                    for method, path, body in _writes(market, _alert_id(mysql_engine))]
        assert statuses == [201, 200, 200, 200, 200]
        admin = client.post("/api/v1/admin/archive/daily").status_code
    assert admin == (401 if env else 200)  # SPEC §9: the admin routes need the key when it is set


def test_the_openapi_document_names_the_key_and_the_401_of_each_write(prod):
    document = prod.get("/openapi.json").json()
    for method, path in (("post", "/api/v1/ips"), ("put", "/api/v1/ips/{ip_id}"), ("delete", "/api/v1/ips/{ip_id}"),
                         ("post", "/api/v1/ips/{ip_id}/trigger"), ("post", "/api/v1/alerts/{alert_id}/ack")):
        operation = document["paths"][path][method]
        assert "401" in operation["responses"], (method, path)
        assert any(p["name"] == "X-API-Key" and p["in"] == "header" for p in operation["parameters"]), (method, path)
    assert "401" not in document["paths"]["/api/v1/ips"]["get"]["responses"]
