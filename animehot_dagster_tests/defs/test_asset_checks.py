"""Every asset check of the code location, shown passing on good data and failing on the bad data a
real defect leaves behind.

The data is made the way production makes it (crawl results through the results sensor and the
crawl chain, rollups through their jobs) on the test MySQL database; then a row is corrupted and
the check is run on its own, as the UI's "Execute checks" runs it: a run that selects only that
check, for its partition, with the code location's resources.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
import sqlalchemy as sa

from animehot_dagster.domain.timebuckets import JST, hour_bucket, week_start
from animehot_dagster.storage.schema import (
    crawl_log,
    ip_alerts,
    ip_metadata,
    ip_stats_daily,
    ip_stats_hourly,
    ip_stats_weekly,
)
from animehot_dagster_tests.defs import (
    add_ip_partitions,
    check_results,
    last_complete_week_monday,
    market_crawls,
    partition_key,
    past_hour,
    push,
    tick,
)
from animehot_dagster_tests.factories import make_ips

CRAWL_PAGES_COMPLETE = dg.AssetCheckKey(dg.AssetKey("mercari_crawl"), "crawl_pages_complete")
HOURLY_FIGURES_CONSISTENT = dg.AssetCheckKey(dg.AssetKey("hourly_liquidity"), "hourly_figures_consistent")
ALERTS_MATCH_RULES = dg.AssetCheckKey(dg.AssetKey("liquidity_alerts"), "alerts_match_rules")
EVERY_ACTIVE_IP_FRESH = dg.AssetCheckKey(dg.AssetKey("ip_catalog"), "every_active_ip_fresh")
DAILY_TOTALS_MATCH_HOURS = dg.AssetCheckKey(dg.AssetKey("daily_liquidity"), "daily_totals_match_hours")
WEEKLY_TOTALS_MATCH_HOURS = dg.AssetCheckKey(dg.AssetKey("weekly_liquidity"), "weekly_totals_match_hours")
SHOWN_FAILING = {
    CRAWL_PAGES_COMPLETE,
    HOURLY_FIGURES_CONSISTENT,
    ALERTS_MATCH_RULES,
    EVERY_ACTIVE_IP_FRESH,
    DAILY_TOTALS_MATCH_HOURS,
    WEEKLY_TOTALS_MATCH_HOURS,
}


def run_check(definitions, instance, check: dg.AssetCheckKey, partition: str | None = None):
    """The evaluation of ``check`` by a run that executes that check alone, as the UI's "Execute"
    launches one: the code location's asset job subset to the check, tagged with the partition."""
    job = definitions.resolve_implicit_global_asset_job_def().get_subset(asset_check_selection={check})
    result = job.execute_in_process(tags={"dagster/partition": partition} if partition else None, instance=instance)
    assert result.success
    assert not result.get_asset_materialization_events(), "a check run materializes nothing"
    [evaluation] = result.get_asset_check_evaluations()
    assert (evaluation.asset_key, evaluation.check_name, evaluation.partition) == (check.asset_key, check.name, partition)
    return evaluation


def metadata(evaluation) -> dict:
    return {name: value.value for name, value in evaluation.metadata.items()}


def execute(engine, statement) -> None:
    with engine.begin() as connection:
        assert connection.execute(statement).rowcount == 1, "the corruption must hit one row"


def test_every_asset_check_of_the_code_location_is_shown_failing_here(definitions):
    checks = {key for checks_def in definitions.asset_checks for key in checks_def.check_keys}
    assert checks == SHOWN_FAILING, "a new asset check needs a test of its failing case in this module"


# -- the crawl chain: mercari_crawl, hourly_liquidity, liquidity_alerts ---------------------------


@pytest.fixture
def busy_hour(definitions, instance, resources, mysql_engine, queue_redis) -> tuple[int, str, str]:
    """An IP's baseline crawl and, an hour later, a busy one (20 new listings, 60 sold: a surge
    and a high outflow), ingested by the crawl chain runs the results sensor asks for; returns
    (ip id, the busy hour's partition, the busy crawl's task id)."""
    [ip] = make_ips(mysql_engine, "鬼滅の刃")
    add_ip_partitions(instance, [ip])
    baseline, busy = market_crawls(ip, [past_hour(2), past_hour(1)], [(0, 0), (20, 60)], tag="m")
    push(queue_redis, baseline, busy)
    job = definitions.resolve_job_def("crawl_chain_job")
    for request in tick(definitions, "crawl_results_sensor", instance, resources).run_requests:
        run = job.execute_in_process(partition_key=request.partition_key, run_config=request.run_config, instance=instance)
        assert run.success
        assert all(check_results(run).values()), check_results(run)
    return ip, partition_key(ip, past_hour(1)), busy.task_id


