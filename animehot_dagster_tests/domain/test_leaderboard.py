"""Leaderboard windows and ranking (SPEC §8). Windows are in Japan time."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from animehot_dagster.domain.leaderboard import LeaderboardType, Source, rank, window

JST = timezone(timedelta(hours=9))


def jst(*parts) -> datetime:
    return datetime(*parts, tzinfo=JST)


# ------------------------------------------------------------------------------ windows


@pytest.mark.parametrize("hours", [1, 2, 6, 12, 23])
def test_hours_window_is_the_last_complete_hours(hours):
    now = jst(2026, 11, 4, 10, 42, 5)
    result = window(hours, now)
    assert result.source is Source.HOURLY
    assert result.hours == hours
    assert result.end == jst(2026, 11, 4, 10)  # the current hour is excluded
    assert result.start == jst(2026, 11, 4, 10) - timedelta(hours=hours)


def test_one_hour_window_at_the_top_of_the_hour():
    result = window(1, jst(2026, 11, 4, 10, 0, 0))
    assert (result.start, result.end) == (jst(2026, 11, 4, 9), jst(2026, 11, 4, 10))


def test_hours_window_crosses_midnight_in_japan_time():
    result = window(3, jst(2026, 11, 4, 1, 30))
    assert result.start == jst(2026, 11, 3, 22)
    assert result.end == jst(2026, 11, 4, 1)


def test_24_is_yesterday_in_japan_time():
    # 00:30 on the 4th in Japan is still the 3rd in UTC: yesterday is the 3rd, not the 2nd.
    now = jst(2026, 11, 4, 0, 30)
    assert now.astimezone(UTC).date() == date(2026, 11, 3)
    result = window(24, now)
    assert result.source is Source.DAILY
    assert result.start == result.end == date(2026, 11, 3)
    # 23:30 in Japan on the 4th
    assert window(24, jst(2026, 11, 4, 23, 30)).start == date(2026, 11, 3)
    # given as a UTC instant
    assert window(24, datetime(2026, 11, 3, 15, 0, tzinfo=UTC)).start == date(2026, 11, 3)  # 00:00 on the 4th in Japan
    assert window(24, datetime(2026, 11, 3, 14, 59, 59, tzinfo=UTC)).start == date(2026, 11, 2)


def test_168_is_the_last_complete_monday_week():
    assert date(2026, 11, 2).weekday() == 0  # a Monday
    for now in (jst(2026, 11, 2, 0, 0), jst(2026, 11, 5, 12, 0), jst(2026, 11, 8, 23, 59)):
        result = window(168, now)
        assert result.source is Source.WEEKLY
        assert result.start == result.end == date(2026, 10, 26)
    # Sunday in UTC but already Monday the 9th in Japan: the week of the 2nd is now complete
    assert window(168, datetime(2026, 11, 8, 15, 30, tzinfo=UTC)).start == date(2026, 11, 2)
    assert window(168, datetime(2026, 11, 8, 14, 30, tzinfo=UTC)).start == date(2026, 10, 26)


@pytest.mark.parametrize("hours", [0, -1, 25, 48, 167, 169, 720])
def test_other_windows_are_refused(hours):
    with pytest.raises(ValueError, match=str(hours)):
        window(hours, jst(2026, 11, 4, 10))


# ------------------------------------------------------------------------------ ranking

TOTALS = [
    (1, 10, 5),  # hot 6/11 ln 6 = 0.977
    (2, 100, 80),  # hot 81/101 ln 81 = 3.524
    (3, 4, 9),  # hot 10/5 ln 10 = 4.605
    (4, 0, 0),  # hot 0
    (5, 200, 10),  # hot 0.120
]


def test_hot_ranking():
    entries = rank(TOTALS, LeaderboardType.HOT, 10)
    assert [e.ip_id for e in entries] == [3, 2, 1, 5, 4]
    assert [e.rank for e in entries] == [1, 2, 3, 4, 5]
    first = entries[0]
    assert (first.inflow, first.outflow) == (4, 9)
    assert first.score == pytest.approx(10 / 5 * math.log(10))
    assert first.hot_score == first.score
    assert first.liquidity_index == Decimal("2.2500")
    assert entries[-1].liquidity_index is None  # nothing listed


def test_inflow_and_outflow_rankings():
    assert [e.ip_id for e in rank(TOTALS, LeaderboardType.INFLOW, 10)] == [5, 2, 1, 3, 4]
    outflow = rank(TOTALS, LeaderboardType.OUTFLOW, 10)
    assert [e.ip_id for e in outflow] == [2, 5, 3, 1, 4]
    assert outflow[0].score == 80.0
    assert outflow[0].hot_score == pytest.approx(81 / 101 * math.log(81))


def test_ties_go_to_the_smaller_ip_id_whatever_the_input_order():
    totals = [(9, 10, 3), (4, 10, 3), (7, 10, 3), (2, 1, 1)]
    for ordered in (totals, list(reversed(totals))):
        assert [e.ip_id for e in rank(ordered, LeaderboardType.OUTFLOW, 10)] == [4, 7, 9, 2]
        assert [e.ip_id for e in rank(ordered, LeaderboardType.HOT, 10)] == [2, 4, 7, 9]


def test_limit_cuts_the_list_after_ranking():
    entries = rank(TOTALS, LeaderboardType.HOT, 2)
    assert [(e.rank, e.ip_id) for e in entries] == [(1, 3), (2, 2)]
    assert rank([], LeaderboardType.HOT, 5) == []
    many = [(n, n, n) for n in range(1, 151)]
    assert len(rank(many, LeaderboardType.INFLOW, 100)) == 100
    assert rank(many, LeaderboardType.INFLOW, 1)[0].ip_id == 150


@pytest.mark.parametrize("limit", [0, -3, 101, 1000])
def test_limit_out_of_range_is_refused(limit):
    with pytest.raises(ValueError, match=str(limit)):
        rank(TOTALS, LeaderboardType.HOT, limit)
