"""Shared pieces of the Dagster tests: the test services' environment, helpers that evaluate
sensors and read runs the way the daemon and the UI would, and the time and data helpers.

The fixtures (the code location loaded against the test services, a real Dagster instance, the
hour every ``past_hour`` counts from) are in ``conftest.py`` next to this module.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta

import dagster as dg
import redis
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from animehot_dagster.defs.partitions import crawl_partition_key
from animehot_dagster.domain.messages import CrawlResponse
from animehot_dagster.domain.timebuckets import JST, hour_bucket
from animehot_dagster.queue.reliable import ResultQueue
from animehot_dagster_tests.conftest import REDIS_URL
from animehot_dagster_tests.factories import on_sale, response, sold

IP_PARTITIONS = "ip"
CRAWL_CHAIN = ("mercari_crawl", "hourly_liquidity", "liquidity_alerts")

# What the code location reads from the environment in these tests: the test services, and
# timeouts short enough to watch them expire.
TEST_ENV = {
    "REDIS_URL": REDIS_URL,
    "JANITOR_TIMEOUT": "5s",
    "BROWSER_TASK_TIMEOUT": "20s",
    "AUTO_MIGRATE": "true",
}


# -- time ---------------------------------------------------------------------------------------


_ANCHOR: dict[str, datetime] = {}


@contextlib.contextmanager
def anchored_hour() -> Iterator[datetime]:
    """The current hour, fixed while the block runs: every ``past_hour`` inside counts from it, so
    that a test running across the turn of an hour stays consistent."""
    _ANCHOR["hour"] = hour_bucket(datetime.now(UTC))
    try:
        yield _ANCHOR["hour"]
    finally:
        _ANCHOR.clear()


def past_hour(hours_ago: int, minute: int = 5) -> datetime:
    """``minute`` past the start of the Japan-time hour ``hours_ago`` hours before the current one
    (UTC). Past hours are complete: their partitions exist."""
    anchor = _ANCHOR.get("hour") or hour_bucket(datetime.now(UTC))
    return anchor - timedelta(hours=hours_ago) + timedelta(minutes=minute)


def current_hour(margin_seconds: float = 15) -> datetime:
    """The start of the current hour (UTC), first waiting out the hour's last ``margin_seconds`` so
    that the hour does not turn while a test relies on it being current."""
    now = datetime.now(UTC)
    left = (hour_bucket(now) + timedelta(hours=1) - now).total_seconds()
    if left < margin_seconds:
        time.sleep(left + 0.5)
    return hour_bucket(datetime.now(UTC))


def last_complete_week_monday() -> datetime:
    """Midnight (Japan time, as a UTC instant) of the Monday of the last complete Monday week."""
    today = datetime.now(UTC).astimezone(JST).date()
    monday = today - timedelta(days=today.weekday() + 7)
    return datetime(monday.year, monday.month, monday.day, tzinfo=JST).astimezone(UTC)


def partition_key(ip_id: int, at: datetime) -> str:
    return str(crawl_partition_key(ip_id, hour_bucket(at)))


# -- Dagster helpers ----------------------------------------------------------------------------


def add_ip_partitions(instance: dg.DagsterInstance, ip_ids: Iterable[int]) -> None:
    instance.add_dynamic_partitions(IP_PARTITIONS, [str(i) for i in ip_ids])


def apply_partition_requests(instance: dg.DagsterInstance, requests: Iterable) -> None:
    """Apply a sensor's dynamic partition requests the way the sensor daemon does."""
    for request in requests:
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        elif isinstance(request, dg.DeleteDynamicPartitionsRequest):
            for key in request.partition_keys:
                instance.delete_dynamic_partition(request.partitions_def_name, key)
        else:  # pragma: no cover - Dagster has no other kind
            raise TypeError(request)


def tick(
    definitions: dg.Definitions,
    sensor_name: str,
    instance: dg.DagsterInstance,
    resources: Mapping[str, object],
    cursor: str | None = None,
):
    """Evaluate one sensor tick as the daemon does: against the repository (so that partitioned
    run requests are resolved and validated) and a persistent instance (its dynamic partitions)."""
    sensor = definitions.resolve_sensor_def(sensor_name)
    with dg.build_sensor_context(
        instance=instance,
        instance_ref=instance.get_ref(),
        cursor=cursor,
        repository_def=definitions.get_repository_def(),
        resources=dict(resources),
    ) as context:
        return sensor.evaluate_tick(context)


def materializations(result) -> dict[tuple[str, str | None], dict]:
    """{(asset, partition): metadata} of an in-process run's materializations."""
    found = {}
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        metadata = {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
        found[(materialization.asset_key.to_user_string(), materialization.partition)] = metadata
    return found


def check_results(result) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def step_failure_messages(result) -> list[str]:
    return [e.step_failure_data.error.message for e in result.all_events if e.event_type_value == "STEP_FAILURE"]


def materialized_partitions(instance: dg.DagsterInstance, asset: str) -> set[str]:
    return set(instance.get_materialized_partitions(dg.AssetKey(asset)))


# -- queue and database helpers ----------------------------------------------------------------


def _price(source_id: str) -> int:
    return 500 + sum(map(ord, source_id)) % 4_000


def market_crawls(ip_id: int, times: list[datetime], moves: list[tuple[int, int]], tag: str, start: int = 100):
    """Successive crawls of one IP's market: the first is the baseline of ``start`` listings; each
    later crawl lists ``new`` items and sells ``sold`` of the oldest listings (``moves[k]``)."""
    on_sale_ids = [f"{tag}{i}" for i in range(start)]
    sold_ids: list[str] = []
    next_id = start
    crawls = []
    for k, (at, (new, sells)) in enumerate(zip(times, moves, strict=True)):
        if k:
            sold_ids += on_sale_ids[:sells]
            on_sale_ids = on_sale_ids[sells:] + [f"{tag}{next_id + j}" for j in range(new)]
            next_id += new
        items = [on_sale(i, _price(i)) for i in on_sale_ids] + [sold(i, _price(i)) for i in sold_ids]
        crawls.append(response(ip_id, at, items, task_id=f"{tag}-{k}", crawler_node="node-1"))
    return crawls


def push(client: redis.Redis, *responses: CrawlResponse) -> None:
    """Results as crawler nodes deliver them, oldest first."""
    results = ResultQueue(client)
    for message in responses:
        results.push(message)


def table_rows(
    engine: Engine, table: sa.Table, exclude: Iterable[str] = ("updated_at",), order: Iterable[str] = ("ip_id",)
) -> list[dict]:
    """Every row of ``table`` without the ``exclude`` columns, ordered by ``order`` and then by
    every other column, so that two snapshots compare row by row."""
    excluded = set(exclude)
    columns = [c for c in table.c if c.name not in excluded]
    with engine.connect() as connection:
        rows = [dict(row) for row in connection.execute(sa.select(*columns)).mappings()]
    order = list(order)
    return sorted(rows, key=lambda row: ([row[name] for name in order], repr(sorted(row.items(), key=str))))
