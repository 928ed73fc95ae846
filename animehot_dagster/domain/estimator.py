"""Event-time figures (SPEC §4.1): an hour's inflow from the listing times of what the crawls
saw, its outflow from the change of the sold result count between consecutive crawls.

Pure: the storage layer gathers the facts of one (ip, hour) into :class:`HourFacts`; nothing
here reads a clock or a database, and the figures depend on the set of crawls stored, never on
the order in which they arrived.

- **Inflow.** A listing counts once, in the Japan-time hour of its own ``created``, when a crawl
  saw it within ``LOOKBACK`` of its creation and it was created after the IP's first counted
  crawl (the baseline). A crawl that finds more listings of an hour revises it. The search
  filters a few per cent of what it counts from its pages; the count of what the pages showed is
  divided by the share they served (:func:`visible_share`) and rounded without bias
  (:func:`round_in_hour`). When a crawl's
  on-sale window was cut before it reached back to the previous crawl, the listings created in
  between were never visible: their number is extrapolated from the rate the window shows.
- **Outflow.** The sold count of consecutive crawls ``p`` and ``c`` grows by the sales between
  them, wherever in the list they lie. The sales are spread uniformly over ``[p, c)`` and
  apportioned to whole hours so that each pair's hours add up to its sales exactly. Where the
  count crosses ``EXACT_COUNT_UP_TO`` between the two, it changes how it counts filtered listings,
  and the sold items the pages served tell the sales instead.
- **Quality.** Each hour says how it was obtained (:class:`Quality`).
"""

from __future__ import annotations

import dataclasses
import enum
import math
from datetime import datetime, timedelta

HOUR = timedelta(hours=1)
# A crawl counts a newly seen listing only when it was created this recently: older ones it
# could have seen before (sellers' edits bring months-old listings back among the newest).
# Two of the longest cadence intervals, so one failed crawl loses nothing.
LOOKBACK = timedelta(hours=4)
# The search's result count is exact up to this many results; above, it also counts listings it
# filters from its pages (recorded responses: 19 and fewer exact, 1-7 % more from about 20).
EXACT_COUNT_UP_TO = 19


class Quality(enum.Enum):
    """How an hourly row was obtained, from best to worst."""

    EXACT = "exact"  # every event of the hour was in a window the crawls read (the item method)
    COUNTED = "counted"  # from the search's result counts
    ESTIMATED = "estimated"  # part of it extrapolated (a saturated on-sale window)
    LOWER_BOUND = "lower_bound"  # part of the hour was not observed (yet)

    @classmethod
    def worst(cls, *qualities: Quality) -> Quality:
        order = list(cls)
        return max(qualities, key=order.index)


@dataclasses.dataclass(frozen=True)
class CountedCrawl:
    """What the event-time method needs of one successful crawl with result counts."""

    crawled_at: datetime
    found_on_sale: int
    found_sold: int
    # Where a cut on-sale window ended in the created-time order; None when it reached the end
    # of the results.
    on_sale_boundary: datetime | None = None
    # Listings counted in [boundary, crawled_at] and in [previous crawl, boundary): what the
    # extrapolation into the unseen part is made from. Only meaningful with a boundary.
    listed_in_window: int = 0
    listed_before_window: int = 0
    visible_share: float = 1.0
    served_sold: int | None = None  # sold items the pages served; None when not recorded


@dataclasses.dataclass(frozen=True)
class HourFacts:
    hour: datetime  # start of the hour, UTC
    # The IP's counted crawls around the hour, oldest first: the last one before it, those in
    # it, and the first one after it (as far as they exist).
    crawls: tuple[CountedCrawl, ...]
    listed: int  # listings counted with ``created`` in the hour
    baseline_at: datetime  # the IP's first counted crawl


@dataclasses.dataclass(frozen=True)
class EventTimeFigures:
    inflow: int
    outflow: int
    active_count: int
    quality: Quality


def _round(value: float) -> int:
    return math.floor(value + 0.5)


# The golden ratio's fractional part: successive hours' rounding offsets spread evenly over [0, 1).
_WEYL_STEP = (math.sqrt(5) - 1) / 2


