"""The search's departures from a plain filter of the market (market.Realism), each against the
same market with realism off: the result count a few per cent above what the pages serve, full
pages short of 120, edited listings among the newest, transaction-stamped sold times, the index
delay, deleted sold listings and the sold count they lower; and the truth unchanged by all of it."""

from __future__ import annotations

import numpy as np
import pytest

from animehot_dagster.simulator.market import (
    HOUR,
    PAGE_SIZE,
    SOLD_STATUSES,
    TRANSACTION_GRID_SECONDS,
    ItemStatus,
    KeywordProfile,
    Market,
    Realism,
    normalize_keyword,
)

MONDAY_JST = 1_767_538_800
BUSY = KeywordProfile(keyword="鬼滅の刃", listings_per_hour=60, shop_fraction=0.08)
FEW = KeywordProfile(keyword="ひっそり", listings_per_hour=0.3, sell_probability=0.3)
ON_SALE = frozenset({ItemStatus.ON_SALE})
AS_OF = MONDAY_JST + 8 * 24 * HOUR + 1800
SEED = 6


def all_pages(market: Market, keyword: str, as_of: int, statuses) -> list:
    listings, page = [], 0
    while True:
        result = market.search(keyword, as_of, statuses, page)
        listings.extend(result.listings)
        if not result.has_next:
            return listings
        page += 1


@pytest.fixture(scope="module")
def real() -> Market:
    return Market([BUSY, FEW], seed=SEED, horizon_hours=72)


@pytest.fixture(scope="module")
def plain() -> Market:
    return Market([BUSY, FEW], seed=SEED, horizon_hours=72, realism=Realism.off())


def test_the_count_exceeds_what_the_pages_serve_by_a_few_per_cent_above_19_results(real, plain):
    for statuses in (ON_SALE, SOLD_STATUSES):
        served = all_pages(real, BUSY.keyword, AS_OF, statuses)
        counted = real.search(BUSY.keyword, AS_OF, statuses).num_found
        assert counted > 19 and 1.01 < counted / len(served) < 1.07
        # The plain search serves what it counts.
        assert len(all_pages(plain, BUSY.keyword, AS_OF, statuses)) == plain.search(BUSY.keyword, AS_OF, statuses).num_found


def test_the_count_is_exact_at_19_results_and_fewer(real):
    few = [real.search(FEW.keyword, AS_OF - day * 24 * HOUR).num_found for day in range(4)]
    assert all(0 < n <= 19 for n in few)
    for day in range(4):
        as_of = AS_OF - day * 24 * HOUR
        assert real.search(FEW.keyword, as_of).num_found == len(real.search(FEW.keyword, as_of).listings)


def test_the_sold_count_is_exact_only_while_the_whole_count_is_19_or_fewer():
    # Sales older than the horizon are counted, not served. With them a quiet keyword's count is
    # above 19 although fewer than 20 of its sold listings are served: the filtered ones count.
    def sold_count(hidden_fraction: float, as_of: int) -> int:
        market = Market([FEW], seed=SEED, horizon_hours=72, realism=Realism(hidden_fraction=hidden_fraction),
                        sold_count_origin=AS_OF - 30 * 24 * HOUR)
        return market.search(FEW.keyword, as_of, SOLD_STATUSES).num_found

    for day in range(3):
        as_of = AS_OF + day * 24 * HOUR
        served_in_horizon = len(all_pages(Market([FEW], seed=SEED, horizon_hours=72), FEW.keyword, as_of, SOLD_STATUSES))
        counted = sold_count(0.0, as_of)
        assert served_in_horizon <= 19 < counted
        assert sold_count(1.0, as_of) == counted  # every listing filtered from the pages, all counted


def test_full_pages_hold_fewer_than_120_yet_a_next_page_follows(real):
    pages = [real.search(BUSY.keyword, AS_OF, ON_SALE, page) for page in range(4)]
    assert all(p.has_next for p in pages)
    assert all(110 <= len(p.listings) < PAGE_SIZE for p in pages)
    assert 116 <= np.mean([len(p.listings) for p in pages]) <= 119


