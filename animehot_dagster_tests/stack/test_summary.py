"""The demo summary's arithmetic: market time, errors, the table."""

from __future__ import annotations

import pytest

from animehot_dagster.stack.summary import MarketClock, format_summary, relative_error


def test_relative_error_is_signed_and_undefined_without_truth():
    assert relative_error(90, 100) == pytest.approx(-0.1)
    assert relative_error(5, 0) is None


def test_the_market_clock_runs_scale_times_as_fast():
    clock = MarketClock(wall=1000.0, market=50_000.0, scale=60.0)
    assert clock.market_time(1010.0) == 50_600.0


def test_the_table_aligns_japanese_names_and_shows_missing_truth_as_na():
    ip = {"ip_id": 1, "name": "葬送のフリーレン葬送のフリーレン", "crawls": 1, "inflow": 0, "outflow": 0,
          "liquidity_index": None,
          "vs_truth": {"measured_inflow": 0, "measured_outflow": 0, "truth_created": None, "truth_sold": None,
                       "inflow_error": None, "outflow_error": None}}
    summary = {"crawls": 1, "wall_seconds": 60, "ips": [ip], "leaderboard": None, "urls": {"API": "http://x"},
               "vs_truth": {"measured_inflow": 0, "truth_created": 0, "measured_outflow": 0, "truth_sold": 0,
                            "inflow_error": None, "outflow_error": None}}
    row = next(line for line in format_summary(summary).splitlines() if line.startswith("葬送"))
    assert row.startswith("葬送のフリーレン葬送のフ      1")  # cut to 24 terminal columns
    assert "n/a" in row


def test_the_summary_reads_as_the_api_serves(mysql_engine, queue_redis):
    """On data written by the real ingest: the summary's per-IP figures and leaderboard equal
    what the API answers as of the hour after the last crawl (the API serves complete hours)."""
    from datetime import UTC, datetime

    from animehot_dagster.api.app import create_app
    from animehot_dagster.settings import load_settings
    from animehot_dagster.stack.summary import build_summary
    from animehot_dagster_tests.api.conftest import seed_market
    from animehot_dagster_tests.api.contract_check import ContractClient
    from animehot_dagster_tests.factories import T0

    seed_market(mysql_engine)
    summary = build_summary(mysql_engine, T0, None, None, 60.0, {})
    board = summary["leaderboard"]
    as_of = datetime.fromisoformat(board["as_of"]).astimezone(UTC)
    app = create_app(load_settings({"AUTO_MIGRATE": "false"}), mysql_engine, queue_redis, clock=lambda: as_of)
    with ContractClient(app) as api:
        for ip in summary["ips"]:
            hours = api.get(f"/api/v1/ips/{ip['ip_id']}/stats/hourly", params={"limit": 168}).json()["data"]["stats"]
            assert (sum(h["inflow"] for h in hours), sum(h["outflow"] for h in hours)) == (ip["inflow"], ip["outflow"])
        served = api.get(f"{board['request']}&limit=10").json()["data"]
    assert served["items"] == board["items"] and served["time_range"] == board["time_range"]
    assert [e["ip_name"] for e in board["items"]] == ["ちいかわ", "鬼滅の刃", "初音ミク"]
    assert "ちいかわ" in format_summary(summary)
