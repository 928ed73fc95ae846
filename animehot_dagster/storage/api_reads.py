"""The HTTP API's reads (SPEC §9): rows and counts, shaped into the wire contract by
:mod:`animehot_dagster.api.views`. The API itself holds no SQL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, Row

from animehot_dagster.domain.catalog import IpStatus
from animehot_dagster.domain.leaderboard import Entry, LeaderboardType, Window
from animehot_dagster.domain.timebuckets import hour_bucket
from animehot_dagster.storage.ip_queries import ActiveIp
from animehot_dagster.storage.leaderboard import leaderboard
from animehot_dagster.storage.schema import crawl_log, ip_alerts, ip_metadata, ip_stats_hourly, item_snapshots
from animehot_dagster.storage.stats import SUCCESSFUL_CRAWL

LISTED_ITEM_STATES = ("on_sale", "sold")


def get_ip(connection: Connection, ip_id: int) -> Row | None:
    return connection.execute(sa.select(ip_metadata).where(ip_metadata.c.id == ip_id)).one_or_none()


def find_ip(engine: Engine, ip_id: int) -> Row | None:
    with engine.connect() as connection:
        return get_ip(connection, ip_id)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _page(engine: Engine, query: sa.Select, count_from: sa.FromClause, conditions: list, order: Sequence,
          page: int, size: int) -> tuple[list[Row], int]:
    """One page of ``query``'s rows matching ``conditions`` and how many match in all."""
    with engine.connect() as connection:
        total = connection.execute(sa.select(sa.func.count()).select_from(count_from).where(*conditions)).scalar_one()
        rows = connection.execute(query.where(*conditions).order_by(*order).limit(size).offset((page - 1) * size)).all()
    return rows, int(total)


def ip_page(engine: Engine, page: int, size: int, status: str | None, category: str | None,
            keyword: str | None) -> tuple[list[Row], int]:
    """Non-deleted IPs (or those of ``status``), heaviest first, then by id."""
    conditions = [ip_metadata.c.status == status] if status else [ip_metadata.c.status != IpStatus.DELETED]
    if category:
        conditions.append(ip_metadata.c.category == category)
    if keyword:
        pattern = f"%{_escape_like(keyword)}%"
        conditions.append(sa.or_(*(c.like(pattern, escape="\\") for c in
                                   (ip_metadata.c.name, ip_metadata.c.name_en, ip_metadata.c.name_cn))))
    order = (ip_metadata.c.weight.desc(), ip_metadata.c.id)
    return _page(engine, sa.select(ip_metadata), ip_metadata, conditions, order, page, size)


def latest_complete_hour(engine: Engine, ip_id: int, now: datetime) -> tuple[Row | None, int]:
    """The IP's newest hourly row before the current hour, and how many of its items are sold."""
    with engine.connect() as connection:
        row = connection.execute(
            sa.select(ip_stats_hourly)
            .where(ip_stats_hourly.c.ip_id == ip_id, ip_stats_hourly.c.hour_bucket < hour_bucket(now))
            .order_by(ip_stats_hourly.c.hour_bucket.desc()).limit(1)
        ).one_or_none()
        sold = connection.execute(
            sa.select(sa.func.count()).select_from(item_snapshots)
            .where(item_snapshots.c.ip_id == ip_id, item_snapshots.c.status == "sold")
        ).scalar_one()
    return row, int(sold)


def complete_hours(engine: Engine, ip_id: int, now: datetime, start: datetime | None, end: datetime | None,
                   limit: int, end_inclusive: bool = True) -> list[Row]:
    """The IP's hourly rows of complete hours in [start, end], newest first, at most ``limit``."""
    conditions = [ip_stats_hourly.c.ip_id == ip_id, ip_stats_hourly.c.hour_bucket < hour_bucket(now)]
    if start is not None:
        conditions.append(ip_stats_hourly.c.hour_bucket >= start)
    if end is not None:
        conditions.append(ip_stats_hourly.c.hour_bucket <= end if end_inclusive else ip_stats_hourly.c.hour_bucket < end)
    with engine.connect() as connection:
        return connection.execute(
            sa.select(ip_stats_hourly).where(*conditions).order_by(ip_stats_hourly.c.hour_bucket.desc()).limit(limit)
        ).all()


