"""An hour's figures: liquidity index, hot score and the prices of what sold (SPEC §1, §2)."""

from __future__ import annotations

import dataclasses
import itertools
import math
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from animehot_dagster.domain.scores import (
    NO_PRICE,
    PricedItem,
    hot_score,
    hour_row_problems,
    liquidity_index,
    price_stats,
)

# ------------------------------------------------------------------------------ liquidity


@pytest.mark.parametrize("outflow", [0, 1, 57])
def test_liquidity_is_null_when_nothing_was_listed(outflow):
    assert liquidity_index(0, outflow) is None


@pytest.mark.parametrize(
    "inflow, outflow, expected",
    [
        (10, 5, "0.5000"),
        (3, 1, "0.3333"),
        (3, 2, "0.6667"),  # half up at the fifth place
        (7, 22, "3.1429"),
        (4, 0, "0.0000"),
        (1, 1, "1.0000"),
        (20000, 1, "0.0001"),  # 0.00005 rounds up
        (40000, 1, "0.0000"),  # 0.000025 rounds down
        (1, 9999, "9999.0000"),  # fits DECIMAL(8,4)
    ],
)
def test_liquidity_is_outflow_over_inflow_to_four_places(inflow, outflow, expected):
    value = liquidity_index(inflow, outflow)
    assert value == Decimal(expected)
    assert value.as_tuple().exponent == -4


# ------------------------------------------------------------------------------ hot score


@pytest.mark.parametrize(
    "inflow, outflow",
    [(0, 0), (0, 1), (10, 5), (5, 10), (100, 120), (1, 0), (0, 1000)],
)
def test_hot_score_formula(inflow, outflow):
    assert hot_score(inflow, outflow) == pytest.approx((outflow + 1) / (inflow + 1) * math.log(outflow + 1), rel=1e-12)


def test_hot_score_known_values():
    assert hot_score(0, 0) == 0.0  # nothing sold: ln(1) = 0
    assert hot_score(50, 0) == 0.0
    assert hot_score(9, 4) == pytest.approx(0.5 * math.log(5))
    assert hot_score(0, 1) == pytest.approx(2 * math.log(2))


def test_selling_more_of_fewer_listings_is_hotter():
    assert hot_score(10, 20) > hot_score(10, 10) > hot_score(20, 10)


@given(st.integers(0, 10_000), st.integers(0, 10_000))
def test_hot_score_is_never_negative_and_grows_with_outflow(inflow, outflow):
    assert hot_score(inflow, outflow) >= 0
    assert hot_score(inflow, outflow + 1) > hot_score(inflow, outflow)


# ------------------------------------------------------------------------------ price stats


def item(source_id: str, price: int) -> PricedItem:
    return PricedItem(source_id=source_id, title=f"title {source_id}", price=price, item_url=f"https://jp.mercari.com/item/{source_id}")


def test_price_stats_of_an_hour():
    stats = price_stats([item("m1", 100), item("m2", 200), item("m3", 300), item("m4", 400)])
    assert stats.sample_count == 4
    assert stats.avg == Decimal("250.00")
    assert stats.median == Decimal("250.00")
    assert (stats.min, stats.max) == (100, 400)
    # population standard deviation: sqrt(((150² + 50²) × 2) / 4) = 111.803…
    assert stats.stddev == Decimal("111.80")
    assert stats.min_item == item("m1", 100)
    assert stats.max_item == item("m4", 400)


def test_median_of_an_odd_count_and_rounding_of_the_mean():
    stats = price_stats([item("a", 1000), item("b", 300), item("c", 301)])
    assert stats.median == Decimal("301.00")
    assert stats.avg == Decimal("533.67")  # 533.666…
    assert stats.stddev == Decimal("329.75")  # population 329.7477…, not sample (403.86)


def test_single_sale_has_zero_spread():
    stats = price_stats([item("m1", 1234)])
    assert (stats.sample_count, stats.avg, stats.median, stats.stddev) == (1, Decimal("1234.00"), Decimal("1234.00"), Decimal("0.00"))
    assert stats.min_item == stats.max_item == item("m1", 1234)


