"""The item state machine (SPEC §4).

Every rule as an example first, then ``observe_crawl`` run over random crawl sequences and
compared with :class:`MarketModel`, a reference model written from the spec alone. The model
is event-sourced: it keeps every sighting of every item and derives states, transitions and
hourly figures from that history, where the code under test keeps one mutable state per item.
The ingest and CLI tests reuse the model and the crawl strategies defined here.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from animehot_dagster.domain.items import Availability, ItemState, ItemTTL, Transition, observe_crawl
from animehot_dagster.domain.messages import Item, ItemStatus

JAPAN = timezone(timedelta(hours=9))
TTL_AVAILABLE = timedelta(hours=24)
TTL_SOLD = timedelta(hours=48)
NO_PRICE = 9_999_999  # what Mercari writes for an item without a real price
# A day in the past: if expiry were measured on the wall clock, every state here would be dead.
T0 = datetime(2020, 3, 2, 0, 0, tzinfo=UTC)  # 09:00 in Japan, a Monday


# --------------------------------------------------------------------------------------------
# Reference model
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Sighting:
    """One crawl reporting one item (after the crawl's duplicates were merged)."""

    at: datetime
    sold: bool
    price: int
    title: str = ""
    item_url: str = ""


@dataclasses.dataclass(frozen=True)
class ModelState:
    status: str  # "on_sale" | "sold"
    price: int
    first_seen: datetime
    last_seen: datetime
    sold_at: datetime | None


@dataclasses.dataclass(frozen=True)
class ModelCrawl:
    """What the model says one delivered crawl result did."""

    ip: int
    task_id: str
    at: datetime
    applied: bool  # False: a redelivery of a task applied before
    failed: bool
    baseline: bool
    reports: dict[str, Sighting]
    transitions: dict[str, str | None]  # source id -> transition name (None: no change / baseline)

    @property
    def inflow(self) -> int:
        return list(self.transitions.values()).count("new_listing")

    @property
    def outflow(self) -> int:
        return sum(1 for t in self.transitions.values() if t in ("new_sold", "sold"))

    @property
    def on_sale(self) -> int:
        return sum(1 for s in self.reports.values() if not s.sold)


@dataclasses.dataclass(frozen=True)
class ModelHour:
    inflow: int
    outflow: int
    liquidity_index: Decimal | None
    active_count: int
    crawl_count: int
    sample_count: int
    min_price: int | None
    max_price: int | None
    min_item: str | None
    max_item: str | None
    avg_price: Decimal | None
    median_price: Decimal | None


def japan_hour(moment: datetime) -> datetime:
    """The start of the Japan-time hour holding ``moment``, as a UTC instant."""
    local = moment.astimezone(JAPAN)
    return local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)


def _four_places(value: Fraction) -> Decimal:
    """Round half up to 4 decimals, from an exact fraction."""
    scaled = value * 10_000
    return Decimal(math.floor(scaled + Fraction(1, 2))) / Decimal(10_000)


def _two_places(value: Fraction) -> Decimal:
    scaled = value * 100
    return (Decimal(math.floor(scaled + Fraction(1, 2))) / Decimal(100)).quantize(Decimal("0.01"))


