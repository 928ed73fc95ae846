"""The assets go by the clock resource: with the clock moved, the figures and rollups they write
carry the moved time (as an operator replaying a day, or a test, would set it), not the wall
clock's."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import dagster as dg
import sqlalchemy as sa

from animehot_dagster.defs.liquidity import hourly_liquidity
from animehot_dagster.defs.resources import ClockResource
from animehot_dagster.defs.rollups import daily_liquidity
from animehot_dagster.domain.timebuckets import hour_bucket, jst_date
from animehot_dagster.storage.schema import ip_stats_daily, ip_stats_hourly
from animehot_dagster_tests.defs import add_ip_partitions, market_crawls, partition_key, past_hour, push
from animehot_dagster_tests.factories import make_ips

SHIFT = timedelta(days=3, hours=5)


def _updated_at(engine, table: sa.Table, *where) -> datetime:
    with engine.connect() as connection:
        return connection.execute(sa.select(table.c.updated_at).where(*where)).scalar_one()


def test_figures_and_rollups_are_stamped_by_the_clock_resource(definitions, instance, resources, mysql_engine, queue_redis):
    (ip,) = make_ips(mysql_engine, "葬送のフリーレン")
    add_ip_partitions(instance, [ip])
    times = [past_hour(27), past_hour(26)]  # over a day ago: its Japan day is complete, a partition
    push(queue_redis, *market_crawls(ip, times, [(0, 0), (12, 4)], tag="clock"))
    assert definitions.resolve_job_def("ingest_results_job").execute_in_process(instance=instance).success
    hour = hour_bucket(times[1])

    shifted = {**resources, "clock": ClockResource(shift_seconds=-SHIFT.total_seconds())}
    expected = datetime.now(UTC) - SHIFT
    result = dg.materialize([hourly_liquidity], partition_key=partition_key(ip, times[1]), resources=shifted,
                            instance=instance)
    assert result.success
    stamped = _updated_at(mysql_engine, ip_stats_hourly, ip_stats_hourly.c.ip_id == ip, ip_stats_hourly.c.hour_bucket == hour)
    assert abs(stamped - expected) < timedelta(minutes=1), (stamped, expected)

    day = jst_date(times[1])
    result = dg.materialize([daily_liquidity], partition_key=day.isoformat(), resources=shifted, instance=instance)
    assert result.success
    stamped = _updated_at(mysql_engine, ip_stats_daily, ip_stats_daily.c.ip_id == ip, ip_stats_daily.c.date_bucket == day)
    assert abs(stamped - expected) < timedelta(minutes=1), (stamped, expected)

    # Unshifted, the same assets stamp the wall clock's time.
    result = dg.materialize([hourly_liquidity], partition_key=partition_key(ip, times[1]), resources=resources,
                            instance=instance)
    assert result.success
    stamped = _updated_at(mysql_engine, ip_stats_hourly, ip_stats_hourly.c.ip_id == ip, ip_stats_hourly.c.hour_bucket == hour)
    assert abs(stamped - datetime.fromtimestamp(time.time(), UTC)) < timedelta(minutes=1)
