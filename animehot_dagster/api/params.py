"""Query and path parameters as the original analyzer reads them (SPEC §9).

Numbers out of range are clamped, not refused: a limit or page_size above its maximum becomes
the maximum, 0 or absent (or negative) the default, a page below 1 the first; leaderboard hours
are normalized to a window. A value that is not a number, an unknown enum value or a bad time is
a 400 naming the parameter (FastAPI's validation, worded by :func:`validation_message`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import Path, Query

from animehot_dagster.api.envelope import ApiError
from animehot_dagster.domain.leaderboard import DAY_HOURS, WEEK_HOURS
from animehot_dagster.domain.timebuckets import day_bounds

MAX_ID = 2**63 - 1
MAX_PAGE = 1_000_000  # beyond any data; keeps OFFSET within what the database accepts
MAX_PAGE_SIZE = 100
MAX_HOURLY_LIMIT = 168

IpId = Annotated[int, Path(ge=1, le=MAX_ID, description="IP id")]
AlertId = Annotated[int, Path(ge=1, le=MAX_ID, description="alert id")]
PageParam = Annotated[int | None, Query(description="default 1; below 1 → 1")]


def size_param(default: int, maximum: int, what: str = "rows per page"):
    return Annotated[int | None, Query(description=f"{what}: default {default}, at most {maximum} (larger → {maximum})")]


def clamp(value: int | None, default: int, maximum: int) -> int:
    """0, negative or absent → ``default``; above ``maximum`` → ``maximum``."""
    if value is None or value <= 0:
        return default
    return min(value, maximum)


def page_number(value: int | None) -> int:
    if value is None or value < 1:
        return 1
    return min(value, MAX_PAGE)


def leaderboard_hours(value: int | None) -> int:
    """1–23 stay (the last complete hours), 24–167 → 24 (yesterday), ≥ 168 → 168 (last week);
    0, negative or absent → 24."""
    if value is None or value <= 0:
        return DAY_HOURS
    if value >= WEEK_HOURS:
        return WEEK_HOURS
    return DAY_HOURS if value >= DAY_HOURS else value


def parse_time(name: str, text: str, end: bool = False) -> tuple[datetime, bool]:
    """RFC 3339, or YYYY-MM-DD (a Japan-time day). Returns the instant and whether it is
    inclusive: a day as ``end`` is the next day's start, exclusive; anything else is inclusive."""
    value = text.strip()
    try:
        if len(value) == 10:
            start, next_start = day_bounds(date.fromisoformat(value))
            return (next_start, False) if end else (start, True)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ApiError(400, f"invalid parameter {name}: {text!r} is neither RFC 3339 nor YYYY-MM-DD") from None
    if moment.tzinfo is None or "T" not in value.upper():
        raise ApiError(400, f"invalid parameter {name}: {text!r} needs a date, a time and a zone (RFC 3339)")
    return moment.astimezone(UTC), True


def parse_day(name: str, text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ApiError(400, f"invalid parameter {name}: {text!r} is not a date (YYYY-MM-DD)") from None


def validation_message(errors: list[dict]) -> str:
    """``invalid parameter page_size: …`` naming each offending parameter (first three)."""
    parts = []
    for error in errors[:3]:
        loc = [str(p) for p in error.get("loc", ()) if p not in ("query", "path", "header")]
        if error.get("type") == "json_invalid":
            parts.append("invalid JSON body")
            continue
        where, kind = ".".join(loc) or "request", "parameter"
        if loc and loc[0] == "body":
            where, kind = ".".join(loc[1:]) or "body", "body field"
        parts.append(f"invalid {kind} {where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"