class MarketModel:
    """Everything SPEC §4 and §7 say, derived from the log of delivered crawl results."""

    def __init__(self, ttl_available: timedelta = TTL_AVAILABLE, ttl_sold: timedelta = TTL_SOLD):
        self.ttl_available = ttl_available
        self.ttl_sold = ttl_sold
        self.log: list[ModelCrawl] = []
        self._sightings: dict[tuple[int, str], list[Sighting]] = defaultdict(list)

    # -- the state machine ------------------------------------------------------------------

    def _still_holds(self, sighting: Sighting, at: datetime) -> bool:
        """A sighting's state is remembered until it is older than its TTL (measured between
        crawl times); at exactly the TTL it is still remembered."""
        return at - sighting.at <= (self.ttl_sold if sighting.sold else self.ttl_available)

    def _remembered(self, ip: int, source_id: str, at: datetime) -> Sighting | None:
        history = self._sightings.get((ip, source_id))
        if not history or not self._still_holds(history[-1], at):
            return None
        return history[-1]

    @staticmethod
    def merge_reports(items: Iterable[Item], at: datetime) -> dict[str, Sighting]:
        """One sighting per source id: a sold report beats an on-sale one; ids left empty are
        dropped."""
        grouped: dict[str, list[Item]] = defaultdict(list)
        for item in items:
            if item.source_id:
                grouped[item.source_id].append(item)
        merged = {}
        for source_id, reports in grouped.items():
            sold = [r for r in reports if r.status is ItemStatus.SOLD]
            chosen = (sold or reports)[-1]
            merged[source_id] = Sighting(at, bool(sold), chosen.price, chosen.title, chosen.item_url)
        return merged

    def crawl(self, ip: int, task_id: str, at: datetime, items: Iterable[Item], error: str = "") -> ModelCrawl:
        for earlier in self.log:
            if earlier.task_id == task_id and earlier.applied:
                record = dataclasses.replace(earlier, applied=False)
                self.log.append(record)
                return record
        if error and error != "no_items":
            record = ModelCrawl(ip, task_id, at, True, True, False, {}, {})
            self.log.append(record)
            return record
        reports = self.merge_reports(items, at)
        known_ids = {sid for (owner, sid) in self._sightings if owner == ip}
        baseline = all(self._remembered(ip, sid, at) is None for sid in known_ids)
        transitions: dict[str, str | None] = {}
        for source_id, now in reports.items():
            before = self._remembered(ip, source_id, at)
            if before is None:
                change = "new_sold" if now.sold else "new_listing"
            elif before.sold:
                change = None if now.sold else "relisted"
            elif now.sold:
                change = "sold"
            else:
                change = "price_change" if now.price != before.price else None
            transitions[source_id] = None if baseline else change
        for source_id, now in reports.items():
            self._sightings[(ip, source_id)].append(now)
        record = ModelCrawl(ip, task_id, at, True, False, baseline, reports, transitions)
        self.log.append(record)
        return record

    def state(self, ip: int, source_id: str) -> ModelState:
        """The item's current state, read back from its sightings."""
        history = self._sightings[(ip, source_id)]
        last = history[-1]
        # The current life starts after the last gap the previous sighting did not survive.
        start = len(history) - 1
        while start > 0 and self._still_holds(history[start - 1], history[start].at):
            start -= 1
        sold_at = None
        if last.sold:
            first_sold = len(history) - 1
            while first_sold > start and history[first_sold - 1].sold:
                first_sold -= 1
            sold_at = history[first_sold].at
        return ModelState("sold" if last.sold else "on_sale", last.price, history[start].at, last.at, sold_at)

    def states(self) -> dict[tuple[int, str], ModelState]:
        return {key: self.state(*key) for key in self._sightings}

    # -- hourly figures and alerts -----------------------------------------------------------

    def _measured(self) -> list[ModelCrawl]:
        return [c for c in self.log if c.applied and not c.failed]

    @staticmethod
    def _hour_of(crawls: list[ModelCrawl]) -> ModelHour:
        inflow = sum(c.inflow for c in crawls)
        outflow = sum(c.outflow for c in crawls)
        latest = max(crawls, key=lambda c: c.at)
        sold = [
            (c.reports[sid].price, sid)
            for c in crawls
            for sid, t in c.transitions.items()
            if t in ("new_sold", "sold") and 0 < c.reports[sid].price < NO_PRICE
        ]
        prices = sorted(p for p, _ in sold)
        if prices:
            middle = len(prices) // 2
            median = Fraction(prices[middle]) if len(prices) % 2 else Fraction(prices[middle - 1] + prices[middle], 2)
            cheapest = min(sold)
            dearest = min(sold, key=lambda pair: (-pair[0], pair[1]))
        return ModelHour(
            inflow=inflow,
            outflow=outflow,
            liquidity_index=None if inflow == 0 else _four_places(Fraction(outflow, inflow)),
            active_count=latest.on_sale,
            crawl_count=len(crawls),
            sample_count=len(prices),
            min_price=prices[0] if prices else None,
            max_price=prices[-1] if prices else None,
            min_item=cheapest[1] if prices else None,
            max_item=dearest[1] if prices else None,
            avg_price=_two_places(Fraction(sum(prices), len(prices))) if prices else None,
            median_price=_two_places(median) if prices else None,
        )

    def hours(self) -> dict[tuple[int, datetime], ModelHour]:
        """(ip, hour) -> figures, for every hour in which a crawl of the IP succeeded."""
        grouped: dict[tuple[int, datetime], list[ModelCrawl]] = defaultdict(list)
        for crawl in self._measured():
            grouped[(crawl.ip, japan_hour(crawl.at))].append(crawl)
        return {key: self._hour_of(crawls) for key, crawls in grouped.items()}

    def alerts(self, high_outflow: int = 50, low: Fraction = Fraction(3, 10), high: Fraction = Fraction(2)) -> set:
        """(ip, hour, type) of every alert raised: each processed crawl checks its hour's figures
        as they stand after it, and an alert once raised for an hour stays."""
        raised = set()
        so_far: dict[tuple[int, datetime], list[ModelCrawl]] = defaultdict(list)
        for crawl in self._measured():
            key = (crawl.ip, japan_hour(crawl.at))
            so_far[key].append(crawl)
            inflow = sum(c.inflow for c in so_far[key])
            outflow = sum(c.outflow for c in so_far[key])
            if outflow >= high_outflow:
                raised.add((*key, "high_outflow"))
            if inflow:
                ratio = Fraction(outflow, inflow)
                if ratio < low:
                    raised.add((*key, "low_liquidity"))
                if ratio > high:
                    raised.add((*key, "surge"))
        return raised


