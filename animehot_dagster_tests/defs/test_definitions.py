"""The code location: what it defines, its partitions, its schedules, and the resources it builds
from settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import redis
import sqlalchemy as sa

from animehot_dagster.defs import partitions
from animehot_dagster.defs.resources import (
    AnalyzerResource,
    DatabaseResource,
    QueueResource,
    build_resources,
)
from animehot_dagster.domain.alerts import AlertThresholds
from animehot_dagster.domain.timebuckets import JST
from animehot_dagster.settings import load_settings
from animehot_dagster_tests.conftest import REDIS_URL
from animehot_dagster_tests.defs import current_hour

REPO = Path(__file__).resolve().parents[2]

ASSETS = {
    "ip_catalog",
    "mercari_crawl",
    "hourly_liquidity",
    "liquidity_alerts",
    "daily_liquidity",
    "weekly_liquidity",
    "leaderboards",
}
SENSORS = {"ip_catalog_sensor", "crawl_cadence_sensor", "crawl_results_sensor", "crawl_run_failure_sensor"}
# The tables of facts and figures the assets write, and the checks that guard them.
FACT_ASSETS = {
    "ip_catalog", "mercari_crawl", "hourly_liquidity", "liquidity_alerts", "daily_liquidity", "weekly_liquidity",
}


def test_definitions_load_and_hold_every_asset_sensor_and_job(definitions):
    dg.Definitions.validate_loadable(definitions)
    assert {spec.key.to_user_string() for spec in definitions.resolve_all_asset_specs()} == ASSETS
    assert {sensor.name for sensor in definitions.sensors} == SENSORS
    jobs = {job.name for job in definitions.get_repository_def().get_all_jobs()}
    assert {"crawl_chain_job", "ingest_results_job", "queue_janitor_job", "daily_rollup_job",
            "weekly_rollup_job", "leaderboards_job"} <= jobs
    assert set(definitions.resources) >= {"database", "queue", "analyzer"}
    # Every crawl-chain asset is IP × hour; the rollups are Japan days and Monday weeks.
    graph = definitions.resolve_asset_graph()
    for key in ("mercari_crawl", "hourly_liquidity", "liquidity_alerts"):
        assert graph.get(dg.AssetKey(key)).partitions_def == partitions.crawl_partitions
    assert graph.get(dg.AssetKey("daily_liquidity")).partitions_def == partitions.day_partitions
    assert graph.get(dg.AssetKey("weekly_liquidity")).partitions_def == partitions.week_partitions


def test_every_fact_table_asset_has_an_asset_check(definitions):
    checked = {key.asset_key.to_user_string() for key in definitions.resolve_asset_graph().asset_check_keys}
    assert FACT_ASSETS <= checked, FACT_ASSETS - checked


def test_schedules_janitor_every_five_minutes_rollups_on_japan_time(definitions):
    schedules = {s.job_name: s for s in map(definitions.resolve_schedule_def, (s.name for s in definitions.schedules))}
    janitor = schedules["queue_janitor_job"]
    assert janitor.cron_schedule == "*/5 * * * *"
    daily = schedules["daily_rollup_job"]
    assert (daily.cron_schedule, daily.execution_timezone) == ("10 0 * * *", "Asia/Tokyo")
    weekly = schedules["weekly_rollup_job"]
    assert (weekly.cron_schedule, weekly.execution_timezone) == ("30 0 * * 1", "Asia/Tokyo")
    for schedule in (janitor, daily, weekly):
        assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING


def test_rollup_schedules_target_the_day_and_week_that_just_ended(definitions, instance):
    schedules = {s.job_name: s for s in map(definitions.resolve_schedule_def, (s.name for s in definitions.schedules))}
    today = datetime.now(UTC).astimezone(JST).date()
    at_0010 = datetime(today.year, today.month, today.day, 0, 10, tzinfo=JST)
    daily = schedules["daily_rollup_job"].evaluate_tick(
        dg.build_schedule_context(instance=instance, scheduled_execution_time=at_0010)
    )
    assert [r.partition_key for r in daily.run_requests] == [(today - timedelta(days=1)).isoformat()]

    monday = today - timedelta(days=today.weekday())
    at_monday_0030 = datetime(monday.year, monday.month, monday.day, 0, 30, tzinfo=JST)
    weekly = schedules["weekly_rollup_job"].evaluate_tick(
        dg.build_schedule_context(instance=instance, scheduled_execution_time=at_monday_0030)
    )
    assert [r.partition_key for r in weekly.run_requests] == [(monday - timedelta(days=7)).isoformat()]


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # 01:00 on 3 November in Japan, though still 2 November in UTC: the Japan date counts.
        (datetime(2026, 11, 2, 16, 0, tzinfo=UTC), datetime(2026, 10, 20, tzinfo=JST)),
        (datetime(2026, 11, 2, 14, 59, tzinfo=UTC), datetime(2026, 10, 19, tzinfo=JST)),
    ],
)
def test_window_start_is_japan_midnight_retention_days_before_today(now, expected):
    assert partitions.window_start(14, now) == expected


def test_hour_and_rollup_partitions_start_at_the_window_start():
    start = partitions.window_start(load_settings().partition_retention_days)
    assert partitions.hour_partitions.get_first_partition_key() == start.strftime("%Y-%m-%d-%H:%M")
    assert partitions.hour_partitions.get_first_partition_key().endswith("-00:00")
    assert partitions.day_partitions.get_first_partition_key() == start.date().isoformat()
    monday = start.date() - timedelta(days=start.weekday())
    assert partitions.week_partitions.get_first_partition_key() == monday.isoformat()


def test_partition_window_follows_partition_retention_days():
    """The window is computed when the code location loads, from PARTITION_RETENTION_DAYS."""
    script = (
        "import json; from animehot_dagster.defs import partitions as p;"
        "print(json.dumps([p.hour_partitions.get_first_partition_key(), p.window_start(3).strftime('%Y-%m-%d-%H:%M')]))"
    )
    env = {**os.environ, "PARTITION_RETENTION_DAYS": "3"}
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    first, expected = json.loads(out.stdout.strip().splitlines()[-1])
    assert first == expected


def test_the_current_hour_is_a_partition():
    hour = current_hour()
    key = hour.astimezone(JST).strftime(partitions.HOUR_FORMAT)
    assert partitions.hour_partitions.get_last_partition_key() == key


# -- resources from settings -------------------------------------------------------------------


def test_resources_are_built_from_settings(mysql_url):
    env = {
        "DATABASE_URL": mysql_url,
        "REDIS_URL": REDIS_URL,
        "REDIS_POOL_SIZE": "4",
        "DB_READ_TIMEOUT": "7s",
        "AUTO_MIGRATE": "false",
        "SCHEDULER_BASE_INTERVAL": "90m",
        "SCHEDULER_MIN_INTERVAL": "45m",
        "SCHEDULER_MAX_INTERVAL": "3h",
        "SCHEDULER_PAGES_ON_SALE": "3",
        "SCHEDULER_PAGES_SOLD": "2",
        "SCHEDULER_SCHEDULE_SLOT": "5m",
        "SCHEDULER_BATCH_SIZE": "7",
        "SCHEDULER_BACKPRESSURE_THRESHOLD": "4",
        "JANITOR_TIMEOUT": "30s",
        "BROWSER_TASK_TIMEOUT": "20s",
        "ANALYZER_ITEM_TTL_AVAILABLE": "12h",
        "ANALYZER_ITEM_TTL_SOLD": "36h",
        "ANALYZER_HIGH_OUTFLOW_THRESHOLD": "40",
        "ANALYZER_LOW_LIQUIDITY_THRESHOLD": "0.25",
        "ANALYZER_HIGH_LIQUIDITY_THRESHOLD": "3",
    }
    built = build_resources(load_settings(env))
    database, queue, analyzer = built["database"], built["queue"], built["analyzer"]
    assert isinstance(database, DatabaseResource) and database.url == mysql_url
    assert (database.read_timeout_seconds, database.auto_migrate) == (7, False)
    assert isinstance(queue, QueueResource)
    assert (queue.url, queue.pool_size, queue.janitor_timeout_seconds, queue.task_timeout_seconds) == (REDIS_URL, 4, 30, 20)
    assert isinstance(analyzer, AnalyzerResource)
    # The UI shows the policies in plain form: durations in seconds.
    assert analyzer.cadence_policy == {"base_interval": 5400, "min_interval": 2700, "max_interval": 10800,
                                       "pages_on_sale": 3, "pages_sold": 2, "schedule_slot": 300}
    assert (analyzer.dispatch["batch_size"], analyzer.dispatch["backpressure_threshold"]) == (7, 4)
    assert analyzer.item_ttl == {"available": 12 * 3600, "sold": 36 * 3600}

    # The domain types rebuilt from them carry the same figures and types.
    policy = analyzer.cadence()
    assert policy.base_interval == timedelta(minutes=90)
    assert (policy.min_interval, policy.max_interval) == (timedelta(minutes=45), timedelta(hours=3))
    assert (policy.pages_on_sale, policy.pages_sold, policy.schedule_slot) == (3, 2, timedelta(minutes=5))
    config = analyzer.ingest_config()
    assert config.thresholds == AlertThresholds(high_outflow=40, low_liquidity=0.25, high_liquidity=3.0)
    assert (config.ttl.available, config.ttl.sold) == (timedelta(hours=12), timedelta(hours=36))
    dispatch = analyzer.dispatch_config(max_wait_seconds=20)
    assert (dispatch.batch_size, dispatch.backpressure_threshold, dispatch.max_backpressure_wait_seconds) == (7, 4, 20)
    assert (dispatch.pages_on_sale, dispatch.pages_sold) == (3, 2)
    assert type(policy.pages_on_sale) is int and type(dispatch.defer_when_full) is bool
    assert dispatch.lease_seconds == timedelta(hours=3).total_seconds()  # SCHEDULER_MAX_INTERVAL, above the janitor's recovery

    # And they reach the configured services.
    with database.engine().connect() as connection:
        assert connection.execute(sa.text("SELECT DATABASE()")).scalar_one() == sa.make_url(mysql_url).database
    client = queue.client()
    assert client.ping()
    assert client.connection_pool.connection_kwargs["db"] == redis.Redis.from_url(REDIS_URL).connection_pool.connection_kwargs["db"]
    assert not client.connection_pool.connection_kwargs.get("decode_responses")  # the queues need bytes


def test_the_code_locations_resources_follow_the_environment(definitions, dagster_env, mysql_url):
    database, queue = definitions.resources["database"], definitions.resources["queue"]
    assert database.url == mysql_url
    assert (queue.url, queue.janitor_timeout_seconds, queue.task_timeout_seconds) == (REDIS_URL, 5, 20)
    assert definitions.resources["analyzer"].cadence().base_interval == timedelta(hours=2)
