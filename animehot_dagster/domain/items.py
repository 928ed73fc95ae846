"""The item state machine (SPEC §4): successive crawls of one IP become transitions and counts."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from animehot_dagster.domain.messages import Item


class Availability(enum.Enum):
    AVAILABLE = "on_sale"
    SOLD = "sold"


class Transition(enum.Enum):
    NEW_LISTING = "new_listing"
    NEW_SOLD = "new_sold"
    SOLD = "sold"
    RELISTED = "relisted"
    PRICE_CHANGE = "price_change"


INFLOW_TRANSITIONS = frozenset({Transition.NEW_LISTING})
OUTFLOW_TRANSITIONS = frozenset({Transition.NEW_SOLD, Transition.SOLD})


@dataclasses.dataclass(frozen=True)
class ItemTTL:
    """How long a state lives without being refreshed by a crawl."""

    available: timedelta = timedelta(hours=24)
    sold: timedelta = timedelta(hours=48)


@dataclasses.dataclass(frozen=True)
class ItemState:
    status: Availability
    price: int
    first_seen: datetime
    last_seen: datetime
    sold_at: datetime | None = None

    def is_live(self, at: datetime, ttl: ItemTTL) -> bool:
        """False once the state is older than its TTL, measured on crawl times."""
        limit = ttl.sold if self.status is Availability.SOLD else ttl.available
        return at - self.last_seen <= limit


@dataclasses.dataclass(frozen=True)
class Observation:
    """What one crawl concluded about one item."""

    item: Item
    state: ItemState
    transition: Transition | None


@dataclasses.dataclass(frozen=True)
class CrawlOutcome:
    baseline: bool
    observations: tuple[Observation, ...]

    @property
    def inflow(self) -> int:
        return sum(1 for o in self.observations if o.transition in INFLOW_TRANSITIONS)

    @property
    def outflow(self) -> int:
        return sum(1 for o in self.observations if o.transition in OUTFLOW_TRANSITIONS)

    @property
    def on_sale_count(self) -> int:
        return sum(1 for o in self.observations if o.state.status is Availability.AVAILABLE)

    @property
    def sold_count(self) -> int:
        return sum(1 for o in self.observations if o.state.status is Availability.SOLD)

    @property
    def transitions(self) -> tuple[Observation, ...]:
        return tuple(o for o in self.observations if o.transition is not None)


def collapse_reports(items: Iterable[Item]) -> dict[str, Item]:
    """One report per source id: the sold report wins (the item sold between the on-sale and the
    sold phase), otherwise the last one. Items without a source id are skipped."""
    reports: dict[str, Item] = {}
    for item in items:
        if not item.source_id:
            continue
        previous = reports.get(item.source_id)
        if previous is None or item.is_sold or not previous.is_sold:
            reports[item.source_id] = item
    return reports


def _transition(previous: ItemState | None, item: Item) -> Transition | None:
    if previous is None:
        return Transition.NEW_SOLD if item.is_sold else Transition.NEW_LISTING
    if previous.status is Availability.AVAILABLE:
        if item.is_sold:
            return Transition.SOLD
        return Transition.PRICE_CHANGE if item.price != previous.price else None
    return None if item.is_sold else Transition.RELISTED


def observe_crawl(
    known: Mapping[str, ItemState],
    items: Iterable[Item],
    crawled_at: datetime,
    ttl: ItemTTL,
    other_live_state: bool,
) -> CrawlOutcome:
    """Apply one crawl's reports to the states known for its items.

    ``known`` holds the stored states of the reported items (expired ones included: expiry is
    decided here, on ``crawled_at``). ``other_live_state`` tells whether the IP has a live state
    for any item this crawl did not report; with none at all the crawl is a baseline, which
    records states but counts nothing.
    """
    reports = collapse_reports(items)
    live = {
        source_id: state
        for source_id, state in known.items()
        if source_id in reports and state.is_live(crawled_at, ttl)
    }
    baseline = not live and not other_live_state
    observations = []
    for source_id, item in reports.items():
        previous = live.get(source_id)
        transition = _transition(previous, item)
        status = Availability.SOLD if item.is_sold else Availability.AVAILABLE
        first_seen = crawled_at if previous is None else previous.first_seen
        if transition in OUTFLOW_TRANSITIONS:
            sold_at = crawled_at
        elif status is Availability.AVAILABLE or previous is None:
            sold_at = None
        else:
            sold_at = previous.sold_at
        state = ItemState(status, item.price, first_seen, crawled_at, sold_at)
        observations.append(Observation(item, state, None if baseline else transition))
    return CrawlOutcome(baseline, tuple(observations))
