"""Leaderboard windows and scoring (SPEC §8)."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal

from animehot_dagster.domain.scores import hot_score, liquidity_index
from animehot_dagster.domain.timebuckets import hour_bucket, previous_day, previous_week_start

MAX_LIMIT = 100
DAY_HOURS = 24
WEEK_HOURS = 168
# The windows the leaderboards asset shows: the last hour, yesterday and last week.
LEADERBOARD_WINDOWS = (1, DAY_HOURS, WEEK_HOURS)


class LeaderboardType(enum.Enum):
    HOT = "hot"
    INFLOW = "inflow"
    OUTFLOW = "outflow"


class Source(enum.Enum):
    HOURLY = "hourly"
    DAILY = "daily"
    WEEKLY = "weekly"


@dataclasses.dataclass(frozen=True)
class Window:
    source: Source
    hours: int
    start: datetime | date
    end: datetime | date  # exclusive for hours; the same day/week for daily and weekly


def window(hours: int, now: datetime) -> Window:
    """1–23: the last complete hours (the current one excluded); 24: yesterday (Japan time);
    168: the last complete Monday-based week."""
    if 1 <= hours <= 23:
        end = hour_bucket(now)
        return Window(Source.HOURLY, hours, end - timedelta(hours=hours), end)
    if hours == DAY_HOURS:
        yesterday = previous_day(now)
        return Window(Source.DAILY, hours, yesterday, yesterday)
    if hours == WEEK_HOURS:
        last_week = previous_week_start(now)
        return Window(Source.WEEKLY, hours, last_week, last_week)
    raise ValueError(f"hours must be 1-23, 24 or 168, got {hours}")


@dataclasses.dataclass(frozen=True)
class Entry:
    rank: int
    ip_id: int
    inflow: int
    outflow: int
    liquidity_index: Decimal | None
    hot_score: float
    score: float


def score(kind: LeaderboardType, inflow: int, outflow: int) -> float:
    if kind is LeaderboardType.HOT:
        return hot_score(inflow, outflow)
    return float(inflow if kind is LeaderboardType.INFLOW else outflow)


def rank(totals: Iterable[tuple[int, int, int]], kind: LeaderboardType, limit: int) -> list[Entry]:
    """Rank (ip_id, inflow, outflow) totals, best first; ties go to the smaller ip id."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be 1-{MAX_LIMIT}, got {limit}")
    scored = sorted(
        ((score(kind, inflow, outflow), ip_id, inflow, outflow) for ip_id, inflow, outflow in totals),
        key=lambda row: (-row[0], row[1]),
    )
    return [
        Entry(
            rank=position,
            ip_id=ip_id,
            inflow=inflow,
            outflow=outflow,
            liquidity_index=liquidity_index(inflow, outflow),
            hot_score=hot_score(inflow, outflow),
            score=value,
        )
        for position, (value, ip_id, inflow, outflow) in enumerate(scored[:limit], start=1)
    ]
