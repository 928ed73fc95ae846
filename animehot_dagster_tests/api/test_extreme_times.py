"""Issue 17 #2 and #4: times at the edges of what a datetime holds. A parameter naming a time out of
range is a 400 naming the parameter (not a plain-text 500 from an OverflowError); a far-future
time stored before the wire bounds existed (last_crawled_at 9999-12-31) renders, so the IP list
and every read of that IP keep answering."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from animehot_dagster.api.app import create_app
from animehot_dagster.domain.cadence import rebuild_schedule
from animehot_dagster.queue import keys
from animehot_dagster.storage.schema import ip_alerts, ip_metadata, item_snapshots
from animehot_dagster_tests.api.test_endpoints import err, ok, whole

ADMIN = {"X-API-Key": "s3cret"}
FAR_FUTURE = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)  # what crawledAt 253402300000 left behind
LAST_WRITABLE = "9999-12-31T23:59:59+09:00"


@pytest.mark.parametrize(("params", "name"), [
    ({"start": "0001-01-01"}, "start"),
    ({"end": "9999-12-31"}, "end"),
    ({"start": "9999-12-31"}, "start"),
    ({"end": "0001-01-01"}, "end"),
    ({"start": "0001-01-01T00:00:00+09:00"}, "start"),
    ({"end": "9999-12-31T23:59:59-09:00"}, "end"),
    ({"start": "1969-12-31T14:59:59Z"}, "start"),
    ({"start": "2026-11-01", "end": "9999-12-31"}, "end"),
])
def test_an_hourly_range_out_of_range_is_a_400_naming_the_parameter(client, market, params, name):
    err(client.get(f"/api/v1/ips/{market['calm']}/stats/hourly", params=params), 400,
        f"invalid parameter {name}", "out of range")


def test_the_edges_of_the_range_are_accepted(client, market):
    path = f"/api/v1/ips/{market['calm']}/stats/hourly"
    everything = ok(client.get(path))
    data = ok(client.get(path, params={"start": "1970-01-01", "end": "9998-12-31"}))
    assert (data["start"], data["end"]) == ("1970-01-01T00:00:00+09:00", "9999-01-01T00:00:00+09:00")
    assert data["count"] == everything["count"] > 0
    assert ok(client.get(path, params={"start": "1970-01-01T00:00:00+09:00",
                                       "end": "9998-12-31T23:59:59+09:00"}))["count"] == everything["count"]


@pytest.mark.parametrize(("path", "name", "value"), [
    ("/api/v1/admin/archive/daily", "date", "0001-01-01"),
    ("/api/v1/admin/archive/daily", "date", "9999-12-31"),
    ("/api/v1/admin/archive/weekly", "week_start", "0001-01-01"),  # a Monday
    ("/api/v1/admin/archive/weekly", "week_start", "9999-12-27"),  # a Monday, whose week ends past 9999
])
def test_a_rollup_day_out_of_range_is_a_400_naming_the_parameter(client, market, path, name, value):
    err(client.post(path, params={name: value}, headers=ADMIN), 400, f"invalid parameter {name}", "out of range")


def _store_far_future(engine, ip_id: int) -> None:
    with engine.begin() as connection:
        connection.execute(ip_metadata.update().where(ip_metadata.c.id == ip_id).values(last_crawled_at=FAR_FUTURE))
        connection.execute(item_snapshots.update().where(item_snapshots.c.ip_id == ip_id)
                           .values(last_seen_at=FAR_FUTURE))
        connection.execute(ip_alerts.update().where(ip_alerts.c.ip_id == ip_id).values(created_at=FAR_FUTURE))


def test_an_ip_with_a_far_future_last_crawl_still_renders_everywhere(client, market, mysql_engine, queue_redis):
    busy = market["busy"]
    _store_far_future(mysql_engine, busy)
    with mysql_engine.connect() as connection:
        assert connection.execute(sa.select(ip_metadata.c.last_crawled_at).where(ip_metadata.c.id == busy)).scalar_one() == FAR_FUTURE

    listed = {ip["id"]: ip for ip in ok(client.get("/api/v1/ips"))}
    assert listed[busy]["last_crawled_at"] == LAST_WRITABLE
    assert ok(client.get(f"/api/v1/ips/{busy}"))["last_crawled_at"] == LAST_WRITABLE
    assert ok(client.get(f"/api/v1/ips/{busy}/liquidity"))["ip_id"] == busy
    assert ok(client.get(f"/api/v1/ips/{busy}/stats/hourly"))["count"] >= 1
    items = whole(client.get(f"/api/v1/ips/{busy}/items"))["data"]
    assert items and {item["last_seen_at"] for item in items} == {LAST_WRITABLE}
    alerts = [a for a in ok(client.get("/api/v1/alerts", params={"ip_id": busy}))]
    assert alerts and {a["created_at"] for a in alerts} == {LAST_WRITABLE}
    # Writes of that IP too: an update reschedules it from its last crawl.
    assert ok(client.put(f"/api/v1/ips/{busy}", json={"weight": 2}))["weight"] == 2
    assert ok(client.post(f"/api/v1/ips/{busy}/trigger"))["triggered"] is True
    assert ok(client.get("/api/v1/system/status"))["database"]["connected"] is True


def test_a_far_future_schedule_entry_renders(client, market, queue_redis):
    queue_redis.zadd(keys.SCHEDULE, {str(market["calm"]): 253402300000, str(market["busy"]): 1_800_000_000})
    data = ok(client.get("/api/v1/system/scheduler"))
    times = {s["ip_id"]: s["next_schedule"] for s in data["schedules"]}
    assert times[market["calm"]] == LAST_WRITABLE
    assert times[market["busy"]] == "2027-01-15T17:00:00+09:00"


def test_an_unexpected_error_is_still_the_error_envelope(settings, mysql_engine, queue_redis):
    """Whatever a route did not foresee: a 500 in the envelope, not Starlette's plain text."""
    app = create_app(settings, mysql_engine, queue_redis)

    @app.get("/api/v1/test-only-boom")
    def boom():
        raise OverflowError("date value out of range")

    app.router.routes.insert(0, app.router.routes.pop())  # before any catch-all (the dashboard's)

    with TestClient(app, raise_server_exceptions=False) as plain:
        response = plain.get("/api/v1/test-only-boom")
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"code": 500, "message": "internal error"}


@pytest.mark.parametrize("stored", [FAR_FUTURE, datetime(3000, 1, 1, tzinfo=UTC)], ids=["9999", "3000"])
def test_a_schedule_rebuild_does_not_believe_a_far_future_last_crawl(stored):
    """Issue 17 #3's remnant: a last crawl stored before the bounds must neither overflow the
    rebuild (9999 + 2 h) nor put the next crawl in year 3000; it is scheduled as if never crawled."""
    now = datetime(2026, 12, 2, 3, 10, tzinfo=UTC)
    two_hours = timedelta(hours=2)
    assert rebuild_schedule([(1, two_hours, stored), (2, two_hours, now - timedelta(minutes=30))], now) == [
        (1, now), (2, now + timedelta(minutes=90))]
    # A last crawl a little ahead of this clock (another machine's) is still believed.
    assert rebuild_schedule([(3, two_hours, now + timedelta(minutes=1))], now) == [(3, now + timedelta(minutes=121))]
