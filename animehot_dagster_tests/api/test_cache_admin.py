"""The Redis cache (hit, miss, invalidation, TTLs, Redis down) and the admin endpoints."""

from __future__ import annotations

from datetime import timedelta

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from animehot_dagster.api import cache
from animehot_dagster.api.app import create_app
from animehot_dagster.settings import SettingsError, load_settings
from animehot_dagster.storage.ingest import IngestConfig, apply
from animehot_dagster_tests.api.conftest import NOW, free_port
from animehot_dagster_tests.api.contract_check import ContractClient as TestClient
from animehot_dagster_tests.api.test_endpoints import err, ok, whole
from animehot_dagster_tests.factories import T0, sold


def test_cache_miss_then_hit_with_keys_and_ttls(client, market, queue_redis):
    ip = market["busy"]
    assert ok(client.get(f"/api/v1/ips/{ip}/liquidity"))["from_cache"] is False
    hit = ok(client.get(f"/api/v1/ips/{ip}/liquidity"))
    assert hit["from_cache"] is True and hit["cached_at"] == "2026-11-02T12:10:00+09:00" and hit["on_sale_outflow"] == 60
    hourly = f"/api/v1/ips/{ip}/stats/hourly?limit=5"
    assert ok(client.get(hourly))["from_cache"] is False
    assert ok(client.get(hourly))["from_cache"] is True
    assert 0 < queue_redis.ttl(cache.hourly_stats_key(ip, 5)) <= 600
    items = f"/api/v1/ips/{ip}/items?status=sold&page=2&page_size=7"  # a list: the flag beside data
    assert whole(client.get(items))["from_cache"] is False
    cached_items = whole(client.get(items))
    assert cached_items["from_cache"] is True and len(cached_items["data"]) == 7 and cached_items["total"] == 60
    assert 0 < queue_redis.ttl(cache.items_key(ip, "sold", 2, 7)) <= 600
    # the default and the clamped page size share one key
    whole(client.get(f"/api/v1/ips/{ip}/items?page_size=0"))
    assert whole(client.get(f"/api/v1/ips/{ip}/items"))["from_cache"] is True
    assert 0 < queue_redis.ttl(cache.liquidity_key(ip)) <= 600
    # a ranged hourly read is never cached
    assert ok(client.get(f"/api/v1/ips/{ip}/stats/hourly?start=2026-11-01"))["from_cache"] is False
    # leaderboards: one key per type/window whatever the limit; 1h windows end at the next hour
    assert ok(client.get("/api/v1/leaderboard?hours=3&limit=1"))["from_cache"] is False
    again = ok(client.get("/api/v1/leaderboard?hours=3&limit=2"))
    assert again["from_cache"] is True and len(again["items"]) == 2 and again["limit"] == again["count"] == 2
    assert ok(client.get("/api/v1/leaderboard?hours=30"))["from_cache"] is False  # 30 → the 24 h board
    assert ok(client.get("/api/v1/leaderboard?hours=24"))["from_cache"] is True
    assert 0 < queue_redis.ttl(cache.leaderboard_key("hot", 3)) <= 600
    ok(client.get("/api/v1/leaderboard?hours=24&type=outflow"))
    assert 3000 < queue_redis.ttl(cache.leaderboard_key("outflow", 24)) <= 3600


def test_leaderboard_ttl_never_outlives_its_window():
    assert cache.leaderboard_ttl(3, NOW) == 600
    assert cache.leaderboard_ttl(3, NOW + timedelta(minutes=45)) == 300  # 12:55: the window ends at 13:00
    assert cache.leaderboard_ttl(24, NOW) == 3600
    last_minute = T0 + timedelta(hours=14, minutes=59)  # 23:59 JST
    assert cache.leaderboard_ttl(24, last_minute) == 60
    assert cache.leaderboard_ttl(168, last_minute) == 3600