def round_in_hour(value: float, hour: datetime) -> int:
    """``value`` rounded down or up, up with probability its fractional part, by an offset fixed
    for the hour: unbiased where plain rounding is not (a share of 0.97 scales 3 listings to
    3.09, always rounded to 3), and the offsets of consecutive hours, a Weyl sequence, make the
    roundings of a day cancel out. A function of the hour alone, so the figures stay a function
    of the crawls stored."""
    offset = (int(hour.timestamp()) // 3600 * _WEYL_STEP) % 1.0
    return math.floor(value + offset)


def _fraction(moment: datetime, start: datetime, end: datetime) -> float:
    if moment <= start:
        return 0.0
    if moment >= end:
        return 1.0
    return (moment - start) / (end - start)


def apportion(amount: int, start: datetime, end: datetime, hour: datetime) -> int:
    """The whole part of ``amount``, spread uniformly over ``[start, end)``, that falls in
    ``[hour, hour + 1 h)``; the parts of all hours add up to ``amount`` exactly."""
    if end <= start:
        return amount if hour <= start < hour + HOUR else 0
    return _round(amount * _fraction(hour + HOUR, start, end)) - _round(amount * _fraction(hour, start, end))


def _count_is_exact(found: int) -> bool:
    return found <= EXACT_COUNT_UP_TO


def sales_between(previous: CountedCrawl, current: CountedCrawl) -> int:
    """Sales between two consecutive crawls: the growth of the sold count. Sellers delete sold
    listings too, so the count can fall; a fall is no negative sale. When the count crossed
    ``EXACT_COUNT_UP_TO`` between them, its jump is the filtered listings it began (or stopped)
    counting, not sales: such a list fits in the page read, so the growth of the served sold items
    is the sales."""
    crossed = _count_is_exact(previous.found_sold) != _count_is_exact(current.found_sold)
    if crossed and previous.served_sold is not None and current.served_sold is not None:
        return max(0, current.served_sold - previous.served_sold)
    return max(0, current.found_sold - previous.found_sold)


# A page counts as full when it served at least this share of its slots: only the filtering
# takes slots from it, a few per cent.
_FULL_PAGE = 0.9


def visible_share(
    sold_served: int, sold_found: int, on_sale_served: int, on_sale_found: int, on_sale_more: bool, page_size: int
) -> float:
    """The share of the search's results its pages served. The search counts listings that it
    then filters from its pages (a full page serves a few less than ``page_size``; above about 20
    results the count exceeds what the pages hold), so the pages show this share of what there is.
    Pooled from what tells it: full sold pages when the sold results went on beyond them (items
    over slots), and the on-sale results when they were read to their end (items over the count);
    1 when neither does."""
    served = slots = 0
    pages = math.ceil(sold_served / page_size)
    if pages and sold_found > pages * page_size and sold_served >= _FULL_PAGE * pages * page_size:
        served, slots = sold_served, pages * page_size
    if not on_sale_more and not _count_is_exact(on_sale_found) and on_sale_served:
        served, slots = served + on_sale_served, slots + on_sale_found
    return min(1.0, served / slots) if slots else 1.0


def unseen_listings(previous: CountedCrawl, current: CountedCrawl) -> int:
    """Listings created between ``previous`` and the boundary of ``current``'s cut on-sale window,
    beyond what any crawl saw: the window's own rate carried back over the part it missed."""
    boundary = current.on_sale_boundary
    if boundary is None or boundary <= previous.crawled_at or current.crawled_at <= boundary:
        return 0
    rate = current.listed_in_window / (current.crawled_at - boundary).total_seconds()
    expected = rate * (boundary - previous.crawled_at).total_seconds()
    return max(0, _round(expected) - current.listed_before_window)


def event_time_figures(facts: HourFacts) -> EventTimeFigures:
    hour, end = facts.hour, facts.hour + HOUR
    crawls = facts.crawls
    outflow = 0
    estimated = 0
    covered_until = None
    for previous, current in zip(crawls, crawls[1:], strict=False):
        if current.crawled_at <= hour or previous.crawled_at >= end:
            continue
        outflow += apportion(sales_between(previous, current), previous.crawled_at, current.crawled_at, hour)
        gap = unseen_listings(previous, current)
        if gap:
            estimated += apportion(gap, previous.crawled_at, current.on_sale_boundary, hour)
    if crawls:
        covered_until = crawls[-1].crawled_at
    qualities = [Quality.COUNTED]
    if estimated:
        qualities.append(Quality.ESTIMATED)
    if hour < facts.baseline_at or covered_until is None or covered_until < end:
        qualities.append(Quality.LOWER_BOUND)
    observed = [c for c in crawls if c.crawled_at < end]
    active = observed[-1].found_on_sale if observed else 0
    # The listings of the hour were seen by the crawls after it: their share of what was there.
    seeing = [c.visible_share for c in crawls if c.crawled_at >= hour] or [1.0]
    share = sum(seeing) / len(seeing)
    return EventTimeFigures(
        inflow=round_in_hour((facts.listed + estimated) / share, hour),
        outflow=outflow,
        active_count=active,
        quality=Quality.worst(*qualities),
    )

