"""Cron expressions for intervals: what a schedule of "every N minutes" can say."""

from __future__ import annotations

from datetime import timedelta

_MINUTE = timedelta(minutes=1)
_HOUR = timedelta(hours=1)


def every(interval: timedelta) -> str:
    """A cron expression for "every ``interval``". Cron counts minutes within the hour and hours
    within the day, so only whole minutes dividing an hour or whole hours dividing a day repeat
    evenly; any other interval raises ValueError."""
    minutes = interval // _MINUTE
    if interval % _MINUTE == timedelta(0) and 0 < minutes < 60 and 60 % minutes == 0:
        return f"*/{minutes} * * * *"
    hours = interval // _HOUR
    if interval % _HOUR == timedelta(0) and 0 < hours <= 24 and 24 % hours == 0:
        return f"0 */{hours} * * *"
    raise ValueError(f"{interval}: a schedule needs minutes dividing an hour or hours dividing a day")