def test_crawl_pages_complete_fails_on_a_crawl_that_stopped_short(definitions, instance, mysql_engine, busy_hour):
    _ip, key, task_id = busy_hour
    good = run_check(definitions, instance, CRAWL_PAGES_COMPLETE, key)
    assert good.passed
    assert metadata(good) == {"crawls": 1, "pages_asked": 10, "short_crawls": 0, "short": []}

    # 3 pages of the 10 asked is fine when the search found no more than 3 pages hold ...
    logged = crawl_log.update().where(crawl_log.c.task_id == task_id)
    execute(mysql_engine, logged.values(pages_crawled=3, total_found=300))
    assert run_check(definitions, instance, CRAWL_PAGES_COMPLETE, key).passed

    # ... not when it found 5,000: the crawler stopped early and the hour's figures miss items.
    execute(mysql_engine, logged.values(total_found=5_000))
    short = run_check(definitions, instance, CRAWL_PAGES_COMPLETE, key)
    assert short.passed is False
    assert short.severity == dg.AssetCheckSeverity.WARN
    assert metadata(short) == {
        "crawls": 1,
        "pages_asked": 10,
        "short_crawls": 1,
        "short": [{"task_id": task_id, "pages_crawled": 3, "total_found": 5_000}],
    }


def _the_busy_row(ip: int):
    return ip_stats_hourly.update().where(ip_stats_hourly.c.ip_id == ip, ip_stats_hourly.c.hour_bucket == hour_bucket(past_hour(1)))


def _double_counted_sale(ip):
    # One sale counted twice, the index recomputed from the wrong count: only the facts disagree.
    return _the_busy_row(ip).values(outflow=ip_stats_hourly.c.outflow + 1, liquidity_index=61 / 20)


def _index_not_outflow_over_inflow(ip):
    return _the_busy_row(ip).values(liquidity_index=ip_stats_hourly.c.liquidity_index + 1)


def _negative_active_count(ip):
    return _the_busy_row(ip).values(active_count=-1)


def _row_lost(ip):
    return ip_stats_hourly.delete().where(ip_stats_hourly.c.ip_id == ip, ip_stats_hourly.c.hour_bucket == hour_bucket(past_hour(1)))


@pytest.mark.parametrize(
    ("corrupt", "problems"),
    [
        (_double_counted_sale, "row differs from its facts"),
        (_index_not_outflow_over_inflow, "liquidity index 4.0000 is not 60/20"),
        (_negative_active_count, "negative count"),
        (_row_lost, None),
    ],
    ids=["outflow_plus_one", "wrong_liquidity_index", "negative_active_count", "row_missing"],
)
def test_hourly_figures_consistent_fails_on_a_corrupted_hour(
    definitions, instance, mysql_engine, busy_hour, corrupt, problems
):
    ip, key, _task_id = busy_hour
    good = run_check(definitions, instance, HOURLY_FIGURES_CONSISTENT, key)
    assert good.passed
    assert metadata(good) == {"problems": "none", "inflow": 20, "outflow": 60}

    execute(mysql_engine, corrupt(ip))
    bad = run_check(definitions, instance, HOURLY_FIGURES_CONSISTENT, key)
    assert bad.passed is False
    if problems is None:  # the hour has its crawl but lost its row
        assert metadata(bad) == {"row": "missing", "crawls": 1}
    else:
        assert metadata(bad)["problems"] == problems


def test_alerts_match_rules_fails_when_an_alert_is_missing(definitions, instance, mysql_engine, busy_hour):
    ip, key, _task_id = busy_hour
    good = run_check(definitions, instance, ALERTS_MATCH_RULES, key)
    assert good.passed
    assert metadata(good) == {"expected": "high_outflow, surge", "stored": "high_outflow, surge"}

    # The surge alert of the hour is lost (deleted, or never written by a failed write).
    execute(mysql_engine, ip_alerts.delete().where(ip_alerts.c.ip_id == ip, ip_alerts.c.alert_type == "surge"))
    bad = run_check(definitions, instance, ALERTS_MATCH_RULES, key)
    assert bad.passed is False
    assert metadata(bad) == {"expected": "high_outflow, surge", "stored": "high_outflow"}


