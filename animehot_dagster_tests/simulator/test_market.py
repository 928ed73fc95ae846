"""The market model: deterministic, Poisson per hour, a daily cycle, surges, pages in created
order, and ground truth that agrees with what the search shows."""

from __future__ import annotations

import dataclasses
import re
import statistics

import numpy as np
import pytest

from animehot_dagster.simulator.market import (
    ALL_STATUSES,
    DAILY_ACTIVITY,
    HOUR,
    PAGE_SIZE,
    SOLD_STATUSES,
    ItemStatus,
    KeywordProfile,
    Market,
    Realism,
    Surge,
)

# The plain-filter search: tests of the market itself (strict created order, full pages of 120,
# truth equal to what the search shows) use it; the realistic search is tested in test_realism.
PLAIN = Realism.off()

# 2026-01-05T00:00:00+09:00, a Monday at midnight in Japan: whole hours and days line up.
MONDAY_JST = 1_767_538_800
BUSY = KeywordProfile(keyword="鬼滅の刃", listings_per_hour=60, shop_fraction=0.08, no_price_fraction=0.05)
FLAT = KeywordProfile(keyword="flat market", listings_per_hour=40, daily_cycle=0)


def all_pages(market: Market, keyword: str, as_of: int, statuses=ALL_STATUSES) -> list:
    listings, page = [], 0
    while True:
        result = market.search(keyword, as_of, statuses, page)
        listings.extend(result.listings)
        if not result.has_next:
            return listings
        page += 1


def test_the_same_seed_gives_the_same_market_whatever_order_it_is_asked_in():
    as_of = MONDAY_JST + 5 * 24 * HOUR + 1234
    first, second = Market([BUSY], seed=7), Market([BUSY], seed=7)
    # The second market generates hours in another order (truth first, far in the past).
    truth_second = second.truth(BUSY.keyword, as_of - 48 * HOUR, as_of)
    pages_first = [first.search(BUSY.keyword, as_of, ALL_STATUSES, page) for page in range(3)]
    pages_second = [second.search(BUSY.keyword, as_of, ALL_STATUSES, page) for page in range(3)]
    assert pages_first == pages_second
    assert first.truth(BUSY.keyword, as_of - 48 * HOUR, as_of) == truth_second
    other = Market([BUSY], seed=8).search(BUSY.keyword, as_of)
    assert {item.source_id for item in other.listings}.isdisjoint(item.source_id for item in pages_first[0].listings)


def test_keywords_match_loosely_and_unknown_keywords_have_no_market():
    market = Market([BUSY, dataclasses.replace(FLAT, keyword="Fate/Grand  Order")], seed=1)
    as_of = MONDAY_JST + 3 * 24 * HOUR
    assert market.search("ｆａｔｅ/grand order", as_of).num_found == market.search("Fate/Grand Order", as_of).num_found > 0
    assert market.search("存在しないキーワード", as_of).num_found == 0
    assert all(h.created == h.sold == 0 for h in market.truth("存在しないキーワード", as_of - 5 * HOUR, as_of))


def test_listings_per_hour_are_poisson_with_the_profiles_mean():
    hours = 1500
    counts = [h.created for h in Market([FLAT], seed=3).truth(FLAT.keyword, MONDAY_JST, MONDAY_JST + hours * HOUR)]
    mean, variance = statistics.fmean(counts), statistics.variance(counts)
    standard_error = (FLAT.listings_per_hour / hours) ** 0.5
    assert abs(mean - FLAT.listings_per_hour) < 4 * standard_error
    # A Poisson count's variance equals its mean; the dispersion index's SE here is ~0.037.
    assert 0.85 < variance / mean < 1.15


def test_listings_follow_the_japan_time_daily_cycle():
    days = 60
    truth = Market([BUSY], seed=4).truth(BUSY.keyword, MONDAY_JST, MONDAY_JST + days * 24 * HOUR)
    by_hour_of_day = np.array([h.created for h in truth]).reshape(days, 24)  # starts at 0h JST
    means = by_hour_of_day.mean(axis=0)
    expected = BUSY.listings_per_hour * DAILY_ACTIVITY
    assert np.all(np.abs(means - expected) < 5 * np.sqrt(expected / days))
    evening, before_dawn = means[20:23].mean(), means[3:6].mean()
    assert evening > 5 * before_dawn


def test_a_surge_multiplies_listings_and_sales_inside_its_window_only():
    window_start = MONDAY_JST + 10 * 24 * HOUR + 12 * HOUR
    surge = Surge(start=window_start, end=window_start + 6 * HOUR, listing_multiplier=4, sale_multiplier=5)
    surging = Market([dataclasses.replace(BUSY, surges=(surge,))], seed=5)
    calm = Market([BUSY], seed=5)
    in_window = surging.truth(BUSY.keyword, surge.start, surge.end)
    normal = calm.truth(BUSY.keyword, surge.start, surge.end)
    ratio_created = sum(h.created for h in in_window) / sum(h.created for h in normal)
    ratio_sold = sum(h.sold for h in in_window) / sum(h.sold for h in normal)
    assert 3.3 < ratio_created < 4.8
    assert ratio_sold > 2.5  # faster selling, and more listings to sell
    before = (surge.start - 24 * HOUR, surge.start - 18 * HOUR)
    assert surging.truth(BUSY.keyword, *before) == calm.truth(BUSY.keyword, *before)


