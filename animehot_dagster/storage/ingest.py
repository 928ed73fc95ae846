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
from animehot_dagster.domain.catalog import IpStatus
from animehot_dagster.domain.estimator import HOUR, LOOKBACK, CountedCrawl, sales_between, visible_share
from animehot_dagster.domain.items import (
    Availability,
    CrawlOutcome,
    ItemState,
    ItemTTL,
    collapse_reports,
    observe_crawl,
)
from animehot_dagster.domain.messages import NO_ITEMS, CrawlResponse
from animehot_dagster.domain.pages import PAGE_SIZE
from animehot_dagster.domain.timebuckets import from_unix, hour_bucket
from animehot_dagster.storage.alerts import write_alerts
from animehot_dagster.storage.db import insert_many, upsert
from animehot_dagster.storage.schema import crawl_log, ip_metadata, item_events, item_snapshots, listings_seen
from animehot_dagster.storage.stats import COUNTED_CRAWL, HourFigures, recompute_hour

log = logging.getLogger(__name__)

_IN_LIST_CHUNK = 5_000
_MINUTE = timedelta(minutes=1)
# A crawl changes the event-time figures of the hours between its neighbouring crawls; after an
# outage of the crawlers that can be many, but never more than this.
_MAX_HOURS_TOUCHED = 7 * 24
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
    # Every hour whose figures this result recomputed (the crawl's own hour among them): an
    # event-time result can revise several (SPEC §4.1).
    hours: tuple[HourFigures, ...] = ()


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
    counted = response.has_counts and not response.failed
    if response.failed:
        outcome = CrawlOutcome(baseline=False, observations=())
    else:
        outcome = _observe(connection, response, crawled_at, config.ttl)
    event_time = _event_time_counts(connection, response, crawled_at, outcome.sold_count) if counted else None
    baseline = outcome.baseline if event_time is None else event_time.baseline
    inflow, outflow = (outcome.inflow, outcome.outflow) if event_time is None else (event_time.inflow, event_time.outflow)
    decision = decide(
        config.cadence,
        config.cadence.current_interval(ip.weight, ip.crawl_interval_minutes),
        inflow,
        outflow,
        crawled_at,
        now,
        measured=not (response.failed or baseline),
    )
    weight = ip.weight if decision.weight is None else decision.weight
    connection.execute(
        crawl_log.insert().values(
            _crawl_log_row(response, outcome, decision, weight, crawled_at, hour, now)
            | {"baseline": baseline, "inflow": inflow, "outflow": outflow}
            | ({} if event_time is None else event_time.log_columns())
        )
    )
    figures, raised, recomputed = None, (), ()
    if not response.failed:
        _write_items(connection, response, outcome, hour)
        if event_time is not None:
            insert_many(connection, listings_seen, event_time.listing_rows(response.ip_id))
        hours = [hour] if event_time is None else event_time.hours_touched(hour)
        recomputed = tuple(f for h in hours if (f := recompute_hour(connection, response.ip_id, h, now)) is not None)
        alerts_raised = []
        for hour_figures in recomputed:
            alerts = evaluate(hour_figures.inflow, hour_figures.outflow, hour_figures.liquidity_index, config.thresholds)
            write_alerts(connection, response.ip_id, hour_figures.hour_bucket, alerts, now)
            alerts_raised.extend(a.alert_type.value for a in alerts if hour_figures.hour_bucket == hour)
        figures = next((f for f in recomputed if f.hour_bucket == hour), None)
        raised = tuple(alerts_raised)
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
        baseline=baseline,
        inflow=inflow,
        outflow=outflow,
        items=len(outcome.observations),
        interval=decision.interval,
        weight=float(weight),
        next_crawl_at=decision.next_crawl_at,
        ip_active=ip.status == IpStatus.ACTIVE,
        alerts=raised,
        hour=figures,
        hours=recomputed,
    )