# -- the catalog ----------------------------------------------------------------------------------


def test_every_active_ip_fresh_fails_on_an_active_ip_not_crawled_for_days(definitions, instance, mysql_engine):
    # Weight 1: a 2 h interval, 2 h 30 min with the slack.
    kept, forgotten, paused = make_ips(mysql_engine, "鬼滅の刃", "ちいかわ", "初音ミク")
    now = datetime.now(UTC)
    with mysql_engine.begin() as connection:
        for ip, crawled, status in ((kept, now - timedelta(minutes=40), "active"),
                                    (forgotten, now - timedelta(hours=2), "active"),
                                    (paused, now - timedelta(days=30), "paused")):
            connection.execute(ip_metadata.update().where(ip_metadata.c.id == ip).values(last_crawled_at=crawled, status=status))
    good = run_check(definitions, instance, EVERY_ACTIVE_IP_FRESH)
    assert good.passed, "a paused IP is not expected to be crawled"
    assert metadata(good) == {"stale_ips": 0, "stale": []}

    # The dispatcher lost the IP: its last crawl is three days old.
    crawled = now.replace(microsecond=0) - timedelta(days=3)
    execute(mysql_engine, ip_metadata.update().where(ip_metadata.c.id == forgotten).values(last_crawled_at=crawled))
    bad = run_check(definitions, instance, EVERY_ACTIVE_IP_FRESH)
    assert bad.passed is False
    assert bad.severity == dg.AssetCheckSeverity.WARN
    [stale] = metadata(bad)["stale"]
    assert (stale["id"], stale["name"]) == (forgotten, "ちいかわ")
    assert datetime.fromisoformat(stale["last_crawled_at"]) == crawled
    assert metadata(bad)["stale_ips"] == 1


# -- the rollups ----------------------------------------------------------------------------------


@pytest.fixture
def rolled_up(definitions, instance, mysql_engine, queue_redis) -> tuple[tuple[int, int], list, object]:
    """Two IPs crawled hourly from Tuesday 22:00 to Wednesday 01:00 (Japan) of the last complete
    week, ingested by a batch run, and that Tuesday, Wednesday and week rolled up by their jobs;
    returns (ip ids, days, the week's Monday)."""
    a, b = make_ips(mysql_engine, "鬼滅の刃", "ちいかわ")
    add_ip_partitions(instance, [a, b])
    tuesday_22 = last_complete_week_monday() + timedelta(days=1, hours=22, minutes=5)
    times = [tuesday_22 + timedelta(hours=h) for h in range(4)]
    crawls = market_crawls(a, times, [(0, 0), (20, 60), (40, 5), (10, 10)], tag="a") + market_crawls(
        b, [t + timedelta(minutes=20) for t in times], [(0, 0), (5, 2), (30, 30), (8, 1)], tag="b"
    )
    push(queue_redis, *sorted(crawls, key=lambda c: c.crawled_at))
    assert definitions.resolve_job_def("ingest_results_job").execute_in_process(instance=instance).success
    days = sorted({t.astimezone(JST).date() for t in times})
    monday = week_start(days[0])
    for job, key in [*(("daily_rollup_job", day.isoformat()) for day in days), ("weekly_rollup_job", monday.isoformat())]:
        run = definitions.resolve_job_def(job).execute_in_process(partition_key=key, instance=instance)
        assert run.success
        assert all(check_results(run).values()), (key, check_results(run))
    return (a, b), days, monday


def _hourly_totals(engine, start: datetime, end: datetime, ip: int | None = None) -> tuple[int, int]:
    """The hourly rows' (inflow, outflow) in [start, end): every IP's, or ``ip``'s."""
    where = [ip_stats_hourly.c.hour_bucket >= start, ip_stats_hourly.c.hour_bucket < end]
    if ip is not None:
        where.append(ip_stats_hourly.c.ip_id == ip)
    with engine.connect() as connection:
        return tuple(int(total) for total in connection.execute(
            sa.select(sa.func.sum(ip_stats_hourly.c.inflow), sa.func.sum(ip_stats_hourly.c.outflow)).where(*where)
        ).one())


