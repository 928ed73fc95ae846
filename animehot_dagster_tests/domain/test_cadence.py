"""Cadence rules (SPEC §5): interval steps, clamp, weight, next crawl time, schedule rebuild."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from animehot_dagster.domain.cadence import FRESHNESS_SLACK, Activity, CadencePolicy, decide, rebuild_schedule

MIN = timedelta(minutes=1)
DEFAULT = CadencePolicy()  # base 2 h, clamp [1 h, 2 h], 5 + 5 pages
NOW = datetime(2026, 11, 2, 3, 7, 30, tzinfo=UTC)


def minutes(n: int) -> timedelta:
    return n * MIN


# ------------------------------------------------------------------------------ classification


@pytest.mark.parametrize(
    "inflow, outflow, activity",
    [
        (501, 0, Activity.ACTIVE),  # inflow > 100 × 5 pages on sale
        (0, 501, Activity.ACTIVE),  # outflow > 100 × 5 pages sold
        (500, 500, Activity.NORMAL),  # exactly at the active limits: not active
        (249, 14, Activity.COLD),  # inflow < 50 × 5 and outflow < 3 × 5
        (250, 0, Activity.NORMAL),
        (0, 15, Activity.NORMAL),
        (0, 0, Activity.COLD),
        (300, 20, Activity.NORMAL),
        (600, 0, Activity.ACTIVE),
    ],
)
def test_classify_with_the_default_pages(inflow, outflow, activity):
    assert DEFAULT.classify(inflow, outflow) is activity


def test_classify_scales_with_the_pages_asked():
    policy = CadencePolicy(pages_on_sale=2, pages_sold=1)
    assert policy.classify(201, 0) is Activity.ACTIVE
    assert policy.classify(200, 0) is Activity.NORMAL
    assert policy.classify(0, 101) is Activity.ACTIVE
    assert policy.classify(99, 2) is Activity.COLD
    assert policy.classify(100, 2) is Activity.NORMAL
    assert policy.classify(99, 3) is Activity.NORMAL


# ------------------------------------------------------------------------------ steps and clamp


@pytest.mark.parametrize(
    "current, activity, expected",
    [
        (120, Activity.ACTIVE, 105),
        (105, Activity.ACTIVE, 90),
        (70, Activity.ACTIVE, 60),  # clamped at the minimum
        (60, Activity.ACTIVE, 60),
        (60, Activity.COLD, 75),
        (110, Activity.COLD, 120),  # clamped at the maximum
        (120, Activity.COLD, 120),
        (60, Activity.NORMAL, 65),  # 5 minutes back toward the base (2 h)
        (117, Activity.NORMAL, 120),  # less than 5 minutes away: lands on the base
        (120, Activity.NORMAL, 120),
    ],
)
def test_interval_steps_with_the_defaults(current, activity, expected):
    assert DEFAULT.next_interval(minutes(current), activity) == minutes(expected)


def test_normal_moves_toward_the_base_from_either_side():
    policy = CadencePolicy(base_interval=timedelta(minutes=90))
    assert policy.next_interval(minutes(120), Activity.NORMAL) == minutes(115)
    assert policy.next_interval(minutes(60), Activity.NORMAL) == minutes(65)
    assert policy.next_interval(minutes(88), Activity.NORMAL) == minutes(90)
    assert policy.next_interval(minutes(93), Activity.NORMAL) == minutes(90)
    assert policy.next_interval(minutes(90), Activity.NORMAL) == minutes(90)


def test_normal_never_leaves_the_clamp_even_when_the_base_is_outside_it():
    policy = CadencePolicy(base_interval=timedelta(hours=4), min_interval=timedelta(hours=1), max_interval=timedelta(hours=2))
    assert policy.next_interval(minutes(118), Activity.NORMAL) == minutes(120)
    assert policy.next_interval(minutes(120), Activity.NORMAL) == minutes(120)


def test_clamp():
    assert DEFAULT.clamp(minutes(30)) == minutes(60)
    assert DEFAULT.clamp(minutes(300)) == minutes(120)
    assert DEFAULT.clamp(minutes(75)) == minutes(75)


@pytest.mark.parametrize(
    "weight, interval",
    [
        (Decimal("1.00"), 120),  # base / 1
        (Decimal("2.00"), 60),
        (Decimal("1.50"), 80),
        (Decimal("0.50"), 120),  # 240 min, clamped to the maximum
        (Decimal("5.00"), 60),  # 24 min, clamped to the minimum
        (Decimal("1.14"), 105),  # 105.26 rounds to whole minutes
        (1.6, 75),
    ],
)
def test_interval_for_weight(weight, interval):
    assert DEFAULT.interval_for_weight(weight) == minutes(interval)


def test_non_positive_weight_gets_the_longest_interval():
    assert DEFAULT.interval_for_weight(Decimal("0")) == minutes(120)
    assert DEFAULT.interval_for_weight(-1) == minutes(120)


def test_weight_is_base_over_interval_to_two_places():
    assert DEFAULT.weight_for_interval(minutes(120)) == Decimal("1.00")
    assert DEFAULT.weight_for_interval(minutes(60)) == Decimal("2.00")
    assert DEFAULT.weight_for_interval(minutes(105)) == Decimal("1.14")
    assert DEFAULT.weight_for_interval(minutes(90)) == Decimal("1.33")
    assert DEFAULT.weight_for_interval(minutes(70)) == Decimal("1.71")


@pytest.mark.parametrize("whole_minutes", range(60, 121))
def test_the_interval_the_cadence_set_is_kept_exactly(whole_minutes):
    """Two-decimal weights cannot express every interval (116 min gives 1.03, which reads back
    as 117): the interval the cadence set rules until an operator sets a weight."""
    weight = DEFAULT.weight_for_interval(minutes(whole_minutes))
    assert weight == weight.quantize(Decimal("0.01"))
    assert abs(DEFAULT.interval_for_weight(weight) - minutes(whole_minutes)) <= MIN
    assert DEFAULT.current_interval(weight, whole_minutes) == minutes(whole_minutes)


def test_an_operators_weight_rules_when_no_interval_is_stored():
    assert DEFAULT.current_interval(Decimal("1.60"), None) == minutes(75)
    assert DEFAULT.current_interval(Decimal("1.60"), 200) == minutes(120)  # still clamped


def test_a_long_run_of_cold_and_active_crawls_stays_in_whole_minutes_and_in_the_clamp():
    interval = minutes(120)
    seen = []
    for activity_inputs in [(0, 0)] * 3 + [(600, 0)] * 6 + [(300, 5)] * 4 + [(0, 0)] * 8:
        decision = decide(DEFAULT, interval, *activity_inputs, crawled_at=NOW, now=NOW, measured=True)
        assert decision.interval % MIN == timedelta(0)
        assert minutes(60) <= decision.interval <= minutes(120)
        interval = decision.interval
        seen.append(decision.interval // MIN)
    assert seen == [120, 120, 120, 105, 90, 75, 60, 60, 60, 65, 70, 75, 80, 95, 110, 120, 120, 120, 120, 120, 120]


def test_an_operator_weight_of_1_08_steps_through_116_minutes_without_drift():
    interval = DEFAULT.current_interval(Decimal("1.08"), None)
    assert interval == minutes(111)
    decision = decide(DEFAULT, interval, 300, 5, NOW, now=NOW, measured=True)  # normal: 5 min toward 2 h
    assert decision.interval == minutes(116)
    stored = decision.interval // MIN
    again = decide(DEFAULT, DEFAULT.current_interval(decision.weight, stored), 300, 5, NOW, now=NOW, measured=True)
    assert again.interval == minutes(120)


# ------------------------------------------------------------------------------ decide


def test_decide_after_an_active_crawl():
    crawled_at = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
    decision = decide(DEFAULT, minutes(120), 700, 20, crawled_at, now=crawled_at + timedelta(seconds=5), measured=True)
    assert decision.activity is Activity.ACTIVE
    assert decision.interval == minutes(105)
    assert decision.weight == Decimal("1.14")
    assert decision.next_crawl_at == crawled_at + minutes(105)


def test_decide_after_a_cold_crawl_at_the_maximum():
    decision = decide(DEFAULT, minutes(120), 3, 0, NOW, now=NOW, measured=True)
    assert decision.activity is Activity.COLD
    assert decision.interval == minutes(120)
    assert decision.weight == Decimal("1.00")


def test_unmeasured_crawl_leaves_interval_and_weight_alone():
    # A baseline or failed crawl measured nothing: no new weight (None: keep the stored one),
    # and the next crawl one current interval later.
    decision = decide(DEFAULT, minutes(75), 900, 900, NOW, now=NOW, measured=False)
    assert decision.activity is None
    assert decision.weight is None
    assert decision.interval == minutes(75)
    assert decision.next_crawl_at == NOW + minutes(75)
    # a measured crawl writes base / interval back
    assert decide(DEFAULT, minutes(120), 0, 0, NOW, now=NOW, measured=True).weight == Decimal("1.00")


# ------------------------------------------------------------------------------ next crawl time


def test_next_crawl_is_the_crawl_time_plus_the_interval_without_a_slot():
    crawled_at = datetime(2026, 11, 2, 1, 7, 13, tzinfo=UTC)
    assert DEFAULT.next_crawl_at(crawled_at, minutes(75), now=crawled_at) == crawled_at + minutes(75)


def test_next_crawl_is_aligned_up_to_the_schedule_slot():
    policy = CadencePolicy(schedule_slot=timedelta(minutes=15))
    crawled_at = datetime(2026, 11, 2, 1, 7, 13, tzinfo=UTC)
    assert policy.next_crawl_at(crawled_at, minutes(60), now=crawled_at) == datetime(2026, 11, 2, 2, 15, tzinfo=UTC)
    on_boundary = datetime(2026, 11, 2, 1, 15, tzinfo=UTC)
    assert policy.next_crawl_at(on_boundary, minutes(60), now=on_boundary) == datetime(2026, 11, 2, 2, 15, tzinfo=UTC)
    one_second_past = datetime(2026, 11, 2, 1, 15, 1, tzinfo=UTC)
    assert policy.next_crawl_at(one_second_past, minutes(60), now=one_second_past) == datetime(2026, 11, 2, 2, 30, tzinfo=UTC)


def test_slot_alignment_is_on_the_clock_not_on_the_crawl():
    policy = CadencePolicy(schedule_slot=timedelta(hours=1))
    crawled_at = datetime(2026, 11, 2, 1, 59, 59, tzinfo=UTC)
    aligned = policy.next_crawl_at(crawled_at, minutes(60), now=crawled_at)
    assert aligned == datetime(2026, 11, 2, 3, 0, tzinfo=UTC)
    assert aligned.tzinfo is not None


def test_next_crawl_is_due_at_once_when_already_past_on_processing():
    crawled_at = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
    late = crawled_at + timedelta(hours=5)
    assert DEFAULT.next_crawl_at(crawled_at, minutes(120), now=late) == late
    decision = decide(DEFAULT, minutes(120), 0, 0, crawled_at, now=late, measured=True)
    assert decision.next_crawl_at == late
    # processed in time: the crawl's own time counts, not the processing time
    in_time = crawled_at + timedelta(minutes=3)
    assert DEFAULT.next_crawl_at(crawled_at, minutes(120), now=in_time) == crawled_at + minutes(120)


# ------------------------------------------------------------------------------ rebuild


def test_rebuild_keeps_future_times_and_staggers_the_rest_10_seconds_apart():
    schedule = rebuild_schedule(
        [
            (1, minutes(120), None),  # never crawled
            (2, minutes(120), NOW - minutes(30)),  # due in 90 min
            (3, minutes(60), NOW - minutes(90)),  # already past
            (4, minutes(120), None),
            (5, minutes(80), NOW - minutes(10)),  # due in 70 min
            (6, minutes(120), NOW - timedelta(days=3)),
        ],
        now=NOW,
    )
    assert schedule == [
        (1, NOW),
        (2, NOW + minutes(90)),
        (3, NOW + timedelta(seconds=10)),
        (4, NOW + timedelta(seconds=20)),
        (5, NOW + minutes(70)),
        (6, NOW + timedelta(seconds=30)),
    ]


def test_rebuild_of_many_new_ips_spreads_them_out():
    schedule = rebuild_schedule([(n, minutes(120), None) for n in range(1, 51)], now=NOW)
    times = [at for _, at in schedule]
    assert len(set(times)) == 50
    assert times[-1] - times[0] == timedelta(seconds=490)
    assert all(b - a == timedelta(seconds=10) for a, b in zip(times, times[1:], strict=False))


def test_rebuild_of_nothing_is_empty():
    assert rebuild_schedule([], now=NOW) == []


# ------------------------------------------------------------------------------ freshness


def test_an_ip_is_fresh_up_to_its_interval_and_the_slack():
    # Weight 1: the base interval, two hours; the cadence has set none of its own.
    assert not DEFAULT.is_stale(1, None, NOW - timedelta(hours=2) - FRESHNESS_SLACK, NOW)
    assert not DEFAULT.is_stale(1, 60, NOW - minutes(60) - FRESHNESS_SLACK, NOW)


def test_an_ip_later_than_its_interval_and_the_slack_is_stale():
    assert DEFAULT.is_stale(1, None, NOW - timedelta(hours=2) - FRESHNESS_SLACK - timedelta(seconds=1), NOW)
    # the interval the cadence set rules, not the weight's
    assert DEFAULT.is_stale(1, 60, NOW - minutes(61) - FRESHNESS_SLACK, NOW)


def test_an_ip_never_crawled_is_stale():
    assert DEFAULT.is_stale(1, None, None, NOW)