def item_page(engine: Engine, ip_id: int, status: str | None, page: int, size: int) -> tuple[list[Row], int]:
    """The IP's listed items (on sale or sold, or those of ``status``), last seen first."""
    conditions = [item_snapshots.c.ip_id == ip_id,
                  item_snapshots.c.status == status if status else item_snapshots.c.status.in_(LISTED_ITEM_STATES)]
    order = (item_snapshots.c.last_seen_at.desc(), item_snapshots.c.id.desc())
    return _page(engine, sa.select(item_snapshots), item_snapshots, conditions, order, page, size)


def ranked(engine: Engine, kind: LeaderboardType, hours: int, limit: int,
           now: datetime) -> tuple[Window, list[Entry], dict[int, Row]]:
    """A leaderboard window, its entries and the names of their IPs."""
    with engine.connect() as connection:
        span, entries = leaderboard(connection, kind, hours, limit, now)
        names = _names(connection, [e.ip_id for e in entries])
    return span, entries, names


def _names(connection: Connection, ids: list[int]) -> dict[int, Row]:
    if not ids:
        return {}
    rows = connection.execute(
        sa.select(ip_metadata.c.id, ip_metadata.c.name, ip_metadata.c.name_en, ip_metadata.c.name_cn,
                  ip_metadata.c.image_url).where(ip_metadata.c.id.in_(ids)))
    return {row.id: row for row in rows}


def names_of(engine: Engine, ids: list[int]) -> dict[int, str]:
    if not ids:
        return {}
    with engine.connect() as connection:
        return {row.id: row.name for row in _names(connection, ids).values()}


ALERT_WITH_NAME = sa.select(ip_alerts, ip_metadata.c.name.label("ip_name")).select_from(
    ip_alerts.outerjoin(ip_metadata, ip_metadata.c.id == ip_alerts.c.ip_id))


def get_alert(connection: Connection, alert_id: int) -> Row | None:
    return connection.execute(ALERT_WITH_NAME.where(ip_alerts.c.id == alert_id)).one_or_none()


def alert_page(engine: Engine, ip_id: int | None, severity: str | None, acknowledged: bool | None,
               page: int, size: int) -> tuple[list[Row], int]:
    """Alerts matching the filters, newest first, with their IP's name."""
    conditions: list[Any] = []
    if ip_id is not None:
        conditions.append(ip_alerts.c.ip_id == ip_id)
    if severity:
        conditions.append(ip_alerts.c.severity == severity)
    if acknowledged is not None:
        conditions.append(ip_alerts.c.acknowledged == acknowledged)
    order = (ip_alerts.c.created_at.desc(), ip_alerts.c.id.desc())
    return _page(engine, ALERT_WITH_NAME, ip_alerts, conditions, order, page, size)


def system_figures(engine: Engine) -> dict[str, int]:
    """Crawl outcomes, catalog size, unacknowledged alerts and items on sale."""
    with engine.connect() as connection:
        total, ok = connection.execute(
            sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(sa.case((SUCCESSFUL_CRAWL, 1), else_=0)), 0))
            .select_from(crawl_log)).one()
        ips = connection.execute(
            sa.select(sa.func.count()).select_from(ip_metadata).where(ip_metadata.c.status != IpStatus.DELETED)).scalar_one()
        unacked = connection.execute(
            sa.select(sa.func.count()).select_from(ip_alerts).where(ip_alerts.c.acknowledged == sa.false())
        ).scalar_one()
        on_sale = connection.execute(
            sa.select(sa.func.count()).select_from(item_snapshots).where(item_snapshots.c.status == "on_sale")
        ).scalar_one()
    return {"processed": int(ok), "errors": int(total) - int(ok), "ip_count": int(ips),
            "unacked_alerts": int(unacked), "active_items": int(on_sale)}


def active_ips_among(engine: Engine, ip_ids: Sequence[int]) -> list[ActiveIp]:
    """Those of ``ip_ids`` that are active, by id, as the schedule seeds them."""
    if not ip_ids:
        return []
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(ip_metadata.c.id, ip_metadata.c.name, ip_metadata.c.weight,
                      ip_metadata.c.crawl_interval_minutes, ip_metadata.c.last_crawled_at)
            .where(ip_metadata.c.id.in_(list(ip_ids)), ip_metadata.c.status == IpStatus.ACTIVE)
            .order_by(ip_metadata.c.id)
        ).all()
    return [ActiveIp(*row) for row in rows]