def _jst_midnight(day) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=JST).astimezone(UTC)


def _in_out(totals: tuple[int, int]) -> str:
    return f"{totals[0]} in / {totals[1]} out"


def _matching(totals: tuple[int, int]) -> dict:
    """The metadata of a passing rollup check whose pooled totals are ``totals``."""
    return {"rollup": _in_out(totals), "hourly": _in_out(totals), "mismatched_ips": 0, "mismatches": []}


def _mismatch(ip: int, name: str, rollup: str, hourly: str) -> dict:
    return {"id": ip, "name": name, "rollup": rollup, "hourly": hourly}


def test_daily_totals_match_hours_fails_on_a_day_that_differs_from_its_hours(
    definitions, instance, mysql_engine, rolled_up
):
    (a, _b), days, _monday = rolled_up
    tuesday, wednesday = days
    start, end = _jst_midnight(tuesday), _jst_midnight(wednesday)
    inflow, outflow = _hourly_totals(mysql_engine, start, end)
    good = run_check(definitions, instance, DAILY_TOTALS_MATCH_HOURS, tuesday.isoformat())
    assert good.passed
    assert metadata(good) == _matching((inflow, outflow))

    # One IP's day total is off by a sale.
    a_in, a_out = _hourly_totals(mysql_engine, start, end, a)
    day_row = ip_stats_daily.update().where(ip_stats_daily.c.ip_id == a, ip_stats_daily.c.date_bucket == tuesday)
    execute(mysql_engine, day_row.values(total_outflow=ip_stats_daily.c.total_outflow + 1))
    bad = run_check(definitions, instance, DAILY_TOTALS_MATCH_HOURS, tuesday.isoformat())
    assert bad.passed is False
    assert metadata(bad) == {
        "rollup": _in_out((inflow, outflow + 1)),
        "hourly": _in_out((inflow, outflow)),
        "mismatched_ips": 1,
        "mismatches": [_mismatch(a, "鬼滅の刃", _in_out((a_in, a_out + 1)), _in_out((a_in, a_out)))],
    }

    # Wednesday's rollup is stale: a late crawl revised one of its hours after it ran.
    assert run_check(definitions, instance, DAILY_TOTALS_MATCH_HOURS, wednesday.isoformat()).passed
    hour = ip_stats_hourly.update().where(ip_stats_hourly.c.ip_id == a, ip_stats_hourly.c.hour_bucket == end)
    execute(mysql_engine, hour.values(inflow=ip_stats_hourly.c.inflow + 5))
    stale = run_check(definitions, instance, DAILY_TOTALS_MATCH_HOURS, wednesday.isoformat())
    assert stale.passed is False
    w_inflow, w_outflow = _hourly_totals(mysql_engine, end, end + timedelta(days=1))
    wa_in, wa_out = _hourly_totals(mysql_engine, end, end + timedelta(days=1), a)
    assert metadata(stale) == {
        "rollup": _in_out((w_inflow - 5, w_outflow)),
        "hourly": _in_out((w_inflow, w_outflow)),
        "mismatched_ips": 1,
        "mismatches": [_mismatch(a, "鬼滅の刃", _in_out((wa_in - 5, wa_out)), _in_out((wa_in, wa_out)))],
    }


def test_daily_totals_match_hours_fails_on_a_day_that_lost_an_ip(definitions, instance, mysql_engine, rolled_up):
    (_a, b), days, _monday = rolled_up
    tuesday = days[0]
    inflow, outflow = _hourly_totals(mysql_engine, _jst_midnight(tuesday), _jst_midnight(days[1]))
    assert run_check(definitions, instance, DAILY_TOTALS_MATCH_HOURS, tuesday.isoformat()).passed
    day_row = ip_stats_daily.select().where(ip_stats_daily.c.ip_id == b, ip_stats_daily.c.date_bucket == tuesday)
    with mysql_engine.connect() as connection:
        lost = connection.execute(day_row).one()
    assert lost.total_inflow or lost.total_outflow, "the lost row must carry figures for the totals to show it"

    # The rollup wrote one IP's day and not the other's.
    execute(mysql_engine, ip_stats_daily.delete().where(ip_stats_daily.c.id == lost.id))
    bad = run_check(definitions, instance, DAILY_TOTALS_MATCH_HOURS, tuesday.isoformat())
    assert bad.passed is False
    assert metadata(bad) == {
        "rollup": _in_out((inflow - lost.total_inflow, outflow - lost.total_outflow)),
        "hourly": _in_out((inflow, outflow)),
        "mismatched_ips": 1,
        "mismatches": [_mismatch(b, "ちいかわ", "no row", _in_out((lost.total_inflow, lost.total_outflow)))],
    }