@dataclasses.dataclass(frozen=True)
class _EventTimeCounts:
    """What a counted crawl adds to the event-time facts, and its own counts for the cadence."""

    crawled_at: datetime
    found_on_sale: int
    found_sold: int
    served_sold: int
    on_sale_boundary: datetime | None
    visible_share: float
    new_listings: tuple[tuple[str, datetime], ...]  # (source id, created) not seen before
    previous: CountedCrawl | None
    following: datetime | None

    @property
    def baseline(self) -> bool:
        return self.previous is None

    @property
    def inflow(self) -> int:
        return 0 if self.baseline else len(self.new_listings)

    @property
    def outflow(self) -> int:
        if self.previous is None:
            return 0
        current = CountedCrawl(self.crawled_at, self.found_on_sale, self.found_sold, served_sold=self.served_sold)
        return sales_between(self.previous, current)

    def log_columns(self) -> dict:
        return {
            "found_on_sale": self.found_on_sale,
            "found_sold": self.found_sold,
            "on_sale_boundary": self.on_sale_boundary,
            "visible_share": Decimal(f"{self.visible_share:.4f}"),
        }

    def listing_rows(self, ip_id: int) -> list[dict]:
        return [{"ip_id": ip_id, "source_id": source_id, "listed_at": created} for source_id, created in self.new_listings]

    def hours_touched(self, own_hour: datetime) -> list[datetime]:
        """From the earliest hour its new listings or its sales reach to the hour of the crawl
        after it (whose sales it splits), at most a week."""
        moments = [self.crawled_at, *(created for _, created in self.new_listings)]
        if self.previous is not None:
            moments.append(self.previous.crawled_at)
        last = hour_bucket(self.following) if self.following is not None else own_hour
        first = max(hour_bucket(min(moments)), last - _MAX_HOURS_TOUCHED * HOUR)
        return [first + i * HOUR for i in range(int((last - first) / HOUR) + 1)]


def _event_time_counts(
    connection: Connection, response: CrawlResponse, crawled_at: datetime, served_sold: int
) -> _EventTimeCounts:
    recent = {
        item.source_id: from_unix(item.created)
        for item in response.items
        if item.source_id and item.created and crawled_at - LOOKBACK <= from_unix(item.created) <= crawled_at + _MINUTE
    }
    known = _listings_known(connection, response.ip_id, list(recent))
    of_ip = sa.and_(crawl_log.c.ip_id == response.ip_id, COUNTED_CRAWL)
    previous = connection.execute(
        sa.select(crawl_log.c.crawled_at, crawl_log.c.found_on_sale, crawl_log.c.found_sold, crawl_log.c.sold_count)
        .where(of_ip, crawl_log.c.crawled_at < crawled_at)
        .order_by(crawl_log.c.crawled_at.desc())
        .limit(1)
    ).one_or_none()
    following = connection.execute(
        sa.select(sa.func.min(crawl_log.c.crawled_at)).where(of_ip, crawl_log.c.crawled_at > crawled_at)
    ).scalar_one()
    return _EventTimeCounts(
        crawled_at=crawled_at,
        found_on_sale=response.found_on_sale,
        found_sold=response.found_sold,
        served_sold=served_sold,
        on_sale_boundary=_on_sale_boundary(response) if response.on_sale_more else None,
        visible_share=_visible_share(response),
        new_listings=tuple(sorted((s, c) for s, c in recent.items() if s not in known)),
        previous=None if previous is None else CountedCrawl(
            previous.crawled_at, previous.found_on_sale, previous.found_sold, served_sold=previous.sold_count
        ),
        following=following,
    )


def _visible_share(response: CrawlResponse) -> float:
    sold = sum(1 for item in response.items if item.is_sold)
    return visible_share(
        sold, response.found_sold, len(response.items) - sold, response.found_on_sale, response.on_sale_more, PAGE_SIZE
    )


def _on_sale_boundary(response: CrawlResponse) -> datetime | None:
    """Where the on-sale window ended in the search's order: the search sorts a listing by its
    last edit when newer than its creation, so every listing created after the oldest such
    moment in the window was in it."""
    moments = [max(item.created, item.updated) for item in response.items if not item.is_sold and item.created]
    return from_unix(min(moments)) if moments else None


def _listings_known(connection: Connection, ip_id: int, source_ids: list[str]) -> set[str]:
    known: set[str] = set()
    for start in range(0, len(source_ids), _IN_LIST_CHUNK):
        known.update(
            connection.execute(
                sa.select(listings_seen.c.source_id).where(
                    listings_seen.c.ip_id == ip_id,
                    listings_seen.c.source_id.in_(source_ids[start : start + _IN_LIST_CHUNK]),
                )
            ).scalars()
        )
    return known


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
        ip_active=ip_status == IpStatus.ACTIVE,
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
