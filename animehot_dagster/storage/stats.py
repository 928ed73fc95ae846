"""An hour's figures, recomputed from the stored facts (crawl log, listings seen, item events).

Ingest calls this after every crawl and the ``hourly_liquidity`` asset calls it on
re-materialisation and backfill: both give the same row because both read the same facts.

An hour is computed by the event-time method (SPEC §4.1, :mod:`domain.estimator`) when its
crawls carry result counts, and by the item method of SPEC §4 (the counts of the crawls that
landed in it) when they do not, so results of the original nodes give the original figures.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from animehot_dagster.domain.estimator import HOUR, CountedCrawl, HourFacts, Quality, event_time_figures
from animehot_dagster.domain.items import OUTFLOW_TRANSITIONS
from animehot_dagster.domain.messages import NO_ITEMS
from animehot_dagster.domain.scores import PricedItem, PriceStats, liquidity_index, price_stats
from animehot_dagster.storage.db import upsert
from animehot_dagster.storage.schema import crawl_log, ip_stats_hourly, item_events, listings_seen

SUCCESSFUL_CRAWL = crawl_log.c.error_message.in_(["", NO_ITEMS])
COUNTED_CRAWL = sa.and_(SUCCESSFUL_CRAWL, crawl_log.c.found_sold.is_not(None), crawl_log.c.found_on_sale.is_not(None))
# The item method sees every event of an hour only while each phase of its crawls fits in one
# page (two pages in all); beyond that its window may have missed some.
_WHOLE_LIST_PAGES = 2


@dataclasses.dataclass(frozen=True)
class HourFigures:
    ip_id: int
    hour_bucket: datetime
    crawl_count: int
    inflow: int
    outflow: int
    liquidity_index: Decimal | None
    active_count: int
    prices: PriceStats
    quality: Quality = Quality.EXACT


def hour_figures(connection: Connection, ip_id: int, hour: datetime) -> HourFigures | None:
    """The figures of one (ip, hour) from its facts; None when nothing observed that hour."""
    in_hour = sa.and_(crawl_log.c.ip_id == ip_id, crawl_log.c.hour_bucket == hour, SUCCESSFUL_CRAWL)
    crawls, counted, inflow, outflow, widest = connection.execute(
        sa.select(
            sa.func.count(),
            sa.func.count(crawl_log.c.found_sold),
            sa.func.coalesce(sa.func.sum(crawl_log.c.inflow), 0),
            sa.func.coalesce(sa.func.sum(crawl_log.c.outflow), 0),
            sa.func.coalesce(sa.func.max(crawl_log.c.pages_crawled), 0),
        ).where(in_hour)
    ).one()
    if crawls == counted:
        facts = _event_time_facts(connection, ip_id, hour)
        if facts is not None:
            figures = event_time_figures(facts)
            return _figures(
                connection, ip_id, hour, int(crawls), figures.inflow, figures.outflow, figures.active_count,
                figures.quality,
            )
    if not crawls:
        return None
    active_count = connection.execute(
        sa.select(crawl_log.c.on_sale_count)
        .where(in_hour)
        .order_by(crawl_log.c.crawled_at.desc(), crawl_log.c.task_id.desc())
        .limit(1)
    ).scalar_one()
    quality = Quality.EXACT if widest <= _WHOLE_LIST_PAGES else Quality.LOWER_BOUND
    return _figures(connection, ip_id, hour, int(crawls), int(inflow), int(outflow), int(active_count), quality)


def _figures(
    connection: Connection,
    ip_id: int,
    hour: datetime,
    crawls: int,
    inflow: int,
    outflow: int,
    active_count: int,
    quality: Quality,
) -> HourFigures:
    sold = connection.execute(
        sa.select(
            item_events.c.source_id,
            item_events.c.title,
            item_events.c.price,
            item_events.c.item_url,
            item_events.c.image_url,
        ).where(
            item_events.c.ip_id == ip_id,
            item_events.c.hour_bucket == hour,
            item_events.c.transition.in_([t.value for t in OUTFLOW_TRANSITIONS]),
        )
    ).all()
    return HourFigures(
        ip_id=ip_id,
        hour_bucket=hour,
        crawl_count=crawls,
        inflow=inflow,
        outflow=outflow,
        liquidity_index=liquidity_index(inflow, outflow),
        active_count=active_count,
        prices=price_stats(PricedItem(*row) for row in sold),
        quality=quality,
    )


def _counted_crawl(row) -> CountedCrawl:
    share = 1.0 if row.visible_share is None else float(row.visible_share)
    return CountedCrawl(
        row.crawled_at, int(row.found_on_sale), int(row.found_sold), row.on_sale_boundary, visible_share=share,
        served_sold=int(row.sold_count),
    )


def baseline_at(connection: Connection, ip_id: int) -> datetime | None:
    """The IP's first counted crawl: event-time inflow counts what was listed after it."""
    return connection.execute(
        sa.select(sa.func.min(crawl_log.c.crawled_at)).where(crawl_log.c.ip_id == ip_id, COUNTED_CRAWL)
    ).scalar_one()