def _swap_totals(engine, table: sa.Table, bucket: sa.Column, key, a: int, b: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Swap the totals of ``a``'s and ``b``'s rows of the bucket ``key``; returns their totals before."""
    with engine.begin() as connection:
        rows = {
            row.ip_id: (row.total_inflow, row.total_outflow)
            for row in connection.execute(sa.select(table).where(bucket == key, table.c.ip_id.in_([a, b])))
        }
        assert rows[a] != rows[b], "the swap must move figures"
        for ip, other in ((a, b), (b, a)):
            changed = connection.execute(
                table.update().where(table.c.ip_id == ip, bucket == key)
                .values(total_inflow=rows[other][0], total_outflow=rows[other][1])
            )
            assert changed.rowcount == 1
    return rows[a], rows[b]


@pytest.mark.parametrize(
    ("check", "table", "bucket"),
    [
        (DAILY_TOTALS_MATCH_HOURS, ip_stats_daily, ip_stats_daily.c.date_bucket),
        (WEEKLY_TOTALS_MATCH_HOURS, ip_stats_weekly, ip_stats_weekly.c.week_start),
    ],
    ids=["daily", "weekly"],
)
def test_totals_match_hours_fails_on_figures_swapped_between_two_ips(
    definitions, instance, mysql_engine, rolled_up, check, table, bucket
):
    (a, b), days, monday = rolled_up
    key = days[0] if check == DAILY_TOTALS_MATCH_HOURS else monday
    assert run_check(definitions, instance, check, key.isoformat()).passed

    # Two IPs' rows carry each other's figures: the totals pooled over both still add up.
    a_totals, b_totals = _swap_totals(mysql_engine, table, bucket, key, a, b)
    bad = run_check(definitions, instance, check, key.isoformat())
    assert bad.passed is False
    pooled = (a_totals[0] + b_totals[0], a_totals[1] + b_totals[1])
    assert metadata(bad) == {
        "rollup": _in_out(pooled),
        "hourly": _in_out(pooled),
        "mismatched_ips": 2,
        "mismatches": [
            _mismatch(a, "鬼滅の刃", _in_out(b_totals), _in_out(a_totals)),
            _mismatch(b, "ちいかわ", _in_out(a_totals), _in_out(b_totals)),
        ],
    }


def test_weekly_totals_match_hours_fails_on_a_week_that_differs_from_its_hours(
    definitions, instance, mysql_engine, rolled_up
):
    (a, _b), _days, monday = rolled_up
    start = _jst_midnight(monday)
    inflow, outflow = _hourly_totals(mysql_engine, start, start + timedelta(days=7))
    a_in, a_out = _hourly_totals(mysql_engine, start, start + timedelta(days=7), a)
    good = run_check(definitions, instance, WEEKLY_TOTALS_MATCH_HOURS, monday.isoformat())
    assert good.passed
    assert metadata(good) == _matching((inflow, outflow))

    # One IP's week lost a new listing.
    week_row = ip_stats_weekly.update().where(ip_stats_weekly.c.ip_id == a, ip_stats_weekly.c.week_start == monday)
    execute(mysql_engine, week_row.values(total_inflow=ip_stats_weekly.c.total_inflow - 1))
    bad = run_check(definitions, instance, WEEKLY_TOTALS_MATCH_HOURS, monday.isoformat())
    assert bad.passed is False
    assert metadata(bad) == {
        "rollup": _in_out((inflow - 1, outflow)),
        "hourly": _in_out((inflow, outflow)),
        "mismatched_ips": 1,
        "mismatches": [_mismatch(a, "鬼滅の刃", _in_out((a_in - 1, a_out)), _in_out((a_in, a_out)))],
    }
