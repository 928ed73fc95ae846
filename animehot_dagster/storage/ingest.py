"""Apply one CrawlResponse to the database, exactly once (SPEC §4, §5, §7).

One transaction per result. It starts by locking the IP's row, so results of one IP apply one
at a time in every process, and then looks the task id up in the crawl log: a result that is
already there changes nothing. A crash anywhere before the commit leaves nothing behind, so a
retry applies the result as if for the first time.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from animehot_dagster.domain.alerts import AlertThresholds, evaluate
from animehot_dagster.domain.cadence import CadenceDecision, CadencePolicy, decide
from animehot_dagster.domain.items import (
    Availability,
    CrawlOutcome,
    ItemState,
    ItemTTL,
    collapse_reports,
    observe_crawl,
)
from animehot_dagster.domain.messages import NO_ITEMS, CrawlResponse
from animehot_dagster.domain.timebuckets import from_unix, hour_bucket
from animehot_dagster.storage.alerts import write_alerts
from animehot_dagster.storage.db import insert_many, upsert
from animehot_dagster.storage.schema import crawl_log, ip_metadata, item_events, item_snapshots
from animehot_dagster.storage.stats import HourFigures, recompute_hour

log = logging.getLogger(__name__)

_IN_LIST_CHUNK = 5_000
_MINUTE = timedelta(minutes=1)
_SNAPSHOT_UPDATES = ("title", "price", "status", "image_url", "item_url", "first_seen_at", "last_seen_at", "sold_at")


class UnknownIpError(LookupError):
    """The result names an IP the catalog does not hold; retrying cannot help."""


@dataclasses.dataclass(frozen=True)
class IngestConfig:
    cadence: CadencePolicy = CadencePolicy()
    ttl: ItemTTL = ItemTTL()
    thresholds: AlertThresholds = AlertThresholds()

    @classmethod
    def from_settings(cls, settings) -> IngestConfig:
        return cls(cadence=settings.cadence, ttl=settings.item_ttl, thresholds=settings.alert_thresholds)


@dataclasses.dataclass(frozen=True)
class IngestResult:
    task_id: str
    ip_id: int
    hour_bucket: datetime
    applied: bool  # False when the task had been applied before: nothing changed this time
    failed: bool  # the crawl reported an error: logged, no state changed
    baseline: bool
    inflow: int
    outflow: int
    items: int
    interval: timedelta
    weight: float
    next_crawl_at: datetime
    ip_active: bool  # paused and deleted IPs leave the schedule
    alerts: tuple[str, ...] = ()
    hour: HourFigures | None = None
    duration_seconds: float = 0.0


def apply(engine: Engine, response: CrawlResponse, config: IngestConfig, now: datetime | None = None) -> IngestResult:
    """Apply ``response`` once; ``now`` (the processing time) only decides whether the next
    crawl is already due. Raises :class:`UnknownIpError` for an IP that does not exist."""
    now = now or datetime.now(UTC)
    started = time.perf_counter()
    with engine.begin() as connection:
        result = _apply(connection, response, config, now)
    result = dataclasses.replace(result, duration_seconds=time.perf_counter() - started)
    log.info(
        "task processed" if result.applied else "task already applied",
        extra={
            "task_id": result.task_id,
            "ip_id": result.ip_id,
            "inflow": result.inflow,
            "outflow": result.outflow,
            "baseline": result.baseline,
            "failed": result.failed,
        },
    )
    return result


def _apply(connection: Connection, response: CrawlResponse, config: IngestConfig, now: datetime) -> IngestResult:
    ip = connection.execute(
        sa.select(
            ip_metadata.c.weight,
            ip_metadata.c.crawl_interval_minutes,
            ip_metadata.c.status,
            ip_metadata.c.last_crawled_at,
        )
        .where(ip_metadata.c.id == response.ip_id)
        .with_for_update()
    ).one_or_none()
    if ip is None:
        raise UnknownIpError(f"ip_id {response.ip_id} is not in the catalog (task {response.task_id})")
    previous = connection.execute(sa.select(crawl_log).where(crawl_log.c.task_id == response.task_id)).one_or_none()
    if previous is not None:
        return _already_applied(previous, ip.status)

    crawled_at = from_unix(response.crawled_at)
    hour = hour_bucket(crawled_at)
    if response.failed:
        outcome = CrawlOutcome(baseline=False, observations=())
    else:
        outcome = _observe(connection, response, crawled_at, config.ttl)
    decision = decide(
        config.cadence,
        config.cadence.current_interval(ip.weight, ip.crawl_interval_minutes),
        outcome.inflow,
        outcome.outflow,
        crawled_at,
        now,
        measured=not (response.failed or outcome.baseline),
    )
    weight = ip.weight if decision.weight is None else decision.weight
    connection.execute(
        crawl_log.insert().values(_crawl_log_row(response, outcome, decision, weight, crawled_at, hour, now))
    )
    figures, raised = None, ()
    if not response.failed:
        _write_items(connection, response, outcome, hour)
        figures = recompute_hour(connection, response.ip_id, hour, now)
        alerts = evaluate(figures.inflow, figures.outflow, figures.liquidity_index, config.thresholds)
        write_alerts(connection, response.ip_id, hour, alerts, now)
        raised = tuple(a.alert_type.value for a in alerts)
    if not response.failed:
        # A failed crawl saw nothing: the IP is no fresher for it.
        catalog_update = {"last_crawled_at": max(filter(None, (ip.last_crawled_at, crawled_at)))}
        if decision.weight is not None:
            catalog_update |= {"weight": decision.weight, "crawl_interval_minutes": decision.interval // _MINUTE}
        connection.execute(ip_metadata.update().where(ip_metadata.c.id == response.ip_id).values(**catalog_update))
    return IngestResult(
        task_id=response.task_id,
        ip_id=response.ip_id,
        hour_bucket=hour,
        applied=True,
        failed=response.failed,
        baseline=outcome.baseline,
        inflow=outcome.inflow,
        outflow=outcome.outflow,
        items=len(outcome.observations),
        interval=decision.interval,
        weight=float(weight),
        next_crawl_at=decision.next_crawl_at,
        ip_active=ip.status == "active",
        alerts=raised,
        hour=figures,
    )


def _already_applied(previous, ip_status: str) -> IngestResult:
    return IngestResult(
        task_id=previous.task_id,
        ip_id=previous.ip_id,
        hour_bucket=previous.hour_bucket,
        applied=False,
        failed=previous.error_message not in ("", NO_ITEMS),
        baseline=previous.baseline,
        inflow=previous.inflow,
        outflow=previous.outflow,
        items=previous.items_count,
        interval=timedelta(minutes=previous.interval_minutes),
        weight=float(previous.weight_after),
        next_crawl_at=previous.next_crawl_at,
        ip_active=ip_status == "active",
    )


def _observe(connection: Connection, response: CrawlResponse, crawled_at: datetime, ttl: ItemTTL) -> CrawlOutcome:
    reports = collapse_reports(response.items)
    known = _known_states(connection, response.ip_id, list(reports))
    any_reported_live = any(state.is_live(crawled_at, ttl) for state in known.values())
    other_live = not any_reported_live and _has_live_state(connection, response.ip_id, crawled_at, ttl)
    return observe_crawl(known, reports.values(), crawled_at, ttl, other_live)


def _known_states(connection: Connection, ip_id: int, source_ids: list[str]) -> dict[str, ItemState]:
    states: dict[str, ItemState] = {}
    for start in range(0, len(source_ids), _IN_LIST_CHUNK):
        rows = connection.execute(
            sa.select(
                item_snapshots.c.source_id,
                item_snapshots.c.status,
                item_snapshots.c.price,
                item_snapshots.c.first_seen_at,
                item_snapshots.c.last_seen_at,
                item_snapshots.c.sold_at,
            ).where(
                item_snapshots.c.ip_id == ip_id,
                item_snapshots.c.source_id.in_(source_ids[start : start + _IN_LIST_CHUNK]),
                item_snapshots.c.status.in_([a.value for a in Availability]),
            )
        )
        for source_id, status, price, first_seen, last_seen, sold_at in rows:
            states[source_id] = ItemState(Availability(status), price, first_seen, last_seen, sold_at)
    return states


def _has_live_state(connection: Connection, ip_id: int, at: datetime, ttl: ItemTTL) -> bool:
    live = sa.or_(
        sa.and_(item_snapshots.c.status == Availability.AVAILABLE.value, item_snapshots.c.last_seen_at >= at - ttl.available),
        sa.and_(item_snapshots.c.status == Availability.SOLD.value, item_snapshots.c.last_seen_at >= at - ttl.sold),
    )
    probe = sa.select(item_snapshots.c.id).where(item_snapshots.c.ip_id == ip_id, live).limit(1)
    return connection.execute(probe).first() is not None


def _write_items(connection: Connection, response: CrawlResponse, outcome: CrawlOutcome, hour: datetime) -> None:
    upsert(
        connection,
        item_snapshots,
        [
            {
                "ip_id": response.ip_id,
                "source_id": o.item.source_id,
                "title": o.item.title[:512],
                "price": o.item.price,
                "status": o.state.status.value,
                "image_url": o.item.image_url[:1024],
                "item_url": o.item.item_url[:1024],
                "first_seen_at": o.state.first_seen,
                "last_seen_at": o.state.last_seen,
                "sold_at": o.state.sold_at,
            }
            for o in outcome.observations
        ],
        update_columns=_SNAPSHOT_UPDATES,
        conflict_columns=("ip_id", "source_id"),
    )
    insert_many(connection, item_events, list(_event_rows(response, outcome.transitions, hour)))


def _event_rows(response: CrawlResponse, transitions: Iterable, hour: datetime) -> Iterable[dict]:
    for o in transitions:
        yield {
            "task_id": response.task_id,
            "ip_id": response.ip_id,
            "hour_bucket": hour,
            "source_id": o.item.source_id,
            "transition": o.transition.value,
            "price": o.item.price,
            "title": o.item.title[:512],
            "item_url": o.item.item_url[:1024],
            "image_url": o.item.image_url[:1024],
        }


def _crawl_log_row(
    response: CrawlResponse,
    outcome: CrawlOutcome,
    decision: CadenceDecision,
    weight: Decimal,
    crawled_at: datetime,
    hour: datetime,
    now: datetime,
) -> dict:
    return {
        "task_id": response.task_id,
        "ip_id": response.ip_id,
        "crawled_at": crawled_at,
        "hour_bucket": hour,
        "processed_at": now,
        "baseline": outcome.baseline,
        "error_message": response.error_message[:512],
        "items_count": len(outcome.observations),
        "on_sale_count": outcome.on_sale_count,
        "sold_count": outcome.sold_count,
        "inflow": outcome.inflow,
        "outflow": outcome.outflow,
        "total_found": response.total_found,
        "pages_crawled": response.pages_crawled,
        "retry_count": response.retry_count,
        "crawler_node": response.crawler_node[:128],
        "interval_minutes": decision.interval // _MINUTE,
        "weight_after": weight,
        "next_crawl_at": decision.next_crawl_at,
    }
