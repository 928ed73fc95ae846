"""Every endpoint of SPEC §9: the happy path on data written by ingest, and its bad inputs."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from animehot_dagster.domain.messages import decode_request
from animehot_dagster.queue import keys
from animehot_dagster.queue.schedule import ScheduleStore
from animehot_dagster_tests.api.conftest import NOW
from animehot_dagster_tests.factories import T0


def ok(resp, status=200):
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["code"] == 0 and body["message"] == "success", body
    return body["data"]


def err(resp, status, *words):
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["code"] == status and set(body) == {"code", "message"}, body
    for word in words:
        assert word in body["message"], body
    return body["message"]


def test_health(client):
    assert client.get("/health").json() == {"status": "ok", "time": "2026-11-02T12:10:00+09:00"}


def test_list_ips_with_filters_and_pagination(client, market):
    data = ok(client.get("/api/v1/ips", params={"page_size": 2}))
    assert (data["total"], data["page"], data["page_size"], len(data["items"])) == (3, 1, 2, 2)
    assert ok(client.get("/api/v1/ips", params={"page": 2, "page_size": 2}))["items"][0]["name"] == "初音ミク"
    assert [i["id"] for i in ok(client.get("/api/v1/ips", params={"keyword": "ちい"}))["items"]] == [market["busy"]]
    assert ok(client.get("/api/v1/ips", params={"keyword": "%"}))["total"] == 0  # LIKE wildcards are literal
    assert ok(client.get("/api/v1/ips", params={"status": "paused"}))["total"] == 0
    assert ok(client.get("/api/v1/ips", params={"category": "anime"}))["total"] == 0
    item = ok(client.get("/api/v1/ips"))["items"][0]
    assert item["last_crawled_at"].endswith("+09:00") and item["created_at"] == "2026-11-02T09:00:00+09:00"


@pytest.mark.parametrize("params, name", [
    ({"page": 0}, "page"), ({"page_size": 101}, "page_size"), ({"page_size": "x"}, "page_size"),
    ({"status": "gone"}, "status"),
])
def test_list_ips_bad_parameters_are_400_naming_them(client, params, name):
    err(client.get("/api/v1/ips", params=params), 400, f"parameter {name}")


def test_ip_detail_and_unknown_ids(client, market):
    assert ok(client.get(f"/api/v1/ips/{market['calm']}"))["name"] == "鬼滅の刃"
    err(client.get("/api/v1/ips/9999"), 404, "9999")
    err(client.get("/api/v1/ips/abc"), 400, "ip_id")
    err(client.get("/api/v1/ips/0"), 400, "ip_id")
    err(client.get("/api/v1/no/such/route"), 404)


def test_create_ip(client, bytes_redis):
    data = ok(client.post("/api/v1/ips", json={"name": "葬送のフリーレン", "category": "anime", "weight": 2,
                                                 "tags": ["fantasy"]}), 201)
    assert (data["status"], data["weight"], data["tags"]) == ("active", 2.0, ["fantasy"])
    assert dict(ScheduleStore(bytes_redis).entries()) == {data["id"]: int(NOW.timestamp())}
    err(client.post("/api/v1/ips", json={"name": "葬送のフリーレン"}), 409, "already exists")
    err(client.post("/api/v1/ips", json={"category": "anime"}), 400, "name")
    err(client.post("/api/v1/ips", json={"name": "x", "weight": 0}), 400, "weight")
    err(client.post("/api/v1/ips", json={"name": "x", "colour": "red"}), 400, "colour")
    err(client.post("/api/v1/ips", json={"name": "   "}), 400, "name")
    err(client.post("/api/v1/ips", content=b"{not json", headers={"content-type": "application/json"}), 400, "JSON")
    err(client.post("/api/v1/ips", json=["name"]), 400)


def test_update_ip_changes_weight_status_and_schedule(client, market, bytes_redis):
    ip = market["calm"]
    schedule = ScheduleStore(bytes_redis)
    data = ok(client.put(f"/api/v1/ips/{ip}", json={"weight": 1.5, "name_en": "Demon Slayer"}))
    assert (data["weight"], data["name_en"], data["name"]) == (1.5, "Demon Slayer", "鬼滅の刃")
    assert ok(client.put(f"/api/v1/ips/{ip}", json={"status": "paused"}))["status"] == "paused"
    assert schedule.entries() == []
    schedule_after = ok(client.put(f"/api/v1/ips/{ip}", json={"status": "active"}))
    # back in the schedule at its last crawl (11:00) + the interval of weight 1.5 (80 min)
    assert schedule_after["status"] == "active"
    assert dict(schedule.entries()) == {ip: int((T0 + timedelta(hours=2, minutes=80)).timestamp())}
    err(client.put(f"/api/v1/ips/{ip}", json={"status": "sleeping"}), 400, "status")
    err(client.put(f"/api/v1/ips/{ip}", json={"weight": -1}), 400, "weight")
    err(client.put(f"/api/v1/ips/{ip}", json={"name": "ちいかわ"}), 409)
    err(client.put("/api/v1/ips/9999", json={"weight": 1}), 404)


def test_delete_is_soft_and_leaves_the_schedule(client, market, bytes_redis):
    ip = market["busy"]
    ScheduleStore(bytes_redis).schedule(ip, NOW.timestamp() + 60)
    data = ok(client.delete(f"/api/v1/ips/{ip}"))
    assert data["status"] == "deleted" and data["deleted_at"] == "2026-11-02T12:10:00+09:00"
    assert ScheduleStore(bytes_redis).entries() == []
    assert ok(client.get(f"/api/v1/ips/{ip}"))["status"] == "deleted"  # still readable
    assert ip not in [i["id"] for i in ok(client.get("/api/v1/ips"))["items"]]
    assert ok(client.delete(f"/api/v1/ips/{ip}"))["status"] == "deleted"  # idempotent
    err(client.delete("/api/v1/ips/9999"), 404)
    err(client.post(f"/api/v1/ips/{ip}/trigger"), 409, "deleted")
    # deleted IPs leave the leaderboard
    assert ip not in [e["ip_id"] for e in ok(client.get("/api/v1/leaderboard", params={"hours": 3}))["items"]]


def test_trigger_force_enqueues_a_crawl(client, market, bytes_redis, settings):
    ip = market["calm"]
    first = ok(client.post(f"/api/v1/ips/{ip}/trigger"), 202)
    second = ok(client.post(f"/api/v1/ips/{ip}/trigger"), 202)  # forced: not deduplicated
    assert first["task_id"] != second["task_id"]
    queued = [decode_request(raw) for raw in bytes_redis.lrange(keys.TASKS, 0, -1)]
    assert [(r.ip_id, r.keyword, r.pages_on_sale, r.pages_sold) for r in queued] == \
        [(ip, "鬼滅の刃", settings.scheduler_pages_on_sale, settings.scheduler_pages_sold)] * 2
    assert bytes_redis.sismember(keys.TASKS_PENDING, f"ip:{ip}")
    err(client.post("/api/v1/ips/9999/trigger"), 404)


def test_liquidity_is_the_latest_hour(client, market):
    data = ok(client.get(f"/api/v1/ips/{market['busy']}/liquidity"))
    assert (data["hour"], data["inflow"], data["outflow"], data["liquidity_index"]) == \
        ("2026-11-02T10:00:00+09:00", 10, 60, 6.0)
    assert data["hot_score"] == pytest.approx(61 / 11 * 4.110873864173311)
    assert data["from_cache"] is False
    err(client.get("/api/v1/ips/9999/liquidity"), 404)


def test_hourly_stats_range_and_limit(client, market):
    ip = market["calm"]
    rows = ok(client.get(f"/api/v1/ips/{ip}/stats/hourly"))["items"]
    assert [r["hour"] for r in rows] == ["2026-11-02T11:00:00+09:00", "2026-11-02T10:00:00+09:00",
                                         "2026-11-02T09:00:00+09:00"]
    assert (rows[1]["inflow"], rows[1]["outflow"], rows[1]["sample_count"]) == (100, 5, 5)
    assert rows[1]["min_price_item"]["source_id"] == "m10000"
    assert len(ok(client.get(f"/api/v1/ips/{ip}/stats/hourly", params={"limit": 1}))["items"]) == 1
    ranged = ok(client.get(f"/api/v1/ips/{ip}/stats/hourly",
                           params={"start": "2026-11-02T10:00:00+09:00", "end": "2026-11-02T01:30:00Z"}))
    assert [r["hour"] for r in ranged["items"]] == ["2026-11-02T10:00:00+09:00"]
    assert ranged["start"] == "2026-11-02T10:00:00+09:00" and ranged["from_cache"] is False
    by_day = ok(client.get(f"/api/v1/ips/{ip}/stats/hourly", params={"start": "2026-11-02", "end": "2026-11-02"}))
    assert len(by_day["items"]) == 3 and by_day["end"] == "2026-11-03T00:00:00+09:00"
    assert ok(client.get(f"/api/v1/ips/{ip}/stats/hourly", params={"start": "2026-11-03"}))["items"] == []
    err(client.get(f"/api/v1/ips/{ip}/stats/hourly", params={"limit": 169}), 400, "limit")
    err(client.get(f"/api/v1/ips/{ip}/stats/hourly", params={"start": "yesterday"}), 400, "start")
    err(client.get(f"/api/v1/ips/{ip}/stats/hourly", params={"end": "2026-11-02T10:00:00"}), 400, "end")
    err(client.get(f"/api/v1/ips/{ip}/stats/hourly", params={"start": "2026-11-03", "end": "2026-11-01"}), 400, "end")
    err(client.get("/api/v1/ips/9999/stats/hourly"), 404)


def test_items_by_status_and_page(client, market):
    ip = market["busy"]
    sold = ok(client.get(f"/api/v1/ips/{ip}/items", params={"status": "sold", "page_size": 10}))
    assert (sold["total"], len(sold["items"]), sold["page_size"]) == (60, 10, 10)
    assert all(i["status"] == "sold" and i["sold_at"] == "2026-11-02T10:00:00+09:00" for i in sold["items"])
    on_sale = ok(client.get(f"/api/v1/ips/{ip}/items", params={"status": "on_sale"}))
    assert (on_sale["total"], on_sale["page_size"], len(on_sale["items"])) == (30, 50, 30)
    assert len(ok(client.get(f"/api/v1/ips/{ip}/items", params={"page": 3, "page_size": 40}))["items"]) == 10
    assert ok(client.get(f"/api/v1/ips/{ip}/items", params={"page": 4, "page_size": 40}))["items"] == []
    err(client.get(f"/api/v1/ips/{ip}/items", params={"status": "deleted"}), 400, "status")
    err(client.get(f"/api/v1/ips/{ip}/items", params={"page_size": 101}), 400, "page_size")
    err(client.get("/api/v1/ips/9999/items"), 404)


def test_leaderboard_types_windows_and_limits(client, market):
    hot = ok(client.get("/api/v1/leaderboard", params={"type": "hot", "hours": 3}))
    assert [e["ip_id"] for e in hot["items"]] == [market["busy"], market["calm"], market["idle"]]
    assert hot["time_range"] == {"start": "2026-11-02T09:00:00+09:00", "end": "2026-11-02T12:00:00+09:00"}
    assert (hot["from_cache"], hot["cached_at"], hot["source"]) == (False, "2026-11-02T12:10:00+09:00", "hourly")
    inflow = ok(client.get("/api/v1/leaderboard", params={"type": "inflow", "hours": 3, "limit": 1}))
    assert [(e["ip_id"], e["inflow"], e["name"]) for e in inflow["items"]] == [(market["calm"], 100, "鬼滅の刃")]
    outflow = ok(client.get("/api/v1/leaderboard", params={"type": "outflow", "hours": 1}))
    assert [(e["ip_id"], e["outflow"]) for e in outflow["items"]] == [(market["calm"], 1)]  # 11:00 only
    day = ok(client.get("/api/v1/leaderboard", params={"hours": 24}))
    assert day["source"] == "daily" and day["items"] == []  # yesterday was not rolled up
    week = ok(client.get("/api/v1/leaderboard", params={"hours": 168}))
    assert week["time_range"] == {"start": "2026-10-26T00:00:00+09:00", "end": "2026-11-02T00:00:00+09:00"}
    for params, name in (({"type": "cold"}, "type"), ({"hours": 0}, "hours"), ({"hours": 25}, "hours"),
                         ({"hours": 169}, "hours"), ({"limit": 0}, "limit"), ({"limit": 101}, "limit")):
        err(client.get("/api/v1/leaderboard", params=params), 400, name)


def test_alerts_filters_and_ack(client, market):
    everything = ok(client.get("/api/v1/alerts"))
    assert everything["total"] == 3
    assert sorted(a["alert_type"] for a in everything["items"]) == ["high_outflow", "low_liquidity", "surge"]
    critical = ok(client.get("/api/v1/alerts", params={"severity": "critical"}))["items"]
    assert [(a["ip_id"], a["alert_type"]) for a in critical] == [(market["busy"], "surge")]
    assert ok(client.get("/api/v1/alerts", params={"ip_id": market["calm"]}))["total"] == 1
    acked = ok(client.post(f"/api/v1/alerts/{critical[0]['id']}/ack"))
    assert acked["acknowledged"] is True and acked["acknowledged_at"] == "2026-11-02T12:10:00+09:00"
    assert ok(client.post(f"/api/v1/alerts/{critical[0]['id']}/ack"))["acknowledged"] is True
    assert ok(client.get("/api/v1/alerts", params={"acknowledged": "false"}))["total"] == 2
    assert ok(client.get("/api/v1/alerts", params={"acknowledged": "true"}))["total"] == 1
    assert ok(client.get("/api/v1/alerts", params={"page": 2, "page_size": 2}))["page"] == 2
    err(client.post("/api/v1/alerts/9999/ack"), 404)
    err(client.get("/api/v1/alerts", params={"severity": "fatal"}), 400, "severity")
    err(client.get("/api/v1/alerts", params={"acknowledged": "maybe"}), 400, "acknowledged")


def test_system_status_and_scheduler(client, market, bytes_redis):
    ScheduleStore(bytes_redis).schedule(market["calm"], NOW.timestamp() - 30)
    ScheduleStore(bytes_redis).schedule(market["busy"], NOW.timestamp() + 600)
    bytes_redis.incr(keys.FAILED_RUNS)
    bytes_redis.lpush(keys.TASKS_DEADLETTER, b"{}")
    status = ok(client.get("/api/v1/system/status"))
    assert status["database"] == "ok" and status["redis"] == "ok"
    assert status["pipeline"] == {"processed": 6, "failed": 1, "success_rate": round(6 / 7, 4)}
    assert status["scheduler"] == {"total_ips": 2, "overdue_ips": 1}
    assert status["stats"]["unacked_alerts"] == 3 and status["stats"]["active_items"] == 165
    assert status["queues"]["dead_letter"] == 1
    scheduler = ok(client.get("/api/v1/system/scheduler"))
    assert (scheduler["total_ips"], scheduler["overdue_ips"]) == (2, 1)
    first, second = scheduler["items"]
    assert (first["ip_id"], first["name"], first["overdue"], first["seconds_until"]) == (market["calm"], "鬼滅の刃", True, -30)
    assert (second["overdue"], second["seconds_until"], second["next_crawl_at"]) == \
        (False, 600, "2026-11-02T12:20:00+09:00")


def test_envelope_on_method_not_allowed(client):
    resp = client.patch("/api/v1/ips")
    assert resp.status_code == 405 and resp.json()["code"] == 405
    assert json.loads(resp.content)["message"]
