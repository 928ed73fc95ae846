"""Cadence rules (SPEC §5): how often each IP is crawled, adapted after every crawl."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

STEP = timedelta(minutes=15)
RETURN_STEP = timedelta(minutes=5)
REBUILD_STAGGER = timedelta(seconds=10)
ACTIVE_INFLOW_PER_PAGE = 100
ACTIVE_OUTFLOW_PER_PAGE = 100
COLD_INFLOW_PER_PAGE = 50
COLD_OUTFLOW_PER_PAGE = 3
# How late past its interval an active IP may be before it counts as stale: a crawl waits for
# its slot, the queue and the processor.
FRESHNESS_SLACK = timedelta(minutes=30)
_MINUTE = timedelta(minutes=1)


class Activity(enum.Enum):
    ACTIVE = "active"
    NORMAL = "normal"
    COLD = "cold"


@dataclasses.dataclass(frozen=True)
class CadencePolicy:
    base_interval: timedelta = timedelta(hours=2)
    min_interval: timedelta = timedelta(hours=1)
    max_interval: timedelta = timedelta(hours=2)
    pages_on_sale: int = 5
    pages_sold: int = 5
    schedule_slot: timedelta = timedelta(0)

    def clamp(self, interval: timedelta) -> timedelta:
        return min(max(interval, self.min_interval), self.max_interval)

    def interval_for_weight(self, weight: Decimal | float) -> timedelta:
        """base / weight in whole minutes, clamped."""
        if weight <= 0:
            return self.max_interval
        minutes = (Decimal(self.base_interval // _MINUTE) / Decimal(str(weight))).quantize(
            Decimal(1), rounding=ROUND_HALF_UP
        )
        return self.clamp(timedelta(minutes=int(minutes)))

    def current_interval(self, weight: Decimal | float, interval_minutes: int | None) -> timedelta:
        """The interval the cadence last set, or, when an operator has set the weight since
        (``interval_minutes`` is None), the weight's."""
        if interval_minutes:
            return self.clamp(timedelta(minutes=interval_minutes))
        return self.interval_for_weight(weight)

    def is_stale(
        self, weight: Decimal | float, interval_minutes: int | None, last_crawled_at: datetime | None, now: datetime
    ) -> bool:
        """Whether an active IP has waited for its next crawl longer than its current interval
        and FRESHNESS_SLACK allow; one never crawled is stale."""
        if last_crawled_at is None:
            return True
        return now - last_crawled_at > self.current_interval(weight, interval_minutes) + FRESHNESS_SLACK

    def weight_for_interval(self, interval: timedelta) -> Decimal:
        """base / interval to two places (ip_metadata.weight is DECIMAL(5,2))."""
        return (Decimal(self.base_interval // _MINUTE) / Decimal(interval // _MINUTE)).quantize(
            Decimal("0.01"), rounding=ROUND_HALF_UP
        )

    def classify(self, inflow: int, outflow: int) -> Activity:
        if inflow > ACTIVE_INFLOW_PER_PAGE * self.pages_on_sale or (
            outflow > ACTIVE_OUTFLOW_PER_PAGE * self.pages_sold
        ):
            return Activity.ACTIVE
        if inflow < COLD_INFLOW_PER_PAGE * self.pages_on_sale and (
            outflow < COLD_OUTFLOW_PER_PAGE * self.pages_sold
        ):
            return Activity.COLD
        return Activity.NORMAL

    def next_interval(self, current: timedelta, activity: Activity) -> timedelta:
        if activity is Activity.ACTIVE:
            moved = current - STEP
        elif activity is Activity.COLD:
            moved = current + STEP
        else:
            toward_base = self.clamp(self.base_interval)
            gap = toward_base - current
            moved = current + max(-RETURN_STEP, min(RETURN_STEP, gap))
        return self.clamp(moved)

    def align(self, moment: datetime) -> datetime:
        """Round ``moment`` up to the next schedule slot boundary (no slot: unchanged)."""
        if not self.schedule_slot:
            return moment
        slot = self.schedule_slot.total_seconds()
        epoch_seconds = moment.timestamp()
        aligned = -(-epoch_seconds // slot) * slot
        return datetime.fromtimestamp(aligned, UTC)

    def next_crawl_at(self, crawled_at: datetime, interval: timedelta, now: datetime) -> datetime:
        """When to crawl next: the crawl's own time plus the interval, slot-aligned; at once if
        that is already past when the result is processed."""
        return max(self.align(crawled_at + interval), now)


@dataclasses.dataclass(frozen=True)
class CadenceDecision:
    activity: Activity | None  # None: the crawl measured nothing
    interval: timedelta
    weight: Decimal | None  # None: leave the stored weight as it is
    next_crawl_at: datetime


def decide(
    policy: CadencePolicy,
    current: timedelta,
    inflow: int,
    outflow: int,
    crawled_at: datetime,
    now: datetime,
    measured: bool,
) -> CadenceDecision:
    """The cadence after one processed crawl, from the ``current`` interval. Only a measured crawl
    moves the interval and writes base / interval back as the weight (SPEC §5); a crawl that
    measured nothing (the baseline, or one that failed) keeps both, and only sets the next time."""
    if not measured:
        return CadenceDecision(None, current, None, policy.next_crawl_at(crawled_at, current, now))
    activity = policy.classify(inflow, outflow)
    interval = policy.next_interval(current, activity)
    return CadenceDecision(
        activity=activity,
        interval=interval,
        weight=policy.weight_for_interval(interval),
        next_crawl_at=policy.next_crawl_at(crawled_at, interval, now),
    )


def rebuild_schedule(
    ips: Iterable[tuple[int, timedelta, datetime | None]],
    now: datetime,
) -> list[tuple[int, datetime]]:
    """Next crawl times for an empty schedule from (ip, current interval, last crawl): last crawl
    + interval when that is still ahead, otherwise now + i × 10 s so that a cold start does not
    crawl every IP in the same second. A last crawl more than an interval ahead of ``now`` is not
    believed (a far-future time stored before the wire bounds, issue 17 #3): staggered too."""
    schedule, staggered = [], 0
    for ip_id, interval, last_crawled_at in ips:
        if last_crawled_at is not None and now - interval < last_crawled_at <= now + interval:
            schedule.append((ip_id, last_crawled_at + interval))
            continue
        schedule.append((ip_id, now + staggered * REBUILD_STAGGER))
        staggered += 1
    return schedule
