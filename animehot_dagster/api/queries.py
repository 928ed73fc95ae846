"""The API's database reads and writes, as JSON-ready dicts (times in RFC 3339, +09:00)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from animehot_dagster.domain.leaderboard import Entry, LeaderboardType, Source, Window
from animehot_dagster.domain.scores import hot_score
from animehot_dagster.domain.timebuckets import day_bounds, rfc3339_jst
from animehot_dagster.storage.leaderboard import leaderboard
from animehot_dagster.storage.schema import crawl_log, ip_alerts, ip_metadata, ip_stats_hourly, item_snapshots
from animehot_dagster.storage.stats import SUCCESSFUL_CRAWL


def t(moment: datetime | None) -> str | None:
    return None if moment is None else rfc3339_jst(moment)


def num(value: Decimal | float | None) -> float | None:
    return None if value is None else float(value)


def ip_json(row: Any) -> dict:
    return {
        "id": row.id,
        "name": row.name,
        "name_en": row.name_en,
        "name_cn": row.name_cn,
        "category": row.category,
        "tags": list(row.tags or []),
        "image_url": row.image_url,
        "external_id": row.external_id,
        "notes": row.notes,
        "weight": float(row.weight),
        "status": row.status,
        "last_crawled_at": t(row.last_crawled_at),
        "created_at": t(row.created_at),
        "updated_at": t(row.updated_at),
        "deleted_at": t(row.deleted_at),
    }


def get_ip(connection: Connection, ip_id: int) -> Any | None:
    return connection.execute(sa.select(ip_metadata).where(ip_metadata.c.id == ip_id)).one_or_none()


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _page(engine: Engine, table: sa.Table, conditions: list, order: tuple, to_json, page: int, size: int) -> dict:
    """One page of ``table``'s rows matching ``conditions``, with the total, as the list
    endpoints return it."""
    with engine.connect() as connection:
        total = connection.execute(sa.select(sa.func.count()).select_from(table).where(*conditions)).scalar_one()
        rows = connection.execute(
            sa.select(table).where(*conditions).order_by(*order).limit(size).offset((page - 1) * size)
        ).all()
    return {"items": [to_json(r) for r in rows], "total": int(total), "page": page, "page_size": size}


def list_ips(engine: Engine, page: int, size: int, status: str | None, category: str | None,
             keyword: str | None) -> dict:
    conditions = [ip_metadata.c.status == status] if status else [ip_metadata.c.status != "deleted"]
    if category:
        conditions.append(ip_metadata.c.category == category)
    if keyword:
        pattern = f"%{_escape_like(keyword)}%"
        conditions.append(sa.or_(*(c.like(pattern, escape="\\") for c in
                                   (ip_metadata.c.name, ip_metadata.c.name_en, ip_metadata.c.name_cn))))
    return _page(engine, ip_metadata, conditions, (ip_metadata.c.id,), ip_json, page, size)


def hour_json(row: Any) -> dict:
    return {
        "hour": t(row.hour_bucket),
        "inflow": row.inflow,
        "outflow": row.outflow,
        "liquidity_index": num(row.liquidity_index),
        "hot_score": hot_score(row.inflow, row.outflow),
        "active_count": row.active_count,
        "sample_count": row.sample_count,
        "avg_price": num(row.avg_price),
        "median_price": num(row.median_price),
        "min_price": row.min_price,
        "max_price": row.max_price,
        "price_stddev": num(row.price_stddev),
        "min_price_item": row.min_price_item,
        "max_price_item": row.max_price_item,
    }


def latest_hour(engine: Engine, ip_id: int) -> dict:
    with engine.connect() as connection:
        row = connection.execute(
            sa.select(ip_stats_hourly).where(ip_stats_hourly.c.ip_id == ip_id)
            .order_by(ip_stats_hourly.c.hour_bucket.desc()).limit(1)
        ).one_or_none()
    if row is None:
        return {"ip_id": ip_id, "hour": None, "inflow": None, "outflow": None, "liquidity_index": None,
                "hot_score": None, "active_count": None}
    return {"ip_id": ip_id, "hour": t(row.hour_bucket), "inflow": row.inflow, "outflow": row.outflow,
            "liquidity_index": num(row.liquidity_index), "hot_score": hot_score(row.inflow, row.outflow),
            "active_count": row.active_count}


def hourly_stats(engine: Engine, ip_id: int, start: datetime | None, end: datetime | None, limit: int) -> list[dict]:
    conditions = [ip_stats_hourly.c.ip_id == ip_id]
    if start is not None:
        conditions.append(ip_stats_hourly.c.hour_bucket >= start)
    if end is not None:
        conditions.append(ip_stats_hourly.c.hour_bucket < end)
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(ip_stats_hourly).where(*conditions)
            .order_by(ip_stats_hourly.c.hour_bucket.desc()).limit(limit)
        ).all()
    return [hour_json(r) for r in rows]


def item_json(row: Any) -> dict:
    return {
        "source_id": row.source_id,
        "title": row.title,
        "price": row.price,
        "status": row.status,
        "image_url": row.image_url,
        "item_url": row.item_url,
        "first_seen_at": t(row.first_seen_at),
        "last_seen_at": t(row.last_seen_at),
        "sold_at": t(row.sold_at),
    }


def list_items(engine: Engine, ip_id: int, status: str | None, page: int, size: int) -> dict:
    conditions = [item_snapshots.c.ip_id == ip_id]
    conditions.append(item_snapshots.c.status == status if status else item_snapshots.c.status.in_(["on_sale", "sold"]))
    order = (item_snapshots.c.last_seen_at.desc(), item_snapshots.c.id.desc())
    return _page(engine, item_snapshots, conditions, order, item_json, page, size)


def window_range(span: Window) -> dict:
    if span.source is Source.HOURLY:
        return {"start": t(span.start), "end": t(span.end)}
    start, _ = day_bounds(span.start)
    _, end = day_bounds(span.end if span.source is Source.DAILY else span.end + timedelta(days=6))
    return {"start": t(start), "end": t(end)}


def leaderboard_json(engine: Engine, kind: LeaderboardType, hours: int, limit: int, now: datetime) -> dict:
    with engine.connect() as connection:
        span, entries = leaderboard(connection, kind, hours, limit, now)
        names = _names(connection, [e.ip_id for e in entries])
    return {
        "type": kind.value,
        "hours": hours,
        "source": span.source.value,
        "time_range": window_range(span),
        "items": [_entry_json(e, names.get(e.ip_id)) for e in entries],
    }


def _names(connection: Connection, ids: list[int]) -> dict[int, Any]:
    if not ids:
        return {}
    rows = connection.execute(
        sa.select(ip_metadata.c.id, ip_metadata.c.name, ip_metadata.c.name_en, ip_metadata.c.name_cn,
                  ip_metadata.c.image_url).where(ip_metadata.c.id.in_(ids))
    )
    return {row.id: row for row in rows}


def _entry_json(entry: Entry, names: Any) -> dict:
    return {
        "rank": entry.rank,
        "ip_id": entry.ip_id,
        "name": names.name if names else "",
        "name_en": names.name_en if names else "",
        "name_cn": names.name_cn if names else "",
        "image_url": names.image_url if names else "",
        "inflow": entry.inflow,
        "outflow": entry.outflow,
        "liquidity_index": num(entry.liquidity_index),
        "hot_score": entry.hot_score,
        "score": entry.score,
    }


def alert_json(row: Any) -> dict:
    return {
        "id": row.id,
        "ip_id": row.ip_id,
        "alert_type": row.alert_type,
        "severity": row.severity,
        "message": row.message,
        "threshold": float(row.threshold),
        "actual_value": float(row.actual_value),
        "hour_bucket": t(row.hour_bucket),
        "acknowledged": bool(row.acknowledged),
        "acknowledged_at": t(row.acknowledged_at),
        "created_at": t(row.created_at),
    }


def list_alerts(engine: Engine, ip_id: int | None, severity: str | None, acknowledged: bool | None,
                page: int, size: int) -> dict:
    conditions = []
    if ip_id is not None:
        conditions.append(ip_alerts.c.ip_id == ip_id)
    if severity:
        conditions.append(ip_alerts.c.severity == severity)
    if acknowledged is not None:
        conditions.append(ip_alerts.c.acknowledged == acknowledged)
    order = (ip_alerts.c.created_at.desc(), ip_alerts.c.id.desc())
    return _page(engine, ip_alerts, conditions, order, alert_json, page, size)


def ack_alert(engine: Engine, alert_id: int, now: datetime) -> dict | None:
    with engine.begin() as connection:
        row = connection.execute(sa.select(ip_alerts).where(ip_alerts.c.id == alert_id).with_for_update()).one_or_none()
        if row is None:
            return None
        if not row.acknowledged:
            connection.execute(ip_alerts.update().where(ip_alerts.c.id == alert_id)
                               .values(acknowledged=True, acknowledged_at=now))
            row = connection.execute(sa.select(ip_alerts).where(ip_alerts.c.id == alert_id)).one()
    return alert_json(row)


def database_figures(engine: Engine) -> dict:
    """Crawl-log outcome counts, unacknowledged alerts and items on sale."""
    with engine.connect() as connection:
        total, ok = connection.execute(
            sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(sa.case((SUCCESSFUL_CRAWL, 1), else_=0)), 0))
        .select_from(crawl_log)).one()
        unacked = connection.execute(
            sa.select(sa.func.count()).select_from(ip_alerts).where(ip_alerts.c.acknowledged == sa.false())
        ).scalar_one()
        on_sale = connection.execute(
            sa.select(sa.func.count()).select_from(item_snapshots).where(item_snapshots.c.status == "on_sale")
        ).scalar_one()
    return {"processed": int(ok), "errors": int(total) - int(ok), "unacked_alerts": int(unacked),
            "active_items": int(on_sale)}


def names_of(engine: Engine, ids: list[int]) -> dict[int, str]:
    if not ids:
        return {}
    with engine.connect() as connection:
        rows = connection.execute(sa.select(ip_metadata.c.id, ip_metadata.c.name).where(ip_metadata.c.id.in_(ids)))
        return dict(rows.all())