# --------------------------------------------------------------------------------------------
# Strategies: crawl sequences
# --------------------------------------------------------------------------------------------

# Each item of the small pool has a usual price; 0 and 9,999,999 are Mercari's "no price".
USUAL_PRICE = {"m1": 300, "m2": 1000, "m3": 1500, "m4": 0, "m5": NO_PRICE, "m6": 1000, "m7": 2400, "m8": 300}
POOL = tuple(USUAL_PRICE)
PRICES = (0, 300, 800, 1000, 1500, NO_PRICE)
# Gaps between two crawls of one IP, in seconds: inside an hour, a few hours, and around the
# TTLs (12 h + 12 h lands exactly on 24 h; 24 h + 24 h exactly on 48 h).
GAPS = (
    60, 7 * 60, 25 * 60, 59 * 60, 3600, 2 * 3600, 3 * 3600, 6 * 3600, 12 * 3600,
    24 * 3600, 24 * 3600 + 1, 30 * 3600, 48 * 3600, 48 * 3600 + 1, 50 * 3600,
)


def make_item(source_id: str, sold: bool, price: int) -> Item:
    return Item(
        source_id=source_id,
        title=f"グッズ {source_id}" if source_id else "no id",
        price=price,
        item_url=f"https://jp.mercari.com/item/{source_id}" if source_id else "",
        status=ItemStatus.SOLD if sold else ItemStatus.ON_SALE,
    )


@st.composite
def crawl_items(draw) -> tuple[Item, ...]:
    """One crawl's reports: a few pool items, some reported twice in the same crawl (a repeated
    page, or on sale and then sold between the two phases), some without a source id."""
    reports: list[Item] = []
    for source_id in draw(st.lists(st.sampled_from(POOL), unique=True, max_size=6)):
        keep_price = draw(st.integers(0, 3)) > 0
        price = USUAL_PRICE[source_id] if keep_price else draw(st.sampled_from(PRICES))
        shape = draw(st.sampled_from(("on_sale", "on_sale", "sold", "sold", "twice", "sold_between")))
        if shape == "sold_between":
            sold_price = price if draw(st.booleans()) else draw(st.sampled_from(PRICES))
            reports += [make_item(source_id, False, price), make_item(source_id, True, sold_price)]
        elif shape == "twice":
            item = make_item(source_id, draw(st.booleans()), price)
            reports += [item, item]
        else:
            reports.append(make_item(source_id, shape == "sold", price))
    if draw(st.integers(0, 5)) == 0:
        reports.append(make_item("", draw(st.booleans()), 500))
    return tuple(draw(st.permutations(reports)))


@dataclasses.dataclass(frozen=True)
class PlannedCrawl:
    gap: int  # seconds after the IP's previous crawl
    items: tuple[Item, ...]
    error: str = ""


