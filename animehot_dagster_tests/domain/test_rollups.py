"""The rule of the rollup checks (``daily_totals_match_hours``, ``weekly_totals_match_hours``): each
IP's rollup row against the sums of its own hourly rows, not the totals pooled over every IP."""

from __future__ import annotations

import pytest

from animehot_dagster.domain.rollups import IpMismatch, mismatched_ips, pooled

A, B, C = 1, 2, 3


@pytest.mark.parametrize(
    ("rolled", "hourly"),
    [
        ({A: (20, 60), B: (5, 2)}, {A: (20, 60), B: (5, 2)}),  # every IP up to date
        ({}, {}),  # a bucket nobody was crawled in
        ({A: (0, 0)}, {A: (0, 0)}),  # hours without movement still get their row
        ({A: (20, 60), B: (0, 0)}, {A: (20, 60)}),  # a row of zeros without hours misses nothing
    ],
    ids=["equal", "empty", "zero_hours", "zero_row_without_hours"],
)
def test_rollup_rows_equal_to_their_ips_hours_match(rolled, hourly):
    assert mismatched_ips(rolled, hourly) == []


def test_figures_swapped_between_two_ips_mismatch_both_although_the_pooled_totals_agree():
    rolled, hourly = {A: (5, 2), B: (20, 60)}, {A: (20, 60), B: (5, 2)}
    assert pooled(rolled) == pooled(hourly) == (25, 62)
    assert mismatched_ips(rolled, hourly) == [IpMismatch(A, (5, 2), (20, 60)), IpMismatch(B, (20, 60), (5, 2))]


def test_one_ips_row_off_by_a_sale_mismatches_that_ip_only():
    assert mismatched_ips({A: (20, 61), B: (5, 2)}, {A: (20, 60), B: (5, 2)}) == [IpMismatch(A, (20, 61), (20, 60))]


@pytest.mark.parametrize("hours", [(13, 7), (0, 0)], ids=["with_figures", "empty_hours"])
def test_an_ip_with_hours_and_no_rollup_row_mismatches(hours):
    assert mismatched_ips({A: (1, 1)}, {A: (1, 1), B: hours}) == [IpMismatch(B, None, hours)]


def test_a_rollup_row_with_figures_and_no_hours_mismatches():
    assert mismatched_ips({A: (1, 1), C: (0, 4)}, {A: (1, 1)}) == [IpMismatch(C, (0, 4), None)]


def test_mismatches_come_in_ip_order():
    rolled, hourly = {C: (1, 0), A: (1, 0)}, {B: (1, 0)}
    assert [m.ip_id for m in mismatched_ips(rolled, hourly)] == [A, B, C]


def test_pooled_sums_every_ip():
    assert pooled({A: (20, 60), B: (5, 2)}) == (25, 62)
    assert pooled({}) == (0, 0)