def test_items_without_a_real_price_are_left_out():
    stats = price_stats([item("free", 0), item("m1", 500), item("noprice", NO_PRICE), item("m2", 1500)])
    assert NO_PRICE == 9_999_999
    assert stats.sample_count == 2
    assert (stats.min, stats.max) == (500, 1500)
    assert stats.avg == Decimal("1000.00")
    assert stats.max_item.source_id == "m2"


def test_only_unpriced_sales_give_no_stats():
    stats = price_stats([item("a", 0), item("b", NO_PRICE)])
    assert stats.sample_count == 0
    assert (stats.avg, stats.median, stats.min, stats.max, stats.stddev, stats.min_item, stats.max_item) == (None,) * 7
    assert price_stats([]).sample_count == 0


def test_highest_real_price_is_kept():
    assert price_stats([item("a", NO_PRICE - 1)]).max == NO_PRICE - 1


def test_ties_for_cheapest_and_dearest_go_to_the_smallest_source_id_in_any_order():
    sold = [item("m3", 500), item("m1", 500), item("m9", 2000), item("m2", 2000), item("m5", 900)]
    for order in itertools.permutations(sold):
        stats = price_stats(order)
        assert stats.min_item.source_id == "m1"
        assert stats.max_item.source_id == "m2"


def test_priced_item_json_carries_what_the_api_shows():
    assert item("m1", 700).as_json() == {
        "source_id": "m1",
        "title": "title m1",
        "price": 700,
        "item_url": "https://jp.mercari.com/item/m1",
        "image_url": "",
    }


@given(st.lists(st.integers(1, NO_PRICE - 1), min_size=1, max_size=30))
def test_price_stats_against_exact_arithmetic(prices):
    stats = price_stats([item(f"m{n}", p) for n, p in enumerate(prices)])
    ordered = sorted(prices)
    n = len(ordered)
    exact_mean = Decimal(sum(ordered)) / Decimal(n)
    mid = n // 2
    exact_median = Decimal(ordered[mid]) if n % 2 else (Decimal(ordered[mid - 1]) + Decimal(ordered[mid])) / 2
    variance = sum((Decimal(p) - exact_mean) ** 2 for p in ordered) / Decimal(n)
    assert stats.sample_count == n
    assert (stats.min, stats.max) == (ordered[0], ordered[-1])
    assert abs(stats.avg - exact_mean) <= Decimal("0.005")
    assert abs(stats.median - exact_median) <= Decimal("0.005")
    assert abs(stats.stddev - variance.sqrt()) <= Decimal("0.006")


# ------------------------------------------------------------------------------ a stored hour against its facts


@dataclasses.dataclass(frozen=True)
class Row:
    inflow: int = 40
    outflow: int = 10
    crawl_count: int = 2
    active_count: int = 300
    liquidity_index: Decimal | None = Decimal("0.2500")


FACTS = Row()


def test_a_row_equal_to_its_facts_is_consistent():
    assert hour_row_problems(Row(), FACTS) == []
    assert hour_row_problems(Row(inflow=0, outflow=3, liquidity_index=None), Row(inflow=0, outflow=3)) == []
    assert hour_row_problems(None, None) == []  # nothing observed, nothing stored


@pytest.mark.parametrize(
    "row, facts, problems",
    [
        (Row(active_count=-1), FACTS, ["negative count"]),
        (Row(liquidity_index=Decimal("0.3000")), FACTS, ["liquidity index 0.3000 is not 10/40"]),
        (Row(inflow=0, outflow=0, liquidity_index=Decimal(0)), Row(inflow=0, outflow=0),
         ["liquidity index 0 is not 0/0"]),  # NULL at inflow 0, never 0
        (Row(crawl_count=3), FACTS, ["row differs from its facts"]),
        (Row(), None, ["row differs from its facts"]),  # a row with no crawl behind it
        (None, FACTS, ["row missing"]),
        (Row(outflow=-10, liquidity_index=Decimal("-0.2500")), FACTS, ["negative count", "row differs from its facts"]),
    ],
)
def test_a_row_that_recomputing_would_not_write_is_inconsistent(row, facts, problems):
    assert hour_row_problems(row, facts) == problems
