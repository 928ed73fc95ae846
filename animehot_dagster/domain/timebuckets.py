"""Japan-time buckets. Timestamps are UTC everywhere; hours, days and weeks are Japan time."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

# Japan has no daylight saving: a fixed offset is exact and avoids tz database lookups.
JST = timezone(timedelta(hours=9), "JST")


def from_unix(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def to_unix(moment: datetime) -> int:
    return int(moment.timestamp())


def hour_bucket(moment: datetime) -> datetime:
    """Start of the Japan-time hour holding ``moment``, in UTC (JST is a whole-hour offset)."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def jst_date(moment: datetime) -> date:
    return moment.astimezone(JST).date()


def week_start(day: date) -> date:
    """The Monday of the week holding ``day``."""
    return day - timedelta(days=day.weekday())


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The UTC instants where Japan-time ``day`` starts and the next day starts."""
    start = datetime(day.year, day.month, day.day, tzinfo=JST).astimezone(UTC)
    return start, start + timedelta(days=1)


def rfc3339_jst(moment: datetime) -> str:
    return moment.astimezone(JST).isoformat(timespec="seconds")