def test_a_processed_crawl_invalidates_its_ip_and_the_hourly_leaderboards(client, market, queue_redis, mysql_engine):
    ip = market["idle"]
    ok(client.get(f"/api/v1/ips/{ip}/liquidity"))
    ok(client.get(f"/api/v1/ips/{market['calm']}/liquidity"))
    ok(client.get("/api/v1/leaderboard?hours=1&type=outflow"))
    ok(client.get("/api/v1/leaderboard?hours=24"))
    # ingest applies a new crawl of the idle IP in the 12:00 hour; its caller invalidates
    from animehot_dagster_tests.factories import response
    at = T0 + timedelta(hours=3)
    apply(mysql_engine, response(ip, at, [sold("m30000", 900)]), IngestConfig(), now=at)
    assert ok(client.get(f"/api/v1/ips/{ip}/liquidity"))["from_cache"] is True  # stale until invalidated
    deleted = cache.invalidate_after_crawl(queue_redis, ip)
    assert deleted == 2  # its liquidity key and the one 1h leaderboard cached
    fresh = ok(client.get(f"/api/v1/ips/{ip}/liquidity"))
    # read afresh: its item is now known sold (the 12:00 hour itself is not complete yet)
    assert (fresh["from_cache"], fresh["sold_total"]) == (False, 1)
    assert ok(client.get(f"/api/v1/ips/{market['calm']}/liquidity"))["from_cache"] is True  # other IPs kept
    assert ok(client.get("/api/v1/leaderboard?hours=24"))["from_cache"] is True  # rollup windows kept
    assert ok(client.get("/api/v1/leaderboard?hours=1&type=outflow"))["from_cache"] is False
    assert cache.invalidate_after_rollup(queue_redis, 24) == 1
    assert ok(client.get("/api/v1/leaderboard?hours=24"))["from_cache"] is False


def test_updates_through_the_api_drop_the_ip_cache(client, market):
    ip = market["calm"]
    whole(client.get(f"/api/v1/ips/{ip}/items"))
    ok(client.get(f"/api/v1/ips/{ip}/liquidity"))
    ok(client.put(f"/api/v1/ips/{ip}", json={"weight": 2}))
    assert whole(client.get(f"/api/v1/ips/{ip}/items"))["from_cache"] is False
    assert ok(client.get(f"/api/v1/ips/{ip}/liquidity"))["from_cache"] is False


def test_redis_down_degrades_to_uncached_reads(settings, mysql_engine, market):
    # No retries in the synchronous client either, or each queue call waits out its backoff.
    dead = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5, socket_timeout=0.5,
                       retry=Retry(NoBackoff(), 0))
    app = create_app(settings, mysql_engine, dead, clock=lambda: NOW)
    with TestClient(app) as client:
        for _ in range(2):
            assert ok(client.get(f"/api/v1/ips/{market['busy']}/liquidity"))["from_cache"] is False
            assert ok(client.get("/api/v1/leaderboard?hours=3"))["from_cache"] is False
        assert whole(client.get(f"/api/v1/ips/{market['busy']}/items"))["total"] == 90
        status = ok(client.get("/api/v1/system/status"))
        assert status["database"]["connected"] is True and status["redis"].startswith("error")
        assert status["status"] == "degraded"
        assert status["scheduler"] == {"running": False, "total_ips": 0, "overdue_ips": 0}
        err(client.get("/api/v1/system/scheduler"), 503)
        err(client.post(f"/api/v1/ips/{market['busy']}/trigger"), 503, "Redis")
        assert ok(client.put(f"/api/v1/ips/{market['busy']}", json={"status": "paused"}))["status"] == "paused"
    assert cache.invalidate_after_crawl(dead, 1) == 0 and cache.invalidate_after_rollup(dead, 24) == 0


def test_admin_requires_the_key(client):
    body = {"ips": [{"name": "呪術廻戦"}]}
    err(client.post("/api/v1/admin/import", json=body), 401, "X-API-Key")
    err(client.post("/api/v1/admin/import", json=body, headers={"X-API-Key": "wrong"}), 401)
    err(client.post("/api/v1/admin/archive/daily", headers={"X-API-Key": "s3cret-and-more"}), 401)
    assert ok(client.post("/api/v1/admin/import", json=body, headers={"X-API-Key": "s3cret"}))["created"] == 1


