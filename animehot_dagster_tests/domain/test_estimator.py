"""Event-time figures (SPEC §4.1): the pure estimator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from animehot_dagster.domain.estimator import (
    CountedCrawl,
    HourFacts,
    Quality,
    apportion,
    event_time_figures,
    round_in_hour,
    sales_between,
    unseen_listings,
    visible_share,
)

H = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def crawl(minutes: int, sold: int, on_sale: int = 500, **fields) -> CountedCrawl:
    return CountedCrawl(H + minutes * MIN, found_on_sale=on_sale, found_sold=sold, **fields)


@pytest.mark.parametrize("amount", [0, 1, 7, 100, 999])
def test_apportioned_parts_add_up_to_the_amount(amount):
    start, end = H + 20 * MIN, H + 4 * 60 * MIN + 5 * MIN
    parts = [apportion(amount, start, end, H + i * 60 * MIN) for i in range(-1, 6)]
    assert sum(parts) == amount
    assert parts[0] == 0 and parts[-1] == 0  # nothing outside [start, end)


def test_sales_are_spread_over_the_hours_between_two_crawls_in_proportion_to_time():
    # 120 sales between 03:30 and 05:30: a quarter in the 03 hour, half in 04, a quarter in 05.
    crawls = (crawl(30, 1000), crawl(150, 1120))
    outflows = [
        event_time_figures(HourFacts(H + i * 60 * MIN, crawls, listed=0, baseline_at=H - 60 * MIN)).outflow
        for i in range(3)
    ]
    assert outflows == [30, 60, 30]


def test_a_falling_sold_count_is_no_negative_sale():
    assert sales_between(crawl(0, 1000), crawl(60, 990)) == 0
    assert sales_between(crawl(0, 1000), crawl(60, 1003)) == 3


def test_a_count_crossing_the_exact_range_gives_the_sales_the_pages_served():
    # 19 counted exactly (2 filtered listings left out), then 22 with them: one sale, not three.
    assert sales_between(crawl(0, 19, served_sold=19), crawl(60, 22, served_sold=20)) == 1
    # And back: two filtered listings fewer in the count hide a sale.
    assert sales_between(crawl(0, 21, served_sold=19), crawl(60, 19, served_sold=20)) == 1
    # Within one counting rule the count tells, wherever the sales lie in the list.
    assert sales_between(crawl(0, 21, served_sold=19), crawl(60, 24, served_sold=19)) == 3
    assert sales_between(crawl(0, 12, served_sold=12), crawl(60, 14, served_sold=14)) == 2
    # Results of nodes that do not report what they served keep the count's growth.
    assert sales_between(crawl(0, 19), crawl(60, 22)) == 3


def test_inflow_is_the_listings_of_the_hour_scaled_by_the_share_the_pages_served():
    crawls = (crawl(-10, 0), crawl(70, 0, visible_share=0.97))
    figures = event_time_figures(HourFacts(H, crawls, listed=97, baseline_at=H - 60 * MIN))
    assert figures.inflow == 100
    assert figures.quality is Quality.COUNTED


def test_a_small_hourly_count_scaled_by_the_share_is_rounded_without_bias():
    # 3 listings an hour at a share of 0.97 are 3.09: rounded to 3 every hour, a day lost 2.2.
    hours = [H + i * 60 * MIN for i in range(24 * 7)]
    scaled = [round_in_hour(3 / 0.97, hour) for hour in hours]
    assert set(scaled) == {3, 4}
    assert abs(sum(scaled) - 24 * 7 * 3 / 0.97) < 1
    for day in range(7):  # each day's roundings cancel out too
        assert abs(sum(scaled[day * 24 : (day + 1) * 24]) - 24 * 3 / 0.97) < 1
    assert [round_in_hour(5.0, hour) for hour in hours] == [5] * len(hours)  # whole numbers stay
    assert round_in_hour(3 / 0.97, H) == round_in_hour(3 / 0.97, H)


def test_visible_share_is_read_off_full_sold_pages_and_the_whole_on_sale_results():
    assert visible_share(117, 5000, 0, 0, True, 120) == pytest.approx(117 / 120)
    assert visible_share(580, 5000, 0, 0, True, 120) == pytest.approx(580 / 600)
    # Both tell: pooled, the larger sample weighing more.
    assert visible_share(119, 1000, 291, 296, False, 120) == pytest.approx((119 + 291) / (120 + 296))
    # A short sold page tells nothing (its count may hold listings no page serves any more) …
    assert visible_share(40, 5000, 68, 70, False, 120) == pytest.approx(68 / 70)
    # … nor does a cut on-sale phase, nor small counts, which are exact.
    assert visible_share(40, 5000, 600, 900, True, 120) == 1.0
    assert visible_share(5, 19, 19, 19, False, 120) == 1.0
    assert visible_share(0, 0, 0, 0, False, 120) == 1.0


def test_an_hour_not_yet_closed_by_a_crawl_is_a_lower_bound():
    crawls = (crawl(-50, 100), crawl(20, 110))  # the last crawl is inside the hour
    assert event_time_figures(HourFacts(H, crawls, listed=5, baseline_at=H - 120 * MIN)).quality is Quality.LOWER_BOUND
    closed = (*crawls, crawl(80, 115))
    assert event_time_figures(HourFacts(H, closed, listed=5, baseline_at=H - 120 * MIN)).quality is Quality.COUNTED


def test_the_hour_of_the_baseline_is_a_lower_bound():
    crawls = (crawl(20, 100), crawl(80, 110))
    assert event_time_figures(HourFacts(H, crawls, listed=3, baseline_at=H + 20 * MIN)).quality is Quality.LOWER_BOUND


def test_a_cut_on_sale_window_is_extrapolated_back_to_the_previous_crawl_and_marked_estimated():
    # The window of the 05:00 crawl reached back to 04:00 only, with 600 listings in that hour;
    # nothing was seen between 03:00 (the previous crawl) and 04:00: 600 more are estimated.
    previous = crawl(0, 0)
    current = crawl(120, 0, on_sale_boundary=H + 60 * MIN, listed_in_window=600, listed_before_window=0)
    assert unseen_listings(previous, current) == 600
    figures = event_time_figures(HourFacts(H, (previous, current), listed=0, baseline_at=H - 60 * MIN))
    assert figures.inflow == 600 and figures.quality is Quality.ESTIMATED
    # What a later crawl did see of the gap is not estimated twice.
    seen = crawl(120, 0, on_sale_boundary=H + 60 * MIN, listed_in_window=600, listed_before_window=450)
    assert unseen_listings(previous, seen) == 150


def test_a_window_that_reached_the_previous_crawl_estimates_nothing():
    previous = crawl(0, 0)
    reached = crawl(120, 0, on_sale_boundary=H - 5 * MIN, listed_in_window=600)
    assert unseen_listings(previous, reached) == 0
    assert unseen_listings(previous, crawl(120, 0)) == 0


def test_the_active_count_is_the_last_result_count_seen_in_the_hour():
    crawls = (crawl(-30, 0, on_sale=400), crawl(20, 0, on_sale=420), crawl(70, 0, on_sale=450))
    assert event_time_figures(HourFacts(H, crawls, listed=0, baseline_at=H - 90 * MIN)).active_count == 420


def test_quality_order():
    assert Quality.worst(Quality.EXACT, Quality.COUNTED) is Quality.COUNTED
    assert Quality.worst(Quality.ESTIMATED, Quality.LOWER_BOUND, Quality.COUNTED) is Quality.LOWER_BOUND