@st.composite
def planned_crawl(draw, with_failures: bool = True) -> PlannedCrawl:
    gap = draw(st.sampled_from(GAPS))
    kinds = ["ok"] * 8 + ["no_items"] + (["failed"] if with_failures else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "no_items":
        return PlannedCrawl(gap, (), "no_items")
    items = draw(crawl_items())
    return PlannedCrawl(gap, items, "blocked: all pages failed" if kind == "failed" else "")


def crawl_sequences(min_size: int = 1, max_size: int = 12, with_failures: bool = True):
    return st.lists(planned_crawl(with_failures), min_size=min_size, max_size=max_size)


# --------------------------------------------------------------------------------------------
# Harness: what a caller of observe_crawl keeps (the stored states) — as ingest does
# --------------------------------------------------------------------------------------------


class Tracker:
    """Keeps the states observe_crawl returns and hands them back on the next crawl."""

    def __init__(self, ttl: ItemTTL = ItemTTL()):
        self.ttl = ttl
        self.states: dict[str, ItemState] = {}

    def crawl(self, at: datetime, items: Iterable[Item]):
        items = tuple(items)
        reported = {i.source_id for i in items if i.source_id}
        known = {sid: s for sid, s in self.states.items() if sid in reported}
        # Computed here from the stored states with plain arithmetic, not with the code under test.
        other_live = any(
            at - s.last_seen <= (self.ttl.sold if s.status is Availability.SOLD else self.ttl.available)
            for sid, s in self.states.items()
            if sid not in reported
        )
        outcome = observe_crawl(known, items, at, self.ttl, other_live)
        for o in outcome.observations:
            self.states[o.item.source_id] = o.state
        return outcome


def transitions_of(outcome) -> dict[str, Transition | None]:
    return {o.item.source_id: o.transition for o in outcome.observations}


def on_sale(source_id: str, price: int = 1000) -> Item:
    return make_item(source_id, False, price)


def sold(source_id: str, price: int = 1000) -> Item:
    return make_item(source_id, True, price)


H = timedelta(hours=1)
S = timedelta(seconds=1)


# --------------------------------------------------------------------------------------------
# Examples: one per rule
# --------------------------------------------------------------------------------------------


def test_first_crawl_is_a_baseline_that_records_states_but_counts_nothing():
    tracker = Tracker()
    outcome = tracker.crawl(T0, [on_sale("m1", 500), sold("m2", 800)])
    assert outcome.baseline
    assert (outcome.inflow, outcome.outflow) == (0, 0)
    assert transitions_of(outcome) == {"m1": None, "m2": None}
    assert tracker.states["m1"] == ItemState(Availability.AVAILABLE, 500, T0, T0, None)
    assert tracker.states["m2"].status is Availability.SOLD
    assert tracker.states["m2"].price == 800
    # the next crawl is measured against the baseline
    second = tracker.crawl(T0 + H, [on_sale("m1", 500), sold("m2", 800), on_sale("m3")])
    assert not second.baseline
    assert transitions_of(second) == {"m1": None, "m2": None, "m3": Transition.NEW_LISTING}
    assert (second.inflow, second.outflow) == (1, 0)


def test_a_baseline_with_nothing_reported_still_counts_nothing():
    tracker = Tracker()
    assert tracker.crawl(T0, []).baseline
    # nothing was recorded, so the next crawl is the baseline again
    assert tracker.crawl(T0 + H, [on_sale("m1")]).baseline


def test_new_listing_counts_inflow():
    tracker = Tracker()
    tracker.crawl(T0, [on_sale("m1")])
    outcome = tracker.crawl(T0 + H, [on_sale("m1"), on_sale("m2", 700)])
    assert transitions_of(outcome)["m2"] is Transition.NEW_LISTING
    assert (outcome.inflow, outcome.outflow) == (1, 0)
    assert tracker.states["m2"] == ItemState(Availability.AVAILABLE, 700, T0 + H, T0 + H, None)


def test_new_sold_is_listed_and_sold_between_two_crawls_and_counts_outflow():
    tracker = Tracker()
    tracker.crawl(T0, [on_sale("m1")])
    outcome = tracker.crawl(T0 + H, [sold("m9", 1200)])
    assert transitions_of(outcome) == {"m9": Transition.NEW_SOLD}
    assert (outcome.inflow, outcome.outflow) == (0, 1)
    assert tracker.states["m9"] == ItemState(Availability.SOLD, 1200, T0 + H, T0 + H, T0 + H)


def test_available_then_sold_counts_outflow_and_keeps_first_seen():
    tracker = Tracker()
    tracker.crawl(T0, [on_sale("m1", 1000)])
    outcome = tracker.crawl(T0 + 2 * H, [sold("m1", 1000)])
    assert transitions_of(outcome) == {"m1": Transition.SOLD}
    assert (outcome.inflow, outcome.outflow) == (0, 1)
    assert tracker.states["m1"] == ItemState(Availability.SOLD, 1000, T0, T0 + 2 * H, T0 + 2 * H)


def test_sold_seen_again_as_sold_changes_nothing_and_keeps_sold_at():
    tracker = Tracker()
    tracker.crawl(T0, [on_sale("m1")])
    tracker.crawl(T0 + H, [sold("m1")])
    outcome = tracker.crawl(T0 + 2 * H, [sold("m1")])
    assert transitions_of(outcome) == {"m1": None}
    assert (outcome.inflow, outcome.outflow) == (0, 0)
    assert tracker.states["m1"].sold_at == T0 + H
    assert tracker.states["m1"].last_seen == T0 + 2 * H


def test_relisted_counts_nothing_and_clears_sold_at():
    tracker = Tracker()
    tracker.crawl(T0, [on_sale("m1")])
    tracker.crawl(T0 + H, [sold("m1")])
    outcome = tracker.crawl(T0 + 2 * H, [on_sale("m1", 900)])
    assert transitions_of(outcome) == {"m1": Transition.RELISTED}
    assert (outcome.inflow, outcome.outflow) == (0, 0)
    assert tracker.states["m1"] == ItemState(Availability.AVAILABLE, 900, T0, T0 + 2 * H, None)


def test_price_change_counts_nothing_and_same_price_is_no_transition():
    tracker = Tracker()
    tracker.crawl(T0, [on_sale("m1", 1000)])
    same = tracker.crawl(T0 + H, [on_sale("m1", 1000)])
    assert transitions_of(same) == {"m1": None}
    changed = tracker.crawl(T0 + 2 * H, [on_sale("m1", 850)])
    assert transitions_of(changed) == {"m1": Transition.PRICE_CHANGE}
    assert (changed.inflow, changed.outflow) == (0, 0)
    assert tracker.states["m1"].price == 850
    assert tracker.states["m1"].first_seen == T0


def test_available_state_lives_exactly_24_hours_of_crawl_time():
    tracker = Tracker()
    tracker.crawl(T0, [on_sale("anchor"), on_sale("m1", 1000)])
    # the anchor keeps the IP live, so these are not baselines
    tracker.crawl(T0 + 12 * H, [on_sale("anchor")])
    at_limit = tracker.crawl(T0 + 24 * H, [on_sale("anchor"), on_sale("m1", 1200)])
    assert transitions_of(at_limit)["m1"] is Transition.PRICE_CHANGE  # still remembered
    assert at_limit.inflow == 0
    assert tracker.states["m1"].first_seen == T0

    other = Tracker()
    other.crawl(T0, [on_sale("anchor"), on_sale("m1", 1000)])
    other.crawl(T0 + 12 * H, [on_sale("anchor")])
    past_limit = other.crawl(T0 + 24 * H + S, [on_sale("anchor"), on_sale("m1", 1000)])
    assert transitions_of(past_limit)["m1"] is Transition.NEW_LISTING  # forgotten: new again
    assert past_limit.inflow == 1
    assert other.states["m1"].first_seen == T0 + 24 * H + S


def test_available_item_sold_after_its_state_expired_is_a_new_sold():
    tracker = Tracker()
    tracker.crawl(T0, [on_sale("anchor"), on_sale("m1")])
    tracker.crawl(T0 + 20 * H, [on_sale("anchor")])
    outcome = tracker.crawl(T0 + 25 * H, [on_sale("anchor"), sold("m1")])
    assert transitions_of(outcome)["m1"] is Transition.NEW_SOLD
    assert tracker.states["m1"].first_seen == T0 + 25 * H


def test_sold_state_lives_exactly_48_hours_of_crawl_time():
    def run(gap: timedelta, report: Item):
        tracker = Tracker()
        tracker.crawl(T0, [on_sale("anchor"), on_sale("m1")])
        tracker.crawl(T0 + H, [on_sale("anchor"), sold("m1")])
        for hours in range(13, 48, 12):  # keep the anchor (available, 24 h) refreshed
            tracker.crawl(T0 + hours * H, [on_sale("anchor")])
        return tracker, tracker.crawl(T0 + H + gap, [on_sale("anchor"), report])

    tracker, still_sold = run(48 * H, sold("m1"))
    assert transitions_of(still_sold)["m1"] is None
    assert still_sold.outflow == 0
    assert tracker.states["m1"].sold_at == T0 + H

    tracker, sold_again = run(48 * H + S, sold("m1"))
    assert transitions_of(sold_again)["m1"] is Transition.NEW_SOLD  # forgotten: counted again
    assert sold_again.outflow == 1
    assert tracker.states["m1"].first_seen == T0 + 49 * H + S

    _, relisted = run(48 * H, on_sale("m1"))
    assert transitions_of(relisted)["m1"] is Transition.RELISTED
    _, listed_anew = run(48 * H + S, on_sale("m1"))
    assert transitions_of(listed_anew)["m1"] is Transition.NEW_LISTING
    assert listed_anew.inflow == 1


def test_a_crawl_after_every_state_expired_is_a_baseline_again():
    tracker = Tracker()
    tracker.crawl(T0, [on_sale("m1"), sold("m2")])
    tracker.crawl(T0 + H, [on_sale("m1"), sold("m2")])
    # the available state died 24 h after T0 + 1 h, the sold one 48 h after
    after_expiry = tracker.crawl(T0 + 49 * H + S, [on_sale("m3")])
    assert after_expiry.baseline
    assert after_expiry.inflow == 0
    tracker2 = Tracker()
    tracker2.crawl(T0, [on_sale("m1"), sold("m2")])
    tracker2.crawl(T0 + H, [on_sale("m1"), sold("m2")])
    not_yet = tracker2.crawl(T0 + 49 * H, [on_sale("m3")])  # the sold state still lives
    assert not not_yet.baseline
    assert not_yet.inflow == 1


def test_expiry_is_measured_on_crawl_times_not_the_wall_clock():
    # T0 is years in the past: judged on the wall clock every state would be dead, and a
    # replay of old results would count everything as new again.
    tracker = Tracker()
    tracker.crawl(T0, [on_sale("m1", 1000)])
    outcome = tracker.crawl(T0 + 23 * H, [on_sale("m1", 1000), on_sale("m2")])
    assert not outcome.baseline
    assert transitions_of(outcome) == {"m1": None, "m2": Transition.NEW_LISTING}


def test_item_reported_on_sale_and_sold_in_one_crawl_is_one_sold_observation():
    for order in ((on_sale("m1", 1000), sold("m1", 950)), (sold("m1", 950), on_sale("m1", 1000))):
        tracker = Tracker()
        tracker.crawl(T0, [on_sale("m1", 1000), on_sale("m0")])
        outcome = tracker.crawl(T0 + H, order)
        assert len(outcome.observations) == 1
        assert transitions_of(outcome) == {"m1": Transition.SOLD}
        assert (outcome.inflow, outcome.outflow) == (0, 1)
        assert tracker.states["m1"].status is Availability.SOLD
        assert tracker.states["m1"].price == 950


def test_never_seen_item_on_sale_and_sold_in_one_crawl_counts_once_as_new_sold():
    tracker = Tracker()
    tracker.crawl(T0, [on_sale("m0")])
    outcome = tracker.crawl(T0 + H, [on_sale("m5", 400), sold("m5", 400), on_sale("m5", 400)])
    assert transitions_of(outcome) == {"m5": Transition.NEW_SOLD}
    assert (outcome.inflow, outcome.outflow) == (0, 1)
    assert (outcome.on_sale_count, outcome.sold_count) == (0, 1)


def test_same_report_twice_in_one_crawl_counts_once():
    tracker = Tracker()
    tracker.crawl(T0, [on_sale("m0")])
    outcome = tracker.crawl(T0 + H, [on_sale("m1"), on_sale("m1"), sold("m2"), sold("m2")])
    assert (outcome.inflow, outcome.outflow) == (1, 1)
    assert len(outcome.observations) == 2


def test_items_without_source_id_are_skipped():
    tracker = Tracker()
    tracker.crawl(T0, [on_sale("m0")])
    outcome = tracker.crawl(T0 + H, [on_sale(""), sold(""), on_sale("m1")])
    assert [o.item.source_id for o in outcome.observations] == ["m1"]
    assert (outcome.inflow, outcome.outflow) == (1, 0)
    assert "" not in tracker.states


def test_crawl_of_only_unidentified_items_on_a_new_ip_is_a_baseline_with_nothing():
    outcome = Tracker().crawl(T0, [on_sale(""), sold("")])
    assert outcome.baseline
    assert outcome.observations == ()


def test_custom_ttls_are_honoured():
    tracker = Tracker(ItemTTL(available=timedelta(hours=2), sold=timedelta(hours=3)))
    tracker.crawl(T0, [on_sale("anchor"), on_sale("m1")])
    tracker.crawl(T0 + 2 * H, [on_sale("anchor")])
    outcome = tracker.crawl(T0 + 3 * H, [on_sale("anchor"), on_sale("m1")])
    assert transitions_of(outcome)["m1"] is Transition.NEW_LISTING


def test_on_sale_and_sold_counts_of_a_crawl():
    tracker = Tracker()
    outcome = tracker.crawl(T0, [on_sale("m1"), on_sale("m2"), sold("m3"), on_sale("m3"), on_sale("")])
    assert (outcome.on_sale_count, outcome.sold_count) == (2, 1)


# --------------------------------------------------------------------------------------------
# The model against the code, over random crawl sequences
# --------------------------------------------------------------------------------------------


def _as_model_state(state: ItemState) -> ModelState:
    return ModelState(state.status.value, state.price, state.first_seen, state.last_seen, state.sold_at)


@settings(max_examples=400, deadline=None)
@given(crawl_sequences(max_size=15, with_failures=False), st.integers(0, 3599))
def test_observe_crawl_agrees_with_the_reference_model(plan, start_offset):
    tracker, model = Tracker(), MarketModel()
    at = T0 + timedelta(seconds=start_offset)
    for number, step in enumerate(plan):
        at += timedelta(seconds=step.gap)
        outcome = tracker.crawl(at, step.items)
        expected = model.crawl(1, f"task-{number}", at, step.items, step.error)
        where = f"crawl {number} at {at.isoformat()}"
        assert outcome.baseline == expected.baseline, where
        assert {sid: (t.value if t else None) for sid, t in transitions_of(outcome).items()} == expected.transitions, where
        assert (outcome.inflow, outcome.outflow) == (expected.inflow, expected.outflow), where
        assert outcome.on_sale_count == expected.on_sale, where
        for o in outcome.observations:
            assert _as_model_state(o.state) == model.state(1, o.item.source_id), f"{where}, {o.item.source_id}"
    assert {sid: _as_model_state(s) for sid, s in tracker.states.items()} == {
        sid: s for (_, sid), s in model.states().items()
    }


def test_the_model_itself_on_a_known_story():
    """Guard the reference model with a hand-computed story, so it cannot drift into agreeing
    with anything."""
    model = MarketModel()
    first = model.crawl(1, "a", T0, [on_sale("m1", 300), sold("m2", 500)])
    assert first.baseline and (first.inflow, first.outflow) == (0, 0)
    second = model.crawl(1, "b", T0 + 10 * timedelta(minutes=1), [sold("m1", 300), on_sale("m3", 0), sold("m4", 2000)])
    assert second.transitions == {"m1": "sold", "m3": "new_listing", "m4": "new_sold"}
    model.crawl(1, "c", T0 + 20 * timedelta(minutes=1), [], error="blocked")
    assert model.crawl(1, "b", T0, []).applied is False
    hour = model.hours()[(1, T0)]
    assert (hour.inflow, hour.outflow, hour.crawl_count, hour.active_count) == (1, 2, 2, 1)
    assert hour.liquidity_index == Decimal("2.0000")
    assert (hour.sample_count, hour.min_price, hour.max_price, hour.min_item) == (2, 300, 2000, "m1")
    assert hour.avg_price == Decimal("1150.00")
    assert model.state(1, "m1") == ModelState("sold", 300, T0, T0 + 10 * timedelta(minutes=1), T0 + 10 * timedelta(minutes=1))
    assert model.alerts() == set()
