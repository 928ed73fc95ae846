"""Every endpoint of SPEC §9: the happy path on data written by ingest, its defaults and
clamping, and its bad inputs. The client checks every answer against the wire contract."""

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
    """``data`` of a success."""
    return whole(resp, status)["data"]


def whole(resp, status=200):
    """The whole envelope of a success (lists keep their paging beside ``data``)."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["code"] == 0 and body["message"] == "success", body
    return body


def err(resp, status, *words):
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["code"] == status and set(body) == {"code", "message"}, body
    for word in words:
        assert word in body["message"], body
    return body["message"]


def test_health(client):
    assert client.get("/health").json() == {"status": "ok", "time": "2026-11-02T12:10:00+09:00"}


def test_list_ips_with_filters_and_pagination(client, market, mysql_engine):
    body = whole(client.get("/api/v1/ips", params={"page_size": 2}))
    # the original's list shape: the array itself in data, the paging beside it
    assert isinstance(body["data"], list)
    assert (body["total"], body["page"], body["page_size"], len(body["data"])) == (3, 1, 2, 2)
    assert ok(client.get("/api/v1/ips", params={"page": 2, "page_size": 2}))[0]["name"] == "初音ミク"
    assert [i["id"] for i in ok(client.get("/api/v1/ips", params={"keyword": "ちい"}))] == [market["busy"]]
    assert whole(client.get("/api/v1/ips", params={"keyword": "%"}))["total"] == 0  # LIKE wildcards are literal
    assert whole(client.get("/api/v1/ips", params={"status": "paused"}))["total"] == 0
    assert whole(client.get("/api/v1/ips", params={"category": "anime"}))["total"] == 0
    item = ok(client.get("/api/v1/ips"))[0]
    assert item["last_crawled_at"].endswith("+09:00") and item["created_at"] == "2026-11-02T09:00:00+09:00"
    assert item["notes"] == "" and item["tags"] == []
    # heaviest first, then by id
    client.put(f"/api/v1/ips/{market['idle']}", json={"weight": 3})
    assert [i["id"] for i in ok(client.get("/api/v1/ips"))] == [market["idle"], market["calm"], market["busy"]]


@pytest.mark.parametrize("params, page, page_size", [
    ({}, 1, 20), ({"page": 0}, 1, 20), ({"page": -3}, 1, 20), ({"page_size": 0}, 1, 20),
    ({"page_size": 101}, 1, 100), ({"page_size": 10**30}, 1, 100), ({"page": 10**30}, 1_000_000, 20),
])
def test_list_ips_clamps_paging_as_the_original(client, params, page, page_size):
    body = whole(client.get("/api/v1/ips", params=params))
    assert (body["page"], body["page_size"]) == (page, page_size)


@pytest.mark.parametrize("params, name", [
    ({"page": "x"}, "page"), ({"page_size": "x"}, "page_size"), ({"page_size": "1.5"}, "page_size"),
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


def test_create_ip(client, queue_redis):
    data = ok(client.post("/api/v1/ips", json={"name": "葬送のフリーレン", "category": "anime", "weight": 2,
                                                 "tags": ["fantasy"]}), 201)
    assert (data["status"], data["weight"], data["tags"]) == ("active", 2.0, ["fantasy"])
    assert dict(ScheduleStore(queue_redis).entries()) == {data["id"]: int(NOW.timestamp())}
    err(client.post("/api/v1/ips", json={"name": "葬送のフリーレン"}), 409, "already exists")
    err(client.post("/api/v1/ips", json={"category": "anime"}), 400, "name")
    err(client.post("/api/v1/ips", json={"name": "x", "weight": 0}), 400, "weight")
    err(client.post("/api/v1/ips", json={"name": "x", "colour": "red"}), 400, "colour")
    err(client.post("/api/v1/ips", json={"name": "   "}), 400, "name")
    err(client.post("/api/v1/ips", content=b"{not json", headers={"content-type": "application/json"}), 400, "JSON")
    err(client.post("/api/v1/ips", json=["name"]), 400)


def test_update_ip_changes_weight_status_and_schedule(client, market, queue_redis):
    ip = market["calm"]
    schedule = ScheduleStore(queue_redis)
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


def test_delete_is_soft_and_leaves_the_schedule(client, market, queue_redis):
    ip = market["busy"]
    ScheduleStore(queue_redis).schedule(ip, NOW.timestamp() + 60)
    data = ok(client.delete(f"/api/v1/ips/{ip}"))
    assert (data["id"], data["deleted"]) == (ip, True)
    assert data["status"] == "deleted" and data["deleted_at"] == "2026-11-02T12:10:00+09:00"
    assert ScheduleStore(queue_redis).entries() == []
    assert ok(client.get(f"/api/v1/ips/{ip}"))["status"] == "deleted"  # still readable
    assert ip not in [i["id"] for i in ok(client.get("/api/v1/ips"))]
    assert ok(client.delete(f"/api/v1/ips/{ip}"))["deleted"] is True  # idempotent
    err(client.delete("/api/v1/ips/9999"), 404)
    err(client.post(f"/api/v1/ips/{ip}/trigger"), 409, "deleted")
    # deleted IPs leave the leaderboard
    assert ip not in [e["ip_id"] for e in ok(client.get("/api/v1/leaderboard", params={"hours": 3}))["items"]]


def test_trigger_force_enqueues_a_crawl(client, market, queue_redis, settings):
    ip = market["calm"]
    first = ok(client.post(f"/api/v1/ips/{ip}/trigger"))
    second = ok(client.post(f"/api/v1/ips/{ip}/trigger"))  # forced: not deduplicated
    assert (first["id"], first["triggered"]) == (ip, True)
    assert first["task_id"] != second["task_id"]
    queued = [decode_request(raw) for raw in queue_redis.lrange(keys.TASKS, 0, -1)]
    assert [(r.ip_id, r.keyword, r.pages_on_sale, r.pages_sold) for r in queued] == \
        [(ip, "鬼滅の刃", settings.scheduler_pages_on_sale, settings.scheduler_pages_sold)] * 2
    assert queue_redis.sismember(keys.TASKS_PENDING, f"ip:{ip}")
    err(client.post("/api/v1/ips/9999/trigger"), 404)


def test_liquidity_is_the_latest_complete_hour_in_the_originals_names(client, market):
    data = ok(client.get(f"/api/v1/ips/{market['busy']}/liquidity"))
    assert (data["ip_id"], data["ip_name"], data["updated_at"]) == (market["busy"], "ちいかわ", "2026-11-02T10:00:00+09:00")
    assert (data["on_sale_inflow"], data["on_sale_outflow"], data["sold_inflow"], data["liquidity_index"]) == \
        (10, 60, 60, 6.0)
    assert (data["on_sale_total"], data["sold_total"]) == (30, 60)
    assert data["hot_score"] == pytest.approx(61 / 11 * 4.110873864173311)
    assert data["from_cache"] is False
    err(client.get("/api/v1/ips/9999/liquidity"), 404)


def test_liquidity_of_an_ip_without_a_complete_hour_is_zero_not_null(client, market, queue_redis):
    created = ok(client.post("/api/v1/ips", json={"name": "呪術廻戦"}), 201)
    data = ok(client.get(f"/api/v1/ips/{created['id']}/liquidity"))
    assert (data["hot_score"], data["on_sale_inflow"], data["sold_inflow"], data["liquidity_index"]) == (0, 0, 0, None)
    assert data["updated_at"] == "2026-11-02T12:10:00+09:00"


def test_hourly_stats_range_and_limit(client, market):
    ip = market["calm"]
    data = ok(client.get(f"/api/v1/ips/{ip}/stats/hourly"))
    assert (data["ip_id"], data["ip_name"], data["count"], data["limit"]) == (ip, "鬼滅の刃", 3, 24)
    rows = data["stats"]
    assert [r["hour_bucket"] for r in rows] == ["2026-11-02T11:00:00+09:00", "2026-11-02T10:00:00+09:00",
                                                "2026-11-02T09:00:00+09:00"]
    assert (rows[1]["inflow"], rows[1]["outflow"], rows[1]["sample_count"], rows[1]["ip_id"]) == (100, 5, 5, ip)
    assert rows[1]["min_price_item"]["source_id"] == "m10000" and isinstance(rows[1]["id"], int)
    assert rows[1]["hot_score"] == pytest.approx(6 / 101 * 1.791759469228055)
    assert len(ok(client.get(f"/api/v1/ips/{ip}/stats/hourly", params={"limit": 1}))["stats"]) == 1
    ranged = ok(client.get(f"/api/v1/ips/{ip}/stats/hourly",
                           params={"start": "2026-11-02T10:00:00+09:00", "end": "2026-11-02T01:30:00Z"}))
    assert [r["hour_bucket"] for r in ranged["stats"]] == ["2026-11-02T10:00:00+09:00"]
    assert ranged["start"] == "2026-11-02T10:00:00+09:00" and ranged["from_cache"] is False
    inclusive = ok(client.get(f"/api/v1/ips/{ip}/stats/hourly", params={"end": "2026-11-02T10:00:00+09:00"}))
    assert [r["hour_bucket"] for r in inclusive["stats"]] == ["2026-11-02T10:00:00+09:00", "2026-11-02T09:00:00+09:00"]
    by_day = ok(client.get(f"/api/v1/ips/{ip}/stats/hourly", params={"start": "2026-11-02", "end": "2026-11-02"}))
    assert len(by_day["stats"]) == 3 and by_day["end"] == "2026-11-03T00:00:00+09:00"
    assert ok(client.get(f"/api/v1/ips/{ip}/stats/hourly", params={"start": "2026-11-03"}))["stats"] == []
    for limit, rows_limit in ((0, 24), (-1, 24), (169, 168), (10**20, 168)):
        assert ok(client.get(f"/api/v1/ips/{ip}/stats/hourly", params={"limit": limit}))["limit"] == rows_limit
    err(client.get(f"/api/v1/ips/{ip}/stats/hourly", params={"limit": "many"}), 400, "limit")
    err(client.get(f"/api/v1/ips/{ip}/stats/hourly", params={"start": "yesterday"}), 400, "start")
    err(client.get(f"/api/v1/ips/{ip}/stats/hourly", params={"end": "2026-11-02T10:00:00"}), 400, "end")
    err(client.get(f"/api/v1/ips/{ip}/stats/hourly", params={"start": "2026-11-03", "end": "2026-11-01"}), 400, "end")
    err(client.get("/api/v1/ips/9999/stats/hourly"), 404)


def test_hourly_stats_leave_out_the_current_hour(settings, mysql_engine, queue_redis, market):
    from animehot_dagster.api.app import create_app
    from animehot_dagster_tests.api.contract_check import ContractClient

    # at 11:30 the 11:00 hour is still being counted
    app = create_app(settings, mysql_engine, queue_redis, clock=lambda: T0 + timedelta(hours=2, minutes=30))
    with ContractClient(app) as early:
        hours = ok(early.get(f"/api/v1/ips/{market['calm']}/stats/hourly"))["stats"]
        assert [h["hour_bucket"] for h in hours] == ["2026-11-02T10:00:00+09:00", "2026-11-02T09:00:00+09:00"]
        assert ok(early.get(f"/api/v1/ips/{market['calm']}/liquidity"))["updated_at"] == "2026-11-02T10:00:00+09:00"


def test_items_by_status_and_page(client, market):
    ip = market["busy"]
    sold = whole(client.get(f"/api/v1/ips/{ip}/items", params={"status": "sold", "page_size": 10}))
    assert (sold["total"], len(sold["data"]), sold["page_size"], sold["from_cache"]) == (60, 10, 10, False)
    assert all(i["status"] == "sold" and i["sold_at"] == "2026-11-02T10:00:00+09:00" for i in sold["data"])
    first = sold["data"][0]
    assert (first["ip_id"], first["price_changed"], first["created_at"]) == (ip, False, first["first_seen_at"])
    on_sale = whole(client.get(f"/api/v1/ips/{ip}/items", params={"status": "on_sale"}))
    assert (on_sale["total"], on_sale["page_size"], len(on_sale["data"])) == (30, 50, 30)
    assert len(ok(client.get(f"/api/v1/ips/{ip}/items", params={"page": 3, "page_size": 40}))) == 10
    assert ok(client.get(f"/api/v1/ips/{ip}/items", params={"page": 4, "page_size": 40})) == []
    assert whole(client.get(f"/api/v1/ips/{ip}/items", params={"page_size": 101}))["page_size"] == 100
    assert whole(client.get(f"/api/v1/ips/{ip}/items", params={"page": 0}))["page"] == 1
    err(client.get(f"/api/v1/ips/{ip}/items", params={"status": "deleted"}), 400, "status")
    err(client.get(f"/api/v1/ips/{ip}/items", params={"page_size": "lots"}), 400, "page_size")
    err(client.get("/api/v1/ips/9999/items"), 404)


def test_leaderboard_types_windows_and_limits(client, market):
    hot = ok(client.get("/api/v1/leaderboard", params={"type": "hot", "hours": 3}))
    assert [e["ip_id"] for e in hot["items"]] == [market["busy"], market["calm"], market["idle"]]
    assert (hot["type"], hot["hours"], hot["count"]) == ("hot", 3, 3)
    first = hot["items"][0]
    assert (first["rank"], first["ip_name"], first["ip_name_en"]) == (1, "ちいかわ", "")
    assert first["score"] == first["hot_score"] == pytest.approx(61 / 11 * 4.110873864173311)
    assert hot["time_range"] == {"start": "2026-11-02T09:00:00+09:00", "end": "2026-11-02T12:00:00+09:00"}
    assert (hot["from_cache"], hot["cached_at"], hot["source"]) == (False, "2026-11-02T12:10:00+09:00", "hourly")
    inflow = ok(client.get("/api/v1/leaderboard", params={"type": "inflow", "hours": 3, "limit": 1}))
    assert [(e["ip_id"], e["inflow"], e["ip_name"]) for e in inflow["items"]] == [(market["calm"], 100, "鬼滅の刃")]
    assert inflow["count"] == 1
    outflow = ok(client.get("/api/v1/leaderboard", params={"type": "outflow", "hours": 1}))
    assert [(e["ip_id"], e["outflow"]) for e in outflow["items"]] == [(market["calm"], 1)]  # 11:00 only
    day = ok(client.get("/api/v1/leaderboard", params={"hours": 24}))
    assert day["source"] == "daily" and day["items"] == []  # yesterday was not rolled up
    week = ok(client.get("/api/v1/leaderboard", params={"hours": 168}))
    assert week["time_range"] == {"start": "2026-10-26T00:00:00+09:00", "end": "2026-11-02T00:00:00+09:00"}
    for params, err_name in (({"type": "cold"}, "type"), ({"hours": "day"}, "hours"), ({"limit": "ten"}, "limit")):
        err(client.get("/api/v1/leaderboard", params=params), 400, err_name)


@pytest.mark.parametrize("params, hours, limit", [
    ({}, 24, 10), ({"hours": 0}, 24, 10), ({"hours": -5}, 24, 10), ({"hours": 23}, 23, 10), ({"hours": 25}, 24, 10),
    ({"hours": 167}, 24, 10), ({"hours": 168}, 168, 10), ({"hours": 169}, 168, 10), ({"hours": 10**12}, 168, 10),
    ({"limit": 0}, 24, 10), ({"limit": 101}, 24, 100), ({"limit": 3}, 24, 3),
])
def test_leaderboard_defaults_and_normalization(client, params, hours, limit):
    data = ok(client.get("/api/v1/leaderboard", params=params))
    assert (data["type"], data["hours"], data["limit"]) == ("hot", hours, limit)


def test_alerts_filters_and_ack(client, market):
    everything = whole(client.get("/api/v1/alerts"))
    assert everything["total"] == 3 and everything["page_size"] == 20
    assert sorted(a["alert_type"] for a in everything["data"]) == ["high_outflow", "low_liquidity", "surge"]
    critical = ok(client.get("/api/v1/alerts", params={"severity": "critical"}))
    assert [(a["ip_id"], a["alert_type"], a["ip_name"]) for a in critical] == [(market["busy"], "surge", "ちいかわ")]
    assert (critical[0]["metric_value"], critical[0]["threshold_value"]) == (6.0, 2.0)
    assert whole(client.get("/api/v1/alerts", params={"ip_id": market["calm"]}))["total"] == 1
    acked = ok(client.post(f"/api/v1/alerts/{critical[0]['id']}/ack"))
    assert acked["acknowledged"] is True and acked["acknowledged_at"] == "2026-11-02T12:10:00+09:00"
    assert acked["ip_name"] == "ちいかわ"
    assert ok(client.post(f"/api/v1/alerts/{critical[0]['id']}/ack"))["acknowledged"] is True
    assert whole(client.get("/api/v1/alerts", params={"acknowledged": "false"}))["total"] == 2
    assert whole(client.get("/api/v1/alerts", params={"acknowledged": "true"}))["total"] == 1
    assert whole(client.get("/api/v1/alerts", params={"page": 2, "page_size": 2}))["page"] == 2
    assert whole(client.get("/api/v1/alerts", params={"page_size": 500}))["page_size"] == 100
    err(client.post("/api/v1/alerts/9999/ack"), 404)
    err(client.get("/api/v1/alerts", params={"severity": "fatal"}), 400, "severity")
    err(client.get("/api/v1/alerts", params={"acknowledged": "maybe"}), 400, "acknowledged")


def test_system_status_and_scheduler(client, market, queue_redis):
    ScheduleStore(queue_redis).schedule(market["calm"], NOW.timestamp() - 30)
    ScheduleStore(queue_redis).schedule(market["busy"], NOW.timestamp() + 5400)
    queue_redis.incr(keys.FAILED_RUNS)
    queue_redis.lpush(keys.TASKS_DEADLETTER, b"{}")
    status = ok(client.get("/api/v1/system/status"))
    assert (status["status"], status["timestamp"]) == ("ok", "2026-11-02T12:10:00+09:00")
    assert status["database"] == {"connected": True, "ip_count": 3}
    assert status["pipeline"] == {"running": True, "processed": 6, "failed": 1, "success_rate": round(6 / 7, 4)}
    assert status["scheduler"] == {"running": True, "total_ips": 2, "overdue_ips": 1}
    assert status["stats"] == {"unacked_alerts": 3, "active_items": 165}
    assert status["redis"] == "ok" and status["queues"]["dead_letter"] == 1
    scheduler = ok(client.get("/api/v1/system/scheduler"))
    assert (scheduler["running"], scheduler["total_ips"], scheduler["overdue_ips"]) == (True, 2, 1)
    first, second = scheduler["schedules"]
    assert (first["ip_id"], first["ip_name"], first["is_overdue"], first["time_until"]) == \
        (market["calm"], "鬼滅の刃", True, "-30s")
    assert (second["is_overdue"], second["time_until"], second["next_schedule"]) == \
        (False, "1h30m", "2026-11-02T13:40:00+09:00")


def test_success_rate_is_one_when_nothing_ran(settings, mysql_engine, queue_redis):
    from animehot_dagster.api.app import create_app
    from animehot_dagster_tests.api.contract_check import ContractClient

    with ContractClient(create_app(settings, mysql_engine, queue_redis, clock=lambda: NOW)) as empty:
        status = ok(empty.get("/api/v1/system/status"))
        assert status["pipeline"] == {"running": True, "processed": 0, "failed": 0, "success_rate": 1.0}
        assert status["scheduler"] == {"running": False, "total_ips": 0, "overdue_ips": 0}
        assert status["database"] == {"connected": True, "ip_count": 0}
        assert ok(empty.get("/api/v1/system/scheduler"))["schedules"] == []
        assert ok(empty.get("/api/v1/leaderboard", params={"hours": 1}))["items"] == []


def test_envelope_on_method_not_allowed(client):
    resp = client.patch("/api/v1/ips")
    assert resp.status_code == 405 and resp.json()["code"] == 405
    assert json.loads(resp.content)["message"]
