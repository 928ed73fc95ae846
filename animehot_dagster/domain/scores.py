"""The figures of an hour: liquidity index, hot score and the prices of what sold."""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal
from typing import Protocol

# Mercari writes 9,999,999 yen for items without a real price.
NO_PRICE = 9_999_999

_FOUR_PLACES = Decimal("0.0001")


def liquidity_index(inflow: int, outflow: int) -> Decimal | None:
    """outflow / inflow to four places (the column is DECIMAL(8,4)); None when inflow is 0."""
    if inflow <= 0:
        return None
    return (Decimal(outflow) / Decimal(inflow)).quantize(_FOUR_PLACES, rounding=ROUND_HALF_UP)


def hot_score(inflow: int, outflow: int) -> float:
    """H = (outflow + 1) / (inflow + 1) × ln(outflow + 1)."""
    return (outflow + 1) / (inflow + 1) * math.log(outflow + 1)


class HourCounts(Protocol):
    inflow: int
    outflow: int
    crawl_count: int


class StoredHour(HourCounts, Protocol):
    active_count: int
    liquidity_index: Decimal | None


def hour_row_problems(row: StoredHour | None, facts: HourCounts | None) -> list[str]:
    """What is wrong with an hour's stored row, given the figures its facts give now (None when
    the hour observed nothing); empty when nothing is. A row is only as good as its facts: a
    missing row is right only for an hour with none, and a stored row must be what recomputing
    it would write, with no negative count."""
    if row is None:
        return [] if facts is None else ["row missing"]
    problems = []
    if row.inflow < 0 or row.outflow < 0 or row.active_count < 0:
        problems.append("negative count")
    if row.liquidity_index != liquidity_index(row.inflow, row.outflow):
        problems.append(f"liquidity index {row.liquidity_index} is not {row.outflow}/{row.inflow}")
    if facts is None or (row.inflow, row.outflow, row.crawl_count) != (facts.inflow, facts.outflow, facts.crawl_count):
        problems.append("row differs from its facts")
    return problems


@dataclasses.dataclass(frozen=True)
class PricedItem:
    source_id: str
    title: str
    price: int
    item_url: str = ""
    image_url: str = ""

    def as_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class PriceStats:
    sample_count: int
    avg: Decimal | None = None
    median: Decimal | None = None
    min: int | None = None
    max: int | None = None
    stddev: Decimal | None = None
    min_item: PricedItem | None = None
    max_item: PricedItem | None = None


def has_price(price: int) -> bool:
    return 0 < price < NO_PRICE


def _money(value: float) -> Decimal:
    return Decimal(repr(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def price_stats(sold: Iterable[PricedItem]) -> PriceStats:
    """Statistics of the items sold in one bucket; items without a real price are left out.

    Ties for the cheapest/dearest item go to the smallest source id, so the result does not
    depend on the order the items arrive in.
    """
    priced = sorted((i for i in sold if has_price(i.price)), key=lambda i: (i.price, i.source_id))
    if not priced:
        return PriceStats(sample_count=0)
    prices = [i.price for i in priced]
    dearest = next(i for i in priced if i.price == prices[-1])
    return PriceStats(
        sample_count=len(prices),
        avg=_money(statistics.fmean(prices)),
        median=_money(statistics.median(prices)),
        min=prices[0],
        max=prices[-1],
        stddev=_money(statistics.pstdev(prices)),
        min_item=priced[0],
        max_item=dearest,
    )
