"""Intervals as cron: the janitor's schedule (JANITOR_INTERVAL)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from animehot_dagster.domain.cron import every


@pytest.mark.parametrize(
    "interval, cron",
    [
        (timedelta(minutes=1), "*/1 * * * *"),
        (timedelta(minutes=5), "*/5 * * * *"),
        (timedelta(minutes=30), "*/30 * * * *"),
        (timedelta(hours=1), "0 */1 * * *"),
        (timedelta(minutes=120), "0 */2 * * *"),
        (timedelta(hours=24), "0 */24 * * *"),
    ],
)
def test_intervals_that_repeat_evenly_become_cron(interval, cron):
    assert every(interval) == cron


@pytest.mark.parametrize(
    "interval",
    [
        timedelta(seconds=90),  # not whole minutes
        timedelta(minutes=7),  # does not divide an hour
        timedelta(minutes=90),  # between an hour and a day, not whole hours
        timedelta(hours=5),  # does not divide a day
        timedelta(days=2),  # longer than cron's day
        timedelta(0),
        timedelta(seconds=30),
    ],
)
def test_other_intervals_are_refused(interval):
    with pytest.raises(ValueError, match=f"^{interval}: a schedule needs minutes dividing an hour or hours dividing a day$"):
        every(interval)
