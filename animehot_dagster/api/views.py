"""Rows of :mod:`animehot_dagster.storage.api_reads` as the wire objects of SPEC §9 (JSON-ready
dicts: times RFC 3339 in +09:00, decimals as numbers, a missing price or index ``null``)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from animehot_dagster.api import models as m
from animehot_dagster.domain.leaderboard import Entry, Source, Window
from animehot_dagster.domain.scores import hot_score
from animehot_dagster.domain.timebuckets import day_bounds, rfc3339_jst

# The last instant RFC 3339 in +09:00 can write (9999-12-31T23:59:59+09:00).
LAST_WRITABLE = datetime(9999, 12, 31, 14, 59, 59, tzinfo=UTC)


def t(moment: datetime | None) -> str | None:
    """A stored time in +09:00. One later than 9999-12-31T23:59:59+09:00 (a far-future time
    stored before the wire bounds, issue 17 #2) is written as that: it has no +09:00 form."""
    if moment is None:
        return None
    return rfc3339_jst(min(moment, LAST_WRITABLE))


def wire(value: Any) -> Any:
    """One stored value as JSON: times in +09:00, decimals as floats."""
    if isinstance(value, datetime):
        return t(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


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
        "notes": row.notes or "",
        "weight": float(row.weight),
        "status": row.status,
        "last_crawled_at": t(row.last_crawled_at),
        "created_at": t(row.created_at),
        "updated_at": t(row.updated_at),
        "deleted_at": t(row.deleted_at),
    }


_COMPUTED_HOURLY = {"hot_score"}
HOURLY_COLUMNS = tuple(name for name in m.HourlyStatRow.model_fields if name not in _COMPUTED_HOURLY)


def hour_json(row: Any) -> dict:
    """Every field of :class:`~animehot_dagster.api.models.HourlyStatRow` from the stored row
    (a field the table does not have yet is null), and the hour's hot score."""
    values = row._mapping
    out = {name: wire(values.get(name)) for name in HOURLY_COLUMNS}
    out["hot_score"] = hot_score(row.inflow, row.outflow)
    return out


def liquidity_json(ip: Any, row: Any | None, sold_total: int, now: datetime) -> dict:
    """The latest complete hour in the original's names; zeros (never null) before the first."""
    if row is None:
        return {"ip_id": ip.id, "ip_name": ip.name, "on_sale_inflow": 0, "on_sale_outflow": 0, "on_sale_total": 0,
                "sold_inflow": 0, "sold_total": sold_total, "liquidity_index": None, "hot_score": 0.0,
                "updated_at": rfc3339_jst(now), "quality": None}
    return {"ip_id": ip.id, "ip_name": ip.name, "on_sale_inflow": row.inflow, "on_sale_outflow": row.outflow,
            "on_sale_total": row.active_count, "sold_inflow": row.outflow, "sold_total": sold_total,
            "liquidity_index": wire(row.liquidity_index), "hot_score": hot_score(row.inflow, row.outflow),
            "updated_at": t(row.hour_bucket), "quality": row.quality}


def item_json(row: Any) -> dict:
    """An item snapshot; the project keeps no price history, so ``price_changed`` is false, and
    the snapshot is created when first seen and updated when last seen."""
    return {
        "id": row.id,
        "ip_id": row.ip_id,
        "source_id": row.source_id,
        "title": row.title,
        "price": row.price,
        "status": row.status,
        "image_url": row.image_url,
        "item_url": row.item_url,
        "first_seen_at": t(row.first_seen_at),
        "last_seen_at": t(row.last_seen_at),
        "sold_at": t(row.sold_at),
        "price_changed": False,
        "created_at": t(row.first_seen_at),
        "updated_at": t(row.last_seen_at),
    }


def window_range(span: Window) -> dict:
    if span.source is Source.HOURLY:
        return {"start": t(span.start), "end": t(span.end)}
    start, _ = day_bounds(span.start)
    _, end = day_bounds(span.end if span.source is Source.DAILY else span.end + timedelta(days=6))
    return {"start": t(start), "end": t(end)}


_NAMED = {"ip_name": "name", "ip_name_en": "name_en", "ip_name_cn": "name_cn", "image_url": "image_url"}
ENTRY_FIELDS = tuple(name for name in m.LeaderboardItem.model_fields if name not in _NAMED)


def entry_json(entry: Entry, names: Any) -> dict:
    """Every field of :class:`~animehot_dagster.api.models.LeaderboardItem`: the IP's names
    from the catalog, the rest from the ranked entry (null when the entry has no such field)."""
    out = {name: wire(getattr(entry, name, None)) for name in ENTRY_FIELDS}
    out.update({field: getattr(names, column, "") if names is not None else "" for field, column in _NAMED.items()})
    return out


def leaderboard_json(kind: str, hours: int, span: Window, entries: list[Entry], names: dict[int, Any]) -> dict:
    items = [entry_json(e, names.get(e.ip_id)) for e in entries]
    return {"type": kind, "hours": hours, "time_range": window_range(span), "items": items, "count": len(items),
            "source": span.source.value}


def alert_json(row: Any) -> dict:
    return {
        "id": row.id,
        "ip_id": row.ip_id,
        "alert_type": row.alert_type,
        "severity": row.severity,
        "message": row.message,
        "metric_value": float(row.actual_value),
        "threshold_value": float(row.threshold),
        "hour_bucket": t(row.hour_bucket),
        "acknowledged": bool(row.acknowledged),
        "acknowledged_at": t(row.acknowledged_at),
        "created_at": t(row.created_at),
        "ip_name": row.ip_name or "",
    }


def duration_text(seconds: int) -> str:
    """Go-style durations as the original prints them: ``1h30m``, ``45s``, ``-2m5s``, ``0s``."""
    sign, rest = ("-", -seconds) if seconds < 0 else ("", seconds)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (f"{secs}s" if secs else "")
    return sign + (text or "0s")


def import_json(report: Any) -> dict:
    """An import report in the original's form: counts, then one detail per row in input order."""
    details = [{"name": r["name"], "status": "created", "id": r["id"], "error": None, "index": r["index"]}
               for r in report.created]
    details += [{"name": r["name"], "status": "updated", "id": r["id"], "error": None, "index": r["index"]}
                for r in report.updated]
    details += [{"name": r["name"] if isinstance(r.get("name"), str) else "", "status": "failed", "id": None,
                 "error": r["reason"], "index": r["index"]} for r in report.failed]
    details.sort(key=lambda d: d["index"])
    return {"created": len(report.created), "updated": len(report.updated), "failed": len(report.failed),
            "details": details}


def archive_json(kind: str, report: Any) -> dict:
    return {"kind": kind, "bucket": report.bucket.isoformat(), "rows": report.rows,
            "total_inflow": report.total_inflow, "total_outflow": report.total_outflow}