def test_admin_is_open_without_a_key_outside_prod(mysql_engine, queue_redis):
    app = create_app(load_settings({}), mysql_engine, queue_redis, clock=lambda: NOW)
    with TestClient(app) as client:
        ok(client.post("/api/v1/admin/archive/weekly"))


def test_prod_refuses_to_start_without_admin_key(mysql_engine, queue_redis):
    with pytest.raises(SettingsError, match="ADMIN_API_KEY"):
        create_app(load_settings({"APP_ENV": "prod"}), mysql_engine, queue_redis)
    create_app(load_settings({"APP_ENV": "prod", "ADMIN_API_KEY": "k"}), mysql_engine, queue_redis)


def test_admin_import_reports_rows_and_schedules_new_ips(client, queue_redis, market):
    headers = {"X-API-Key": "s3cret"}
    body = {"ips": [{"name": "呪術廻戦", "category": "anime"}, {"name": "鬼滅の刃", "weight": 2},
                    {"category": "anime"}, "oops"], "upsert": True}
    report = ok(client.post("/api/v1/admin/import", json=body, headers=headers))
    assert (report["created"], report["updated"], report["failed"]) == (1, 1, 2)
    # one detail per row, in the order sent, as the original reports them
    assert [(d["name"], d["status"], d["error"] is None) for d in report["details"]] == \
        [("呪術廻戦", "created", True), ("鬼滅の刃", "updated", True), ("", "failed", False), ("", "failed", False)]
    new_id = report["details"][0]["id"]
    assert report["details"][1]["id"] == market["calm"] and report["details"][2]["id"] is None
    from animehot_dagster.queue.schedule import ScheduleStore
    assert new_id in dict(ScheduleStore(queue_redis).entries())
    # upsert defaults to true
    again = ok(client.post("/api/v1/admin/import", json={"ips": [{"name": "呪術廻戦", "weight": 3}]}, headers=headers))
    assert (again["updated"], again["details"][0]["id"]) == (1, new_id)
    no_upsert = ok(client.post("/api/v1/admin/import", json={"ips": [{"name": "呪術廻戦"}], "upsert": False},
                               headers=headers))
    assert no_upsert["failed"] == 1 and "upsert" in no_upsert["details"][0]["error"]
    err(client.post("/api/v1/admin/import", json={"rows": []}, headers=headers), 400, "ips")
    err(client.post("/api/v1/admin/import", content=b"[", headers={**headers, "content-type": "application/json"}), 400)


def test_admin_archives_roll_up_and_invalidate(client, queue_redis, market):
    headers = {"X-API-Key": "s3cret"}
    ok(client.get("/api/v1/leaderboard?hours=24"))
    daily = ok(client.post("/api/v1/admin/archive/daily?date=2026-11-02", headers=headers))
    assert daily == {"kind": "daily", "bucket": "2026-11-02", "rows": 3, "total_inflow": 110, "total_outflow": 66}
    assert not queue_redis.exists(cache.leaderboard_key("hot", 24))
    weekly = ok(client.post("/api/v1/admin/archive/weekly?week_start=2026-11-02", headers=headers))
    assert (weekly["rows"], weekly["total_outflow"]) == (3, 66)
    assert ok(client.post("/api/v1/admin/archive/daily", headers=headers))["bucket"] == "2026-11-01"
    err(client.post("/api/v1/admin/archive/weekly?week_start=2026-11-03", headers=headers), 400, "Monday")
    err(client.post("/api/v1/admin/archive/daily?date=02/11/2026", headers=headers), 400, "date")


def test_bodies_over_the_limit_are_413(settings, mysql_engine, queue_redis):
    app = create_app(settings, mysql_engine, queue_redis, clock=lambda: NOW, body_limit=1000)
    with TestClient(app) as client:
        big = {"ips": [{"name": f"ip {i}"} for i in range(100)]}
        err(client.post("/api/v1/admin/import", json=big, headers={"X-API-Key": "s3cret"}), 413)

        def chunks():  # no Content-Length: counted as it arrives
            for _ in range(20):
                yield b" " * 100
        resp = client.post("/api/v1/ips", content=chunks(), headers={"content-type": "application/json"})
        err(resp, 413)
