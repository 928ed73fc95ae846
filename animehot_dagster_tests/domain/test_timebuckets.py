"""Japan-time days and weeks: the boundaries the rollups, leaderboards and cache lifetimes share.
The edges are where a UTC date and a Japan date differ (00:00–08:59 Japan time)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from animehot_dagster.domain.timebuckets import (
    JST,
    day_bounds,
    is_week_start,
    next_day_boundary,
    next_week_boundary,
    next_week_start,
    previous_day,
    previous_week_start,
    week_bounds,
)

MONDAY = date(2026, 11, 2)


def jst(*parts) -> datetime:
    return datetime(*parts, tzinfo=JST)


def test_a_day_starts_at_japan_midnight_which_is_the_previous_utc_day():
    assert day_bounds(date(2026, 11, 4)) == (datetime(2026, 11, 3, 15, tzinfo=UTC), datetime(2026, 11, 4, 15, tzinfo=UTC))


def test_a_week_is_seven_japan_days_from_its_monday():
    start, end = week_bounds(MONDAY)
    assert (start, end) == (jst(2026, 11, 2), jst(2026, 11, 9))
    assert start.tzinfo is UTC and end - start == timedelta(days=7)
    assert next_week_start(MONDAY) == next_week_start(date(2026, 11, 8)) == date(2026, 11, 9)


def test_only_a_monday_starts_a_week():
    assert is_week_start(MONDAY)
    assert not any(is_week_start(MONDAY + timedelta(days=n)) for n in range(1, 7))


@pytest.mark.parametrize(
    "moment, yesterday, last_monday",
    [
        (jst(2026, 11, 4, 0, 30), date(2026, 11, 3), date(2026, 10, 26)),  # still the 3rd in UTC
        (jst(2026, 11, 2, 0, 0), date(2026, 11, 1), date(2026, 10, 26)),  # the first instant of a week
        (jst(2026, 11, 1, 23, 59, 59), date(2026, 10, 31), date(2026, 10, 19)),  # its last instant
    ],
)
def test_the_last_complete_day_and_week_go_by_japan_time(moment, yesterday, last_monday):
    assert previous_day(moment) == yesterday
    assert previous_week_start(moment) == last_monday


def test_the_next_boundaries_are_strictly_after_the_moment():
    assert next_day_boundary(jst(2026, 11, 4, 8, 59)) == jst(2026, 11, 5)
    assert next_day_boundary(jst(2026, 11, 4)) == jst(2026, 11, 5)  # at midnight: the next one
    assert next_week_boundary(jst(2026, 11, 8, 23, 59)) == jst(2026, 11, 9)
    assert next_week_boundary(jst(2026, 11, 2)) == jst(2026, 11, 9)  # on Monday 00:00: a week on
