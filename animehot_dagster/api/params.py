"""Query and path parameters as the original analyzer reads them (SPEC §9).

Numbers out of range are clamped, not refused: a limit or page_size above its maximum becomes
the maximum, 0 or absent (or negative) the default, a page below 1 the first; leaderboard hours
are normalized to a window. A value that is not a number, an unknown enum value or a bad time is
a 400 naming the parameter (FastAPI's validation, worded by :func:`validation_message`), and so is
a time outside the range the API can compute with and write back (Japan-time days 1970-01-01 to
9998-12-31): ``end=9999-12-31`` would end past the last instant RFC 3339 in +09:00 can write.
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
# Times a parameter may name: Japan-time days FIRST_DAY to LAST_DAY. Every instant of that range,
# a day later or earlier, is a datetime in UTC and in +09:00 and a MySQL DATETIME.
FIRST_DAY = date(1970, 1, 1)
LAST_DAY = date(9998, 12, 31)
EARLIEST, _ = day_bounds(FIRST_DAY)
_, LATEST = day_bounds(LAST_DAY)  # exclusive

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


def _out_of_range(name: str, text: str) -> ApiError:
    return ApiError(400, f"invalid parameter {name}: {text!r} is out of range "
                         f"({FIRST_DAY} to {LAST_DAY}, Japan time)")


def parse_time(name: str, text: str, end: bool = False) -> tuple[datetime, bool]:
    """RFC 3339, or YYYY-MM-DD (a Japan-time day). Returns the instant and whether it is
    inclusive: a day as ``end`` is the next day's start, exclusive; anything else is inclusive.
    A time outside FIRST_DAY … LAST_DAY is a 400 naming ``name``."""
    value = text.strip()
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            if not FIRST_DAY <= day <= LAST_DAY:
                raise _out_of_range(name, text)
            start, next_start = day_bounds(day)
            return (next_start, False) if end else (start, True)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ApiError(400, f"invalid parameter {name}: {text!r} is neither RFC 3339 nor YYYY-MM-DD") from None
    if moment.tzinfo is None or "T" not in value.upper():
        raise ApiError(400, f"invalid parameter {name}: {text!r} needs a date, a time and a zone (RFC 3339)")
    try:
        instant = moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+09:00 is before datetime's first UTC instant
        raise _out_of_range(name, text) from None
    if not EARLIEST <= instant < LATEST:
        raise _out_of_range(name, text)
    return instant, True


def parse_day(name: str, text: str) -> date:
    """YYYY-MM-DD between FIRST_DAY and LAST_DAY; otherwise a 400 naming ``name``."""
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise ApiError(400, f"invalid parameter {name}: {text!r} is not a date (YYYY-MM-DD)") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise _out_of_range(name, text)
    return day


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
