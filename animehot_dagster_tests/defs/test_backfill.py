"""Backfills: re-materializing the hourly figures, the alerts and the rollups over a range gives the
same rows as before (they are recomputed from the stored facts), and the asset checks pass."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
import pytest
import sqlalchemy as sa

from animehot_dagster.domain.timebuckets import JST, hour_bucket, week_start
from animehot_dagster.storage.schema import (
    ip_alerts,
    ip_stats_daily,
    ip_stats_hourly,
    ip_stats_weekly,
)
from animehot_dagster_tests.defs import (
    add_ip_partitions,
    check_results,
    last_complete_week_monday,
    market_crawls,
    materializations,
    partition_key,
    push,
    table_rows,
)
from animehot_dagster_tests.factories import make_ips

HOURLY_ASSETS = [dg.AssetKey("hourly_liquidity"), dg.AssetKey("liquidity_alerts")]
# Per IP: the baseline, then (new listings, sold) per crawl, one crawl an hour.
MOVES_A = [(0, 0), (20, 60), (40, 5), (10, 10)]  # surge + high outflow, then low liquidity
MOVES_B = [(0, 0), (5, 2), (30, 30), (8, 1)]  # nothing, nothing, then low liquidity


@pytest.fixture
def ingested(definitions, instance, mysql_engine, queue_redis):
    """Two IPs crawled hourly from Tuesday 22:00 to Wednesday 01:00 (Japan) of the last complete
    week, ingested by a batch run; returns (ip ids, crawl times)."""
    a, b = make_ips(mysql_engine, "鬼滅の刃", "ちいかわ")
    add_ip_partitions(instance, [a, b])
    tuesday_22 = last_complete_week_monday() + timedelta(days=1, hours=22, minutes=5)
    times = [tuesday_22 + timedelta(hours=h) for h in range(4)]
    crawls = market_crawls(a, times, MOVES_A, tag="a") + market_crawls(b, [t + timedelta(minutes=20) for t in times], MOVES_B, tag="b")
    push(queue_redis, *sorted(crawls, key=lambda c: c.crawled_at))
    result = definitions.resolve_job_def("ingest_results_job").execute_in_process(instance=instance)
    assert result.success
    return (a, b), times


def _hourly_snapshot(engine, exclude=("updated_at",)):
    return (
        table_rows(engine, ip_stats_hourly, exclude=exclude, order=("ip_id", "hour_bucket")),
        table_rows(engine, ip_alerts, exclude=exclude, order=("ip_id", "hour_bucket", "alert_type")),
    )


def _backfill_hours(definitions, instance, keys: list[str]) -> None:
    job = definitions.resolve_job_def("crawl_chain_job")
    for key in keys:
        result = job.execute_in_process(partition_key=key, asset_selection=HOURLY_ASSETS, instance=instance)
        assert result.success, key
        assert {k[0] for k in materializations(result)} == {"hourly_liquidity", "liquidity_alerts"}
        assert check_results(result) == {"hourly_figures_consistent": True, "alerts_match_rules": True}, key


def test_backfilling_hourly_liquidity_and_alerts_reproduces_the_rows(definitions, instance, mysql_engine, ingested):
    ips, times = ingested
    hourly, alerts = _hourly_snapshot(mysql_engine)
    assert len(hourly) == 8
    assert sorted((r["ip_id"], r["hour_bucket"], r["alert_type"]) for r in alerts) == sorted([
        (ips[0], hour_bucket(times[1]), "high_outflow"),
        (ips[0], hour_bucket(times[1]), "surge"),
        (ips[0], hour_bucket(times[2]), "low_liquidity"),
        (ips[1], hour_bucket(times[3]), "low_liquidity"),
    ])

    # The range, an hour wider on each side than the crawls: empty hours stay empty.
    hours = [hour_bucket(times[0]) + timedelta(hours=h) for h in range(-1, 5)]
    every_partition = [partition_key(ip, hour) for ip in ips for hour in hours]
    _backfill_hours(definitions, instance, every_partition)
    assert _hourly_snapshot(mysql_engine) == (hourly, alerts)

    # From nothing: the figures and alerts of every hour come back from the facts alone.
    with mysql_engine.begin() as connection:
        connection.execute(sa.delete(ip_alerts))
        connection.execute(sa.delete(ip_stats_hourly))
    _backfill_hours(definitions, instance, [partition_key(ip, t) for ip in ips for t in times])
    volatile = ("id", "created_at", "updated_at")
    assert _hourly_snapshot(mysql_engine, exclude=volatile) == _hourly_snapshot_of(hourly, alerts, volatile)


def _hourly_snapshot_of(hourly, alerts, exclude):
    def strip(rows):
        return [{k: v for k, v in row.items() if k not in exclude} for row in rows]

    return strip(hourly), strip(alerts)


def _rollup(definitions, instance, job: str, key: str):
    result = definitions.resolve_job_def(job).execute_in_process(partition_key=key, instance=instance)
    assert result.success
    return result


def test_rollups_rematerialized_give_the_same_rows_and_match_the_hourly_sums(definitions, instance, mysql_engine, ingested):
    ips, times = ingested
    days = sorted({t.astimezone(JST).date() for t in times})
    assert len(days) == 2  # Tuesday and Wednesday
    monday = week_start(days[0])

    snapshots = []
    for _ in range(2):
        for day in days:
            result = _rollup(definitions, instance, "daily_rollup_job", day.isoformat())
            assert check_results(result) == {"daily_totals_match_hours": True}
            assert materializations(result)[("daily_liquidity", day.isoformat())]["rows"] == 2
        result = _rollup(definitions, instance, "weekly_rollup_job", monday.isoformat())
        assert check_results(result) == {"weekly_totals_match_hours": True}
        snapshots.append((
            table_rows(mysql_engine, ip_stats_daily, order=("ip_id", "date_bucket")),
            table_rows(mysql_engine, ip_stats_weekly, order=("ip_id", "week_start")),
        ))
    assert snapshots[0] == snapshots[1]

    daily, weekly = snapshots[0]
    hourly = table_rows(mysql_engine, ip_stats_hourly, order=("ip_id", "hour_bucket"))
    for row in daily:
        in_day = [h for h in hourly if h["ip_id"] == row["ip_id"] and h["hour_bucket"].astimezone(JST).date() == row["date_bucket"]]
        assert (row["total_inflow"], row["total_outflow"], row["hourly_records"]) == (
            sum(h["inflow"] for h in in_day), sum(h["outflow"] for h in in_day), len(in_day))
    assert len(daily) == 4
    for row in weekly:
        assert row["week_start"] == monday
        mine = [h for h in hourly if h["ip_id"] == row["ip_id"]]
        assert (row["total_inflow"], row["total_outflow"], row["daily_records"]) == (
            sum(h["inflow"] for h in mine), sum(h["outflow"] for h in mine), 2)
    assert {row["ip_id"] for row in weekly} == set(ips)

    # The leaderboards read last week from the weekly table.
    board = materializations(definitions.resolve_job_def("leaderboards_job").execute_in_process(instance=instance))
    assert board[("leaderboards", None)]["entries_168h"] == 2