def counted_crawls_around(connection: Connection, ip_id: int, start: datetime, end: datetime) -> list[CountedCrawl]:
    """The IP's counted crawls in [start, end), with the last one before and the first one after,
    oldest first."""
    columns = (
        crawl_log.c.crawled_at,
        crawl_log.c.found_on_sale,
        crawl_log.c.found_sold,
        crawl_log.c.on_sale_boundary,
        crawl_log.c.visible_share,
        crawl_log.c.sold_count,
    )
    of_ip = sa.and_(crawl_log.c.ip_id == ip_id, COUNTED_CRAWL)
    before = connection.execute(
        sa.select(*columns).where(of_ip, crawl_log.c.crawled_at < start).order_by(crawl_log.c.crawled_at.desc()).limit(1)
    ).all()
    within = connection.execute(
        sa.select(*columns)
        .where(of_ip, crawl_log.c.crawled_at >= start, crawl_log.c.crawled_at < end)
        .order_by(crawl_log.c.crawled_at, crawl_log.c.task_id)
    ).all()
    after = connection.execute(
        sa.select(*columns).where(of_ip, crawl_log.c.crawled_at >= end).order_by(crawl_log.c.crawled_at).limit(1)
    ).all()
    return [_counted_crawl(row) for row in [*before, *within, *after]]


def listings_between(connection: Connection, ip_id: int, start: datetime, end: datetime) -> int:
    """Listings seen whose creation time is in [start, end)."""
    return connection.execute(
        sa.select(sa.func.count()).where(
            listings_seen.c.ip_id == ip_id, listings_seen.c.listed_at >= start, listings_seen.c.listed_at < end
        )
    ).scalar_one()


def _with_window_counts(connection: Connection, ip_id: int, crawls: list[CountedCrawl]) -> tuple[CountedCrawl, ...]:
    """Each crawl whose on-sale window was cut, with the listings counted on both sides of its
    boundary back to the crawl before it."""
    completed = list(crawls)
    for index in range(1, len(crawls)):
        previous, current = crawls[index - 1], crawls[index]
        boundary = current.on_sale_boundary
        if boundary is None or not previous.crawled_at < boundary < current.crawled_at:
            continue
        completed[index] = dataclasses.replace(
            current,
            listed_in_window=listings_between(connection, ip_id, boundary, current.crawled_at + timedelta(seconds=1)),
            listed_before_window=listings_between(connection, ip_id, previous.crawled_at, boundary),
        )
    return tuple(completed)


def _event_time_facts(connection: Connection, ip_id: int, hour: datetime) -> HourFacts | None:
    """The facts of an hour for the event-time method; None when no counted crawl observed it
    (the hour is before the IP's first counted crawl or after its last)."""
    first = baseline_at(connection, ip_id)
    if first is None or hour + HOUR <= first:
        return None
    crawls = counted_crawls_around(connection, ip_id, hour, hour + HOUR)
    if not crawls or crawls[-1].crawled_at < hour:
        return None
    listed = listings_between(connection, ip_id, max(hour, first), hour + HOUR)
    return HourFacts(hour=hour, crawls=_with_window_counts(connection, ip_id, crawls), listed=listed, baseline_at=first)


def price_columns(prices: PriceStats) -> dict:
    """The sold-price columns the hourly, daily and weekly tables share."""
    return {
        "avg_price": prices.avg,
        "median_price": prices.median,
        "min_price": prices.min,
        "max_price": prices.max,
        "min_price_item": prices.min_item.as_json() if prices.min_item else None,
        "max_price_item": prices.max_item.as_json() if prices.max_item else None,
        "sample_count": prices.sample_count,
    }


def write_hour(connection: Connection, figures: HourFigures, now: datetime) -> None:
    row = {
        "ip_id": figures.ip_id,
        "hour_bucket": figures.hour_bucket,
        "inflow": figures.inflow,
        "outflow": figures.outflow,
        "liquidity_index": figures.liquidity_index,
        "active_count": figures.active_count,
        **price_columns(figures.prices),
        "price_stddev": figures.prices.stddev,
        "crawl_count": figures.crawl_count,
        "quality": figures.quality.value,
        "created_at": now,
        "updated_at": now,
    }
    upsert(
        connection,
        ip_stats_hourly,
        [row],
        update_columns=[c for c in row if c not in ("ip_id", "hour_bucket", "created_at")],
        conflict_columns=("ip_id", "hour_bucket"),
    )


def recompute_hour(connection: Connection, ip_id: int, hour: datetime, now: datetime) -> HourFigures | None:
    """Recompute and store the hourly row of (ip, hour); returns its figures."""
    figures = hour_figures(connection, ip_id, hour)
    if figures is not None:
        write_hour(connection, figures, now)
    return figures


def crawls_in_hour(connection: Connection, ip_id: int, hour: datetime) -> list[sa.Row]:
    """The crawl log of one (ip, hour), oldest first: what a crawl-chain partition holds."""
    return connection.execute(
        sa.select(crawl_log)
        .where(crawl_log.c.ip_id == ip_id, crawl_log.c.hour_bucket == hour)
        .order_by(crawl_log.c.crawled_at, crawl_log.c.task_id)
    ).all()


def stored_hour(connection: Connection, ip_id: int, hour: datetime) -> sa.Row | None:
    """The ip_stats_hourly row of (ip, hour) as stored."""
    return connection.execute(
        sa.select(ip_stats_hourly).where(ip_stats_hourly.c.ip_id == ip_id, ip_stats_hourly.c.hour_bucket == hour)
    ).one_or_none()
