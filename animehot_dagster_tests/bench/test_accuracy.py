"""The accuracy harness (bench.accuracy) on a tiny scenario: a day of hourly crawls of a
quiet IP and of an IP far too hot for a one-page window, through the real crawler, simulator,
cadence and ingest into MariaDB."""

from __future__ import annotations

import pytest

from animehot_dagster_tests.conftest import fresh_mysql_database
from bench import accuracy as harness

# Slow (the accuracy harness): left out of `make test-fast`.
pytestmark = pytest.mark.slow

WINDOW = 120  # one page per phase

SCENARIO = """
start: 2026-03-02T00:00:00+09:00
days: 1
settings:
  SCHEDULER_BASE_INTERVAL: 1h
  SCHEDULER_MIN_INTERVAL: 1h
  SCHEDULER_MAX_INTERVAL: 1h
  SCHEDULER_PAGES_ON_SALE: 1
  SCHEDULER_PAGES_SOLD: 1
ips:
  quiet: {name_en: quiet}
  hot: {name_en: hot}
market:
  seed: 7
  horizon_days: 2
  realism: off  # a plain-filter search: the quiet IP's window sees every event exactly
  keywords:
    quiet: {listings_per_hour: 3, sell_probability: 0.5, mean_hours_to_sell: 48, mean_hours_to_withdraw: 500}
    hot: {listings_per_hour: 1500, mean_hours_to_sell: 20}
"""


def _run(tmp_path_factory, method: str) -> dict:
    path = tmp_path_factory.mktemp("accuracy") / "tiny.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    with fresh_mysql_database("animehot_accuracy") as url:
        result = harness.run(harness.load_bench_scenario(path), [url], workers=1, method=harness.Method(method))
    return {ip["keyword"]: ip for ip in result["ips"]} | {"overall": result["overall"]}


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    """The window method (SPEC §4 alone), whose known errors these tests pin down."""
    return _run(tmp_path_factory, "window")


@pytest.fixture(scope="module")
def event_report(tmp_path_factory) -> dict:
    """The event-time method (SPEC §4.1) on the same market and page budget."""
    return _run(tmp_path_factory, "event")


def test_event_time_figures_put_a_quiet_market_in_its_own_hours(event_report):
    series = event_report["quiet"]["series"]
    # Listings in the hour of their creation (the baseline is at 00:00:00, so every hour counts);
    # one that is withdrawn before a crawl sees it is lost, nothing else.
    lost = [t - m for m, t in zip(series["measured_inflow"], series["truth_inflow"], strict=True)]
    assert all(0 <= n <= 1 for n in lost) and sum(lost) <= 2
    # Sales from the sold count, between crawls an hour apart on the hour: the hour itself.
    assert sum(series["measured_outflow"]) == sum(series["truth_outflow"])
    assert all(abs(m - t) <= 1 for m, t in zip(series["measured_outflow"], series["truth_outflow"], strict=True))


def test_event_time_figures_estimate_what_a_saturated_window_missed(event_report):
    hot = event_report["hot"]
    # One page of 120 for 1,500 listings an hour: the rest is carried back from the window's rate.
    assert abs(hot["inflow"]["rel_error_24h"]) < 0.1
    assert abs(hot["outflow"]["rel_error_24h"]) < 0.02
    assert event_report["overall"]["quality_shares"].get("estimated", 0) > 0.4
    assert event_report["overall"]["hot_rank_spearman"] is None or event_report["overall"]["hot_rank_spearman"] > 0


def test_a_quiet_market_crawled_on_the_hour_is_measured_exactly_one_hour_late(report):
    quiet = report["quiet"]
    series = quiet["series"]
    assert quiet["crawls"] == 24 and quiet["saturation_rate"] == 0
    # The first crawl is at 00:00:00 and each one counts the hour before it into its own hour.
    assert series["measured_outflow"][1:] == series["truth_outflow"][:-1]
    assert series["measured_outflow"][0] == 0  # the baseline counts nothing
    # A listing that sells or is withdrawn before any crawl sees it is never inflow.
    lost = [t - m for m, t in zip(series["measured_inflow"][1:], series["truth_inflow"][:-1], strict=True)]
    assert all(0 <= n <= 1 for n in lost)


def test_a_market_hotter_than_the_window_is_flagged_saturated_and_undercounted(report):
    hot = report["hot"]
    series = hot["series"]
    assert hot["saturation_rate"] >= 0.9
    assert max(series["measured_inflow"]) <= WINDOW  # one crawl an hour, one page of new listings
    assert sum(series["measured_inflow"]) < 0.2 * sum(series["truth_inflow"])
    for measured, truth in zip(series["measured_outflow"][1:], series["truth_outflow"][:-1], strict=True):
        assert measured <= truth
    assert hot["inflow"]["rel_error_24h"] < -0.8


def test_the_report_carries_the_headline_figures(report):
    overall = report["overall"]
    for key in ("inflow_24h_rel_error", "outflow_24h_rel_error", "inflow_hourly_mae", "outflow_hourly_mae",
                "inflow_hourly_correlation_median", "saturation_rate", "crawls", "wall_seconds"):
        assert key in overall
    assert overall["crawls"] == 48

