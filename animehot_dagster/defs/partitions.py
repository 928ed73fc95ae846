"""Every partitions definition of the project, in one place.

The crawl chain is IP × hour. Dagster advises at most ~100k partitions per asset and IP × hour
passes that within weeks, so the hour dimension is a rolling window of PARTITION_RETENTION_DAYS
whose start is computed when the code location loads.
"""

from datetime import UTC, datetime, timedelta

import dagster as dg

from animehot_dagster.domain.estimator import LOOKBACK
from animehot_dagster.domain.timebuckets import JST, week_start
from animehot_dagster.settings import process_settings

TIMEZONE = "Asia/Tokyo"
HOUR_FORMAT = "%Y-%m-%d-%H:%M"
IP_DIMENSION = "ip"
HOUR_DIMENSION = "hour"


def window_start(retention_days: int, now: datetime | None = None) -> datetime:
    """Japan-time midnight ``retention_days`` before ``now``."""
    today = (now or datetime.now(UTC)).astimezone(JST).date()
    return datetime.combine(today - timedelta(days=retention_days), datetime.min.time(), JST)


_START = window_start(process_settings().partition_retention_days)

ip_partitions = dg.DynamicPartitionsDefinition(name=IP_DIMENSION)
# end_offset=1: the hour in progress is a partition too — results crawled now land in it, and
# "materialize the current hour" crawls now.
hour_partitions = dg.HourlyPartitionsDefinition(
    start_date=_START.strftime(HOUR_FORMAT), timezone=TIMEZONE, fmt=HOUR_FORMAT, end_offset=1
)
crawl_partitions = dg.MultiPartitionsDefinition({IP_DIMENSION: ip_partitions, HOUR_DIMENSION: hour_partitions})
day_partitions = dg.DailyPartitionsDefinition(start_date=_START.strftime("%Y-%m-%d"), timezone=TIMEZONE)
week_partitions = dg.WeeklyPartitionsDefinition(
    start_date=week_start(_START.date()).strftime("%Y-%m-%d"), timezone=TIMEZONE, day_offset=1
)


# The figures of an hour come from the crawls around it (SPEC §4.1): the crawl before it (the
# sold count its sales start from, one cadence interval back at most) and the crawls up to the
# estimator's look-back after it, which still count listings created in it. Declared, so the UI
# shows which figure hours a late crawl made stale, and backfills take the crawls they need.
FIGURE_HOURS_FROM_CRAWLS = dg.MultiPartitionMapping(
    {
        IP_DIMENSION: dg.DimensionPartitionMapping(IP_DIMENSION, dg.IdentityPartitionMapping()),
        HOUR_DIMENSION: dg.DimensionPartitionMapping(
            HOUR_DIMENSION,
            dg.TimeWindowPartitionMapping(
                start_offset=-2, end_offset=int(LOOKBACK / timedelta(hours=1)), allow_nonexistent_upstream_partitions=True
            ),
        ),
    }
)


def crawl_partition_key(ip_id: int, hour_bucket: datetime) -> dg.MultiPartitionKey:
    """The (ip, hour) partition of a crawl whose hour bucket (UTC) is ``hour_bucket``."""
    return dg.MultiPartitionKey(
        {IP_DIMENSION: str(ip_id), HOUR_DIMENSION: hour_bucket.astimezone(JST).strftime(HOUR_FORMAT)}
    )


def parse_crawl_partition(key: str | dg.MultiPartitionKey) -> tuple[int, datetime]:
    """(ip id, hour bucket in UTC) of a crawl-chain partition key."""
    dimensions = key.keys_by_dimension if isinstance(key, dg.MultiPartitionKey) else dict(
        zip(sorted((IP_DIMENSION, HOUR_DIMENSION)), key.split("|"), strict=True)
    )
    hour = datetime.strptime(dimensions[HOUR_DIMENSION], HOUR_FORMAT).replace(tzinfo=JST)
    return int(dimensions[IP_DIMENSION]), hour.astimezone(UTC)


def crawl_partition_exists(instance: dg.DagsterInstance, key: dg.MultiPartitionKey) -> bool:
    """Whether the (ip, hour) partition exists now: the IP is among the ``ip`` partitions (it is
    active) and the hour is inside the rolling window."""
    dimensions = key.keys_by_dimension
    return instance.has_dynamic_partition(IP_DIMENSION, dimensions[IP_DIMENSION]) and (
        hour_partitions.has_partition_key(dimensions[HOUR_DIMENSION])
    )
