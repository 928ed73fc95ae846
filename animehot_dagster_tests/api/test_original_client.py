"""A client written against the original analyzer's documented API, over a real socket: what its
web frontend and scripts read, read the way they read it (``data.forEach``, ``+x.on_sale_inflow``,
``hot_score.toFixed``, ``stats[].hour_bucket`` …). Nothing here knows this project's additions."""

from __future__ import annotations

import httpx

from animehot_dagster.api.app import create_app
from animehot_dagster_tests.api.conftest import NOW, LiveServer


def _number(value) -> float:
    """What ``value.toFixed(2)`` needs: a number (not null, not a string, not a bool)."""
    assert isinstance(value, int | float) and not isinstance(value, bool), value
    return float(value)


class OriginalClient:
    """The original frontend's service layer (getIPs, getLeaderboard, getIPLiquidity,
    getIPHourlyStats, getIPItems, getIP) and the documented admin and system calls."""

    def __init__(self, base: str, api_key: str) -> None:
        self.http = httpx.Client(base_url=base, timeout=30)
        self.api_key = api_key

    def request(self, method: str, endpoint: str, **kwargs) -> dict:
        response = self.http.request(method, endpoint, **kwargs)
        if not response.is_success:  # the original's `if (!response.ok) throw`
            raise RuntimeError(f"API Error: {response.status_code}")
        return response.json()

    def get_ips(self):
        return self.request("GET", "/api/v1/ips")

    def get_leaderboard(self, kind="hot", hours=24, limit=10):
        return self.request("GET", "/api/v1/leaderboard", params={"type": kind, "hours": hours, "limit": limit})

    def get_liquidity(self, ip_id):
        return self.request("GET", f"/api/v1/ips/{ip_id}/liquidity")

    def get_hourly(self, ip_id, limit=24):
        return self.request("GET", f"/api/v1/ips/{ip_id}/stats/hourly", params={"limit": limit})

    def get_items(self, ip_id, status=None, page=1, page_size=20):
        params = {"page": page, "page_size": page_size, **({"status": status} if status else {})}
        return self.request("GET", f"/api/v1/ips/{ip_id}/items", params=params)

    def admin(self, path: str, **kwargs):
        return self.request("POST", f"/api/v1/admin/{path}", headers={"X-API-Key": self.api_key}, **kwargs)


def test_a_client_of_the_original_works_unchanged(settings, mysql_engine, queue_redis, market):
    app = create_app(settings, mysql_engine, queue_redis, clock=lambda: NOW)
    with LiveServer(app) as server:
        client = OriginalClient(server.url, "s3cret")
        assert client.request("GET", "/health")["status"] == "ok"

        ips = client.get_ips()
        assert ips["code"] == 0
        names = [ip["name"] for ip in ips["data"]]  # data.forEach(ip => …)
        assert sorted(names) == sorted(["鬼滅の刃", "ちいかわ", "初音ミク"])
        assert (ips["total"], ips["page"], ips["page_size"]) == (3, 1, 20)
        detail = client.request("GET", f"/api/v1/ips/{market['busy']}")["data"]
        assert detail["name"] == "ちいかわ" and isinstance(detail["tags"], list)

        board = client.get_leaderboard("hot", 3, 10)["data"]
        assert board["type"] == "hot" and board["count"] == len(board["items"]) == 3
        assert set(board["time_range"]) >= {"start", "end"}
        top = board["items"][0]
        assert (top["rank"], top["ip_id"], top["ip_name"]) == (1, market["busy"], "ちいかわ")
        assert isinstance(top["ip_name_en"], str) and _number(top["score"]) > 0
        _number(top["inflow"]), _number(top["outflow"])
        assert client.get_leaderboard()["data"]["hours"] == 24  # the frontend's default window

        liquidity = client.get_liquidity(market["busy"])["data"]
        assert f"+{liquidity['on_sale_inflow']}" == "+10" and f"+{liquidity['sold_inflow']}" == "+60"
        assert liquidity["ip_name"] == "ちいかわ" and liquidity["updated_at"].endswith("+09:00")
        assert f"{_number(liquidity['hot_score']):.2f}" == "22.80"
        _number(liquidity["on_sale_total"]), _number(liquidity["sold_total"]), _number(liquidity["on_sale_outflow"])

        hourly = client.get_hourly(market["calm"])["data"]
        assert hourly["ip_name"] == "鬼滅の刃" and hourly["count"] == len(hourly["stats"]) == 3
        for row in hourly["stats"]:  # two charts: inflow/outflow and prices by hour_bucket
            assert row["hour_bucket"].endswith("+09:00")
            _number(row["inflow"]), _number(row["outflow"]), _number(row["active_count"]), _number(row["sample_count"])
        priced = [row for row in hourly["stats"] if row["min_price_item"]]
        assert priced and set(priced[0]["min_price_item"]) >= {"source_id", "title", "price", "image_url", "item_url"}

        items = client.get_items(market["busy"], "sold", 1, 20)
        assert (items["total"], items["page"], items["page_size"], len(items["data"])) == (60, 1, 20, 20)
        first = items["data"][0]
        assert first["status"] == "sold" and first["sold_at"] and first["price_changed"] is False
        assert first["item_url"] is not None and isinstance(first["id"], int)

        alerts = client.request("GET", "/api/v1/alerts", params={"severity": "warning"})
        warning = alerts["data"][0]
        assert (warning["alert_type"], warning["ip_name"]) == ("high_outflow", "ちいかわ")
        assert (_number(warning["metric_value"]), _number(warning["threshold_value"])) == (60, 50)
        acked = client.request("POST", f"/api/v1/alerts/{warning['id']}/ack")["data"]
        assert acked["acknowledged"] is True and acked["acknowledged_at"]

        status = client.request("GET", "/api/v1/system/status")["data"]
        assert status["database"]["connected"] is True and status["database"]["ip_count"] == 3
        assert 0 <= status["pipeline"]["success_rate"] <= 1 and status["stats"]["active_items"] >= 0
        assert isinstance(status["scheduler"]["running"], bool)
        scheduler = client.request("GET", "/api/v1/system/scheduler")["data"]
        assert isinstance(scheduler["schedules"], list) and scheduler["total_ips"] == len(scheduler["schedules"])

        created = client.request("POST", "/api/v1/ips", json={"name": "呪術廻戦", "name_en": "Jujutsu Kaisen",
                                                               "category": "anime", "tags": ["shounen"], "weight": 1.0,
                                                               "notes": ""})
        new_id = created["data"]["id"]
        assert _number(client.get_liquidity(new_id)["data"]["hot_score"]) == 0  # no hour yet: 0, not null
        triggered = client.request("POST", f"/api/v1/ips/{new_id}/trigger")["data"]
        assert (triggered["id"], triggered["triggered"]) == (new_id, True)
        report = client.admin("import", json={"ips": [{"name": "呪術廻戦", "weight": 1.5}, {"name": "新IP"}, {"name": ""}]})
        assert (report["data"]["created"], report["data"]["updated"], report["data"]["failed"]) == (1, 1, 1)
        assert [(d["name"], d["status"]) for d in report["data"]["details"]] == \
            [("呪術廻戦", "updated"), ("新IP", "created"), ("", "failed")]
        deleted = client.request("DELETE", f"/api/v1/ips/{new_id}")["data"]
        assert (deleted["id"], deleted["deleted"]) == (new_id, True)
        client.admin("archive/daily", params={"date": "2026-11-02"})
        client.admin("archive/weekly", params={"week_start": "2026-11-02"})
        client.http.close()
