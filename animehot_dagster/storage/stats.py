"""An hour's figures, recomputed from the stored facts (crawl log and item events).

Ingest calls this after every crawl and the ``hourly_liquidity`` asset calls it on
re-materialisation and backfill: both give the same row because both read the same facts.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from animehot_dagster.domain.items import OUTFLOW_TRANSITIONS
from animehot_dagster.domain.messages import NO_ITEMS
from animehot_dagster.domain.scores import PricedItem, PriceStats, liquidity_index, price_stats
from animehot_dagster.storage.db import upsert
from animehot_dagster.storage.schema import crawl_log, ip_stats_hourly, item_events

SUCCESSFUL_CRAWL = crawl_log.c.error_message.in_(["", NO_ITEMS])


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


def hour_figures(connection: Connection, ip_id: int, hour: datetime) -> HourFigures | None:
    """The figures of one (ip, hour) from its facts; None when no crawl landed in that hour."""
    in_hour = sa.and_(crawl_log.c.ip_id == ip_id, crawl_log.c.hour_bucket == hour, SUCCESSFUL_CRAWL)
    crawls, inflow, outflow = connection.execute(
        sa.select(
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(crawl_log.c.inflow), 0),
            sa.func.coalesce(sa.func.sum(crawl_log.c.outflow), 0),
        ).where(in_hour)
    ).one()
    if not crawls:
        return None
    active_count = connection.execute(
        sa.select(crawl_log.c.on_sale_count)
        .where(in_hour)
        .order_by(crawl_log.c.crawled_at.desc(), crawl_log.c.task_id.desc())
        .limit(1)
    ).scalar_one()
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
    inflow, outflow = int(inflow), int(outflow)
    return HourFigures(
        ip_id=ip_id,
        hour_bucket=hour,
        crawl_count=int(crawls),
        inflow=inflow,
        outflow=outflow,
        liquidity_index=liquidity_index(inflow, outflow),
        active_count=int(active_count),
        prices=price_stats(PricedItem(*row) for row in sold),
    )


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