def test_an_edited_listing_is_served_among_the_newest_with_its_edit_time_and_a_lower_price(real, plain):
    first = real.search(BUSY.keyword, AS_OF, ON_SALE).listings
    # The sort is by the later of listing and edit: updated for an edited listing.
    keys = [item.updated for item in first]
    assert keys == sorted(keys, reverse=True)
    edited = [item for item in first if item.created < AS_OF - 24 * HOUR]
    assert edited, "no listing a day old among the newest page"
    assert all(item.updated > item.created and item.updated > first[-1].updated - 1 for item in edited)
    unedited = {item.source_id: item for item in all_pages(plain, BUSY.keyword, AS_OF, ON_SALE)}
    for item in edited:
        before = unedited[item.source_id]
        assert before.updated == before.created == item.created
        assert item.price < before.price or before.price == 9_999_999
    # The plain search keeps them where their listing time puts them: far below the first page.
    plain_first = {item.source_id for item in plain.search(BUSY.keyword, AS_OF, ON_SALE).listings}
    assert plain_first.isdisjoint(item.source_id for item in edited)


def test_a_sold_items_updated_is_a_transaction_event_on_the_ten_minute_grid_not_the_sale(real, plain):
    sold = all_pages(real, BUSY.keyword, AS_OF, SOLD_STATUSES)
    assert all(item.updated % TRANSACTION_GRID_SECONDS == 0 or item.updated == item.created for item in sold)
    sale_times = {item.source_id: item.updated for item in all_pages(plain, BUSY.keyword, AS_OF, SOLD_STATUSES)}
    differs = [item for item in sold if item.updated != sale_times[item.source_id]]
    assert len(differs) > 0.8 * len(sold)
    # Items settled together share one stamp.
    stamps = [item.updated for item in sold]
    assert len(set(stamps)) < len(stamps)


def test_a_new_listing_is_absent_from_search_for_its_first_60_seconds(real, plain):
    newest = plain.search(BUSY.keyword, AS_OF, ON_SALE).listings[:20]
    visible = 0
    for item in newest:
        before = {i.source_id for i in real.search(BUSY.keyword, item.created + 59, ON_SALE).listings}
        after = {i.source_id for i in real.search(BUSY.keyword, item.created + 60, ON_SALE).listings}
        assert item.source_id not in before
        visible += item.source_id in after
    assert visible >= 15  # all but the few hidden ones


def test_a_deleted_sold_listing_leaves_the_sold_results_and_their_count(real):
    early, late = AS_OF - 24 * HOUR, AS_OF
    sold_early = {i.source_id: i for i in all_pages(real, BUSY.keyword, early, SOLD_STATUSES)}
    sold_late = {i.source_id for i in all_pages(real, BUSY.keyword, late, SOLD_STATUSES)}
    # Still inside the horizon at `late`: a sold listing that left the results was deleted.
    gone = [sid for sid, item in sold_early.items() if item.created > late - 72 * HOUR and sid not in sold_late]
    assert gone
    assert len(gone) < 0.05 * len(sold_early)


def deletions_between(market: Market, keyword: str, origin: int, start: int, end: int) -> int:
    """Sold listings created since ``origin`` whose seller deleted them in (start, end]."""
    key = normalize_keyword(keyword)
    deleted = 0
    for hour in range(origin // HOUR, end // HOUR + 1):
        at = market._hour(key, hour).deleted_at
        deleted += int(np.count_nonzero((at > start) & (at <= end)))
    return deleted


@pytest.mark.parametrize("realism", [Realism(), Realism.off()], ids=["on", "off"])
def test_the_sold_counts_change_is_the_sales_minus_the_deletions_in_between(realism):
    horizon = 72
    origin = MONDAY_JST + 2 * 24 * HOUR
    market = Market([BUSY], seed=SEED, horizon_hours=horizon, realism=realism, sold_count_origin=origin)
    # From a horizon after the origin on, the count keeps the sold listings the pages age out.
    for start_hour in (origin + (horizon + 8) * HOUR, origin + 5 * 24 * HOUR + 7 * HOUR):
        start, end = start_hour - 1, start_hour + 12 * HOUR - 1
        change = (
            market.search(BUSY.keyword, end, SOLD_STATUSES).num_found
            - market.search(BUSY.keyword, start, SOLD_STATUSES).num_found
        )
        sales = sum(h.sold for h in market.truth(BUSY.keyword, start + 1, end + 1))
        deleted = deletions_between(market, BUSY.keyword, origin, start, end)
        assert sales > 100
        assert change == sales - deleted
        if realism == Realism.off():
            assert deleted == 0 and change == sales
        else:
            assert deleted > 0


def test_the_truth_is_the_same_with_realism_on_or_off(real, plain):
    for keyword in (BUSY.keyword, FEW.keyword):
        start = AS_OF - 5 * 24 * HOUR
        assert real.truth(keyword, start, AS_OF) == plain.truth(keyword, start, AS_OF)
