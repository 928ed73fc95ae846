"""Japan-time buckets. Timestamps are UTC everywhere; hours, days and weeks are Japan time."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

# Japan has no daylight saving: a fixed offset is exact and avoids tz database lookups.
JST = timezone(timedelta(hours=9), "JST")
_DAY = timedelta(days=1)
_WEEK = timedelta(days=7)


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


def is_week_start(day: date) -> bool:
    return day.weekday() == 0


def next_week_start(day: date) -> date:
    """The Monday after the week holding ``day``."""
    return week_start(day) + _WEEK


def previous_day(moment: datetime) -> date:
    """The Japan-time day before the one holding ``moment``: the last complete day."""
    return jst_date(moment) - _DAY


def previous_week_start(moment: datetime) -> date:
    """The Monday of the week before the one holding ``moment``: the last complete week."""
    return week_start(jst_date(moment)) - _WEEK


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The UTC instants where Japan-time ``day`` starts and the next day starts."""
    start = _midnight(day)
    return start, start + _DAY


def week_bounds(monday: date) -> tuple[datetime, datetime]:
    """The UTC instants where the Japan-time week starting ``monday`` starts and the next week
    starts."""
    start = _midnight(monday)
    return start, start + _WEEK


def next_day_boundary(moment: datetime) -> datetime:
    """The Japan-time midnight after ``moment``, in UTC."""
    return _midnight(jst_date(moment) + _DAY)


def next_week_boundary(moment: datetime) -> datetime:
    """The Japan-time Monday midnight after ``moment``, in UTC."""
    return _midnight(next_week_start(jst_date(moment)))


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=JST).astimezone(UTC)


def rfc3339_jst(moment: datetime) -> str:
    return moment.astimezone(JST).isoformat(timespec="seconds")
