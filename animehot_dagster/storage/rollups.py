"""Daily and weekly rollups (SPEC §8), recomputed from stored facts so that re-running is harmless."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from animehot_dagster.domain.items import OUTFLOW_TRANSITIONS
from animehot_dagster.domain.rollups import Totals
from animehot_dagster.domain.scores import PricedItem, price_stats
from animehot_dagster.domain.timebuckets import day_bounds, is_week_start, next_week_start, week_bounds
from animehot_dagster.storage.db import upsert
from animehot_dagster.storage.schema import ip_stats_daily, ip_stats_hourly, ip_stats_weekly, item_events
from animehot_dagster.storage.stats import price_columns

_FOUR_PLACES = Decimal("0.0001")


@dataclasses.dataclass(frozen=True)
class RollupReport:
    bucket: date
    rows: int
    total_inflow: int
    total_outflow: int
    preview: list[dict]


def _sold_prices(connection: Connection, start: datetime, end: datetime) -> dict[int, list[PricedItem]]:
    rows = connection.execute(
        sa.select(
            item_events.c.ip_id,
            item_events.c.source_id,
            item_events.c.title,
            item_events.c.price,
            item_events.c.item_url,
            item_events.c.image_url,
        ).where(
            item_events.c.hour_bucket >= start,
            item_events.c.hour_bucket < end,
            item_events.c.transition.in_([t.value for t in OUTFLOW_TRANSITIONS]),
        )
    )
    sold: dict[int, list[PricedItem]] = {}
    for ip_id, *item in rows:
        sold.setdefault(ip_id, []).append(PricedItem(*item))
    return sold


def _rollup(
    connection: Connection,
    table: sa.Table,
    bucket_column: str,
    records_column: str,
    bucket: date,
    start: datetime,
    end: datetime,
    now: datetime,
    daily_records: dict[int, int] | None = None,
) -> RollupReport:
    """One row per IP with hourly rows in [start, end): totals, the mean of the non-NULL hourly
    liquidity indices, and statistics of the prices of every item sold in the range. The record
    count is the number of hourly rows, or ``daily_records`` per IP when given."""
    hourly = connection.execute(
        sa.select(
            ip_stats_hourly.c.ip_id,
            sa.func.sum(ip_stats_hourly.c.inflow),
            sa.func.sum(ip_stats_hourly.c.outflow),
            sa.func.avg(ip_stats_hourly.c.liquidity_index),
            sa.func.count(),
        )
        .where(ip_stats_hourly.c.hour_bucket >= start, ip_stats_hourly.c.hour_bucket < end)
        .group_by(ip_stats_hourly.c.ip_id)
        .order_by(ip_stats_hourly.c.ip_id)
    ).all()
    sold = _sold_prices(connection, start, end)
    rows = []
    for ip_id, inflow, outflow, mean_liquidity, hours in hourly:
        rows.append(
            {
                "ip_id": ip_id,
                bucket_column: bucket,
                "total_inflow": int(inflow),
                "total_outflow": int(outflow),
                "avg_liquidity": None
                if mean_liquidity is None
                else Decimal(str(mean_liquidity)).quantize(_FOUR_PLACES, rounding=ROUND_HALF_UP),
                **price_columns(price_stats(sold.get(ip_id, ()))),
                records_column: int(hours) if daily_records is None else daily_records.get(ip_id, 0),
                "created_at": now,
                "updated_at": now,
            }
        )
    upsert(
        connection,
        table,
        rows,
        update_columns=[c for c in (rows[0] if rows else {}) if c not in ("ip_id", bucket_column, "created_at")],
        conflict_columns=("ip_id", bucket_column),
    )
    return RollupReport(
        bucket=bucket,
        rows=len(rows),
        total_inflow=sum(r["total_inflow"] for r in rows),
        total_outflow=sum(r["total_outflow"] for r in rows),
        preview=[{k: row[k] for k in ("ip_id", "total_inflow", "total_outflow", "avg_liquidity")} for row in rows[:10]],
    )


def rollup_day(connection: Connection, day: date, now: datetime) -> RollupReport:
    """The Japan-time day ``day`` into ip_stats_daily."""
    start, end = day_bounds(day)
    return _rollup(connection, ip_stats_daily, "date_bucket", "hourly_records", day, start, end, now)


def rollup_week(connection: Connection, week_start: date, now: datetime) -> RollupReport:
    """The Monday-based week starting ``week_start`` into ip_stats_weekly."""
    if not is_week_start(week_start):
        raise ValueError(f"week_start {week_start} is not a Monday")
    daily_records = dict(
        connection.execute(
            sa.select(ip_stats_daily.c.ip_id, sa.func.count())
            .where(ip_stats_daily.c.date_bucket >= week_start, ip_stats_daily.c.date_bucket < next_week_start(week_start))
            .group_by(ip_stats_daily.c.ip_id)
        ).all()
    )
    start, end = week_bounds(week_start)
    return _rollup(connection, ip_stats_weekly, "week_start", "daily_records", week_start, start, end, now, daily_records)


@dataclasses.dataclass(frozen=True)
class TotalsAgainstHours:
    """A rollup's (inflow, outflow) per IP, one entry per rollup row of its bucket, and the same
    summed per IP over the hourly rows of its hours, one entry per IP with hourly rows there:
    equal when the rollup is up to date (:func:`animehot_dagster.domain.rollups.mismatched_ips`)."""

    rolled: dict[int, Totals]
    hourly: dict[int, Totals]


def _sums_by_ip(connection: Connection, ip_id: sa.Column, inflow: sa.Column, outflow: sa.Column, where) -> dict[int, Totals]:
    rows = connection.execute(
        sa.select(ip_id, sa.func.coalesce(sa.func.sum(inflow), 0), sa.func.coalesce(sa.func.sum(outflow), 0))
        .where(where)
        .group_by(ip_id)
    )
    return {int(ip): (int(total_in), int(total_out)) for ip, total_in, total_out in rows}


def _against_hours(connection: Connection, table: sa.Table, where, start: datetime, end: datetime) -> TotalsAgainstHours:
    hours = sa.and_(ip_stats_hourly.c.hour_bucket >= start, ip_stats_hourly.c.hour_bucket < end)
    return TotalsAgainstHours(
        rolled=_sums_by_ip(connection, table.c.ip_id, table.c.total_inflow, table.c.total_outflow, where),
        hourly=_sums_by_ip(connection, ip_stats_hourly.c.ip_id, ip_stats_hourly.c.inflow, ip_stats_hourly.c.outflow, hours),
    )


def day_totals(connection: Connection, day: date) -> TotalsAgainstHours:
    """Per IP: the day's rows of ip_stats_daily, and the hourly rows of its Japan-time hours."""
    return _against_hours(connection, ip_stats_daily, ip_stats_daily.c.date_bucket == day, *day_bounds(day))


def week_totals(connection: Connection, week_start: date) -> TotalsAgainstHours:
    """Per IP: the week's rows of ip_stats_weekly, and the hourly rows of its Japan-time hours."""
    return _against_hours(connection, ip_stats_weekly, ip_stats_weekly.c.week_start == week_start, *week_bounds(week_start))
