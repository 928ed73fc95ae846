"""``animehot verify`` reads the API in its wire shape (SPEC §9): the hourly stats of IPs with
complete hours are in ``data.stats``; IPs measured in the current hour only must be served."""

from __future__ import annotations

import httpx

from animehot_dagster.api.app import create_app
from animehot_dagster.stack.verify import _api_serves
from animehot_dagster_tests.api.conftest import NOW, LiveServer


def test_verify_finds_the_served_figures_and_names_what_is_missing(settings, mysql_engine, queue_redis, market):
    app = create_app(settings, mysql_engine, queue_redis, clock=lambda: NOW)
    with LiveServer(app) as server:
        ok, detail = _api_serves(server.url, [market["calm"], market["busy"]], [market["idle"]])
        assert ok, detail
        assert detail == "hourly stats served for 2 IP(s); 1 measured in the current hour only (served once it is complete)"
        fresh = httpx.post(f"{server.url}/api/v1/ips", json={"name": "呪術廻戦"}).json()["data"]["id"]
        missing, detail = _api_serves(server.url, [market["calm"], fresh, 9999], [])
        assert not missing and f"{fresh} (200), 9999 (404)" in detail  # empty stats, unknown IP
