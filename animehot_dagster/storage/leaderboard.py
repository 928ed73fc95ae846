"""Leaderboards read from the hourly, daily or weekly table the window calls for (SPEC §8)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from animehot_dagster.domain.catalog import IpStatus
from animehot_dagster.domain.leaderboard import Entry, LeaderboardType, Source, Window, rank, window
from animehot_dagster.storage.schema import ip_metadata, ip_stats_daily, ip_stats_hourly, ip_stats_weekly


def _totals(connection: Connection, span: Window) -> list[tuple[int, int, int]]:
    if span.source is Source.HOURLY:
        table, where = ip_stats_hourly, sa.and_(
            ip_stats_hourly.c.hour_bucket >= span.start, ip_stats_hourly.c.hour_bucket < span.end
        )
        inflow, outflow = table.c.inflow, table.c.outflow
    elif span.source is Source.DAILY:
        table, where = ip_stats_daily, ip_stats_daily.c.date_bucket == span.start
        inflow, outflow = table.c.total_inflow, table.c.total_outflow
    else:
        table, where = ip_stats_weekly, ip_stats_weekly.c.week_start == span.start
        inflow, outflow = table.c.total_inflow, table.c.total_outflow
    query = (
        sa.select(table.c.ip_id, sa.func.sum(inflow), sa.func.sum(outflow))
        .join(ip_metadata, ip_metadata.c.id == table.c.ip_id)
        .where(where, ip_metadata.c.status != IpStatus.DELETED)
        .group_by(table.c.ip_id)
    )
    return [(ip_id, int(i), int(o)) for ip_id, i, o in connection.execute(query)]


def ip_names(connection: Connection) -> dict[int, str]:
    """Every IP's name by id, deleted ones too: an entry of a past window may name one."""
    return dict(connection.execute(sa.select(ip_metadata.c.id, ip_metadata.c.name)).all())


def leaderboard(
    connection: Connection, kind: LeaderboardType, hours: int, limit: int, now: datetime
) -> tuple[Window, list[Entry]]:
    """The ranked entries of a window ending at ``now`` (deleted IPs left out)."""
    span = window(hours, now)
    return span, rank(_totals(connection, span), kind, limit)