def test_pages_are_disjoint_newest_created_first_and_tokens_walk_them():
    market = Market([BUSY], seed=6, realism=PLAIN)
    as_of = MONDAY_JST + 8 * 24 * HOUR + 1800
    pages = [market.search(BUSY.keyword, as_of, frozenset({ItemStatus.ON_SALE}), page) for page in range(4)]
    assert all(len(p.listings) == PAGE_SIZE and p.has_next for p in pages)
    assert len({p.num_found for p in pages}) == 1
    listings = [item for p in pages for item in p.listings]
    assert len({item.source_id for item in listings}) == len(listings)
    created = [item.created for item in listings]
    assert created == sorted(created, reverse=True)
    assert all(item.status is ItemStatus.ON_SALE and item.created <= as_of for item in listings)
    last_page = pages[0].num_found // PAGE_SIZE
    beyond = market.search(BUSY.keyword, as_of, frozenset({ItemStatus.ON_SALE}), last_page + 1)
    assert beyond.listings == () and not beyond.has_next


def test_sold_results_are_ordered_by_creation_not_by_sale():
    market = Market([BUSY], seed=6, horizon_hours=7 * 24, realism=PLAIN)
    as_of = MONDAY_JST + 8 * 24 * HOUR + 1800
    sold = [item for page in range(5) for item in market.search(BUSY.keyword, as_of, SOLD_STATUSES, page).listings]
    assert {item.status for item in sold} == SOLD_STATUSES
    assert [item.created for item in sold] == sorted((item.created for item in sold), reverse=True)
    trading_sale_times = [item.updated for item in sold if item.status is ItemStatus.TRADING]
    assert trading_sale_times != sorted(trading_sale_times, reverse=True)
    # An item created long ago that sells now sorts below every newer sold item.
    all_sold = all_pages(market, BUSY.keyword, as_of, SOLD_STATUSES)
    just_sold_old = [
        i for i, item in enumerate(all_sold) if item.status is ItemStatus.TRADING and item.updated > as_of - HOUR
    ]
    assert any(i >= 5 * PAGE_SIZE for i in just_sold_old)


def test_listings_look_like_mercari_items():
    market = Market([BUSY], seed=9, horizon_hours=48)
    as_of = MONDAY_JST + 4 * 24 * HOUR
    listings = all_pages(market, BUSY.keyword, as_of)
    assert len({item.source_id for item in listings}) == len(listings)
    shops = [item for item in listings if item.is_shop]
    mercari = [item for item in listings if not item.is_shop]
    assert all(re.fullmatch(r"m[1-9]\d{10}", item.source_id) and item.api_id == item.source_id for item in mercari)
    assert all(re.fullmatch(r"shops_[0-9A-Za-z]{22}", item.source_id) for item in shops)
    assert all(
        item.url_path == f"/shops/product/{item.api_id}" and item.source_id == f"shops_{item.api_id}" for item in shops
    )
    assert 0.05 < len(shops) / len(listings) < 0.11
    no_price = [item for item in listings if item.price == 9_999_999]
    assert 0.03 < len(no_price) / len(listings) < 0.07
    priced = [item.price for item in listings if item.price != 9_999_999]
    assert min(priced) >= 300 and 1400 < statistics.median(priced) < 2800
    assert all(BUSY.keyword in item.title for item in listings)
    assert all(bool(item.buyer_id) == item.is_sold for item in listings)


def test_truth_counts_the_listings_the_search_shows_created_in_each_hour():
    # Nothing is withdrawn, so every listing created by as_of is still in the results.
    keeps = KeywordProfile(keyword="keep", listings_per_hour=15, sell_probability=1, mean_hours_to_sell=6)
    market = Market([keeps], seed=11, horizon_hours=72, realism=PLAIN)
    as_of = MONDAY_JST + 5 * 24 * HOUR - 1  # the last second of an hour
    listings = all_pages(market, keeps.keyword, as_of)
    truth = market.truth(keeps.keyword, as_of + 1 - 24 * HOUR, as_of + 1)
    for hour in truth:
        shown = [item for item in listings if hour.hour_start <= item.created < hour.hour_start + HOUR]
        assert len(shown) == hour.created


def test_truth_counts_the_sales_that_move_items_into_the_sold_results():
    # Sales come within hours, far inside the horizon: no sale is lost to ageing out.
    quick = dataclasses.replace(BUSY, mean_hours_to_sell=6)
    market = Market([quick], seed=12, horizon_hours=72, realism=PLAIN)
    end_of_day = MONDAY_JST + 6 * 24 * HOUR
    truth = market.truth(quick.keyword, end_of_day - 6 * HOUR, end_of_day)
    for hour in truth:
        sold_before = {i.source_id for i in all_pages(market, quick.keyword, hour.hour_start - 1, SOLD_STATUSES)}
        sold_after = {i.source_id for i in all_pages(market, quick.keyword, hour.hour_start + HOUR - 1, SOLD_STATUSES)}
        assert len(sold_after - sold_before) == hour.sold
        assert hour.sold > 0


def test_profiles_reject_impossible_rates():
    with pytest.raises(ValueError, match="sell_probability"):
        KeywordProfile(keyword="x", listings_per_hour=1, sell_probability=1.5)
    with pytest.raises(ValueError, match="price_median"):
        KeywordProfile(keyword="x", listings_per_hour=1, price_median=10)
    with pytest.raises(ValueError, match="end after"):
        Surge(start=10, end=10)
