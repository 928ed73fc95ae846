"""Scenario and IP files become keyword profiles and fault rules; bad files are named clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from animehot_dagster.simulator.faults import FaultKind
from animehot_dagster.simulator.scenario import (
    DEFAULT_SCENARIO_PATH,
    ScenarioError,
    load_scenario,
    profile_for_ip,
    profiles_from_ips,
)
from animehot_dagster.simulator.server import load_market_scenario

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def test_the_default_scenario_has_the_sample_ips_and_a_keyword_per_fault_kind():
    scenario = load_scenario(DEFAULT_SCENARIO_PATH)
    sample = json.loads((SHARED_DATA / "ips_sample.json").read_text(encoding="utf-8"))["ips"]
    assert {p.keyword for p in scenario.profiles} == {ip["name"] for ip in sample}
    assert {rule.kinds[0] for rule in scenario.fault_rules} == set(FaultKind)
    assert scenario.horizon_hours == 21 * 24 and scenario.seed is not None


def test_ip_files_give_every_ip_a_market_from_a_handful_a_day_to_hundreds_an_hour():
    profiles = profiles_from_ips(SHARED_DATA / "ips_sample.json") + profiles_from_ips(SHARED_DATA / "ips_hot.json")
    assert profile_for_ip("ちいかわ", 2.0) == profile_for_ip("ちいかわ", 2.0)
    weight_two, weight_one = profile_for_ip("a", 2.0), profile_for_ip("a", 1.0)
    assert weight_two.listings_per_hour == pytest.approx(4 * weight_one.listings_per_hour, rel=1e-3)
    rates = sorted(p.listings_per_hour for p in profiles)
    assert rates[0] < rates[-1] / 20
    quiet = min(profile_for_ip(f"ip-{i}", 0.5).listings_per_hour for i in range(400))
    hot = max(profile_for_ip(f"ip-{i}", 2.0).listings_per_hour for i in range(400))
    assert quiet * 24 < 10 and hot > 300


def test_a_scenario_and_an_ip_file_merge_with_the_scenario_winning(tmp_path):
    scenario = tmp_path / "s.yaml"
    scenario.write_text("keywords:\n  ちいかわ: {listings_per_hour: 3}\n", encoding="utf-8")
    merged = load_market_scenario(scenario, SHARED_DATA / "ips_sample.json")
    by_keyword = {p.keyword: p for p in merged.profiles}
    assert by_keyword["ちいかわ"].listings_per_hour == 3
    assert len(by_keyword) == 10


def test_surge_times_take_rfc3339_or_unix(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(
        json.dumps(
            {
                "keywords": {
                    "k": {
                        "listings_per_hour": 5,
                        "surges": [
                            {"start": "2026-05-01T20:00:00+09:00", "end": 1777647600, "listing_multiplier": 3}
                        ],
                    }
                },
                "faults": [{"keyword": "K", "kind": "captcha", "surface": "web"}],
            }
        ),
        encoding="utf-8",
    )
    scenario = load_scenario(path)
    (surge,) = scenario.profiles[0].surges
    assert (surge.start, surge.end, surge.listing_multiplier) == (1777633200, 1777647600, 3)
    assert scenario.fault_rules[0].keyword == "k"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("keywords:\n  k: {listings_per_hour: 5, colour: red}\n", r"keywords\.k: unknown fields \['colour'\]"),
        ("keywords:\n  k: {price_median: 500}\n", "listings_per_hour is required"),
        ("keywords:\n  k: {listings_per_hour: -1}\n", "listings_per_hour must be within"),
        (
            "keywords:\n  k: {listings_per_hour: 1, surges: [{start: '2026-05-01T20:00:00', end: 1}]}\n",
            "has no UTC offset",
        ),
        ("faults: [{keyword: k, kinds: [meteor]}]\n", r"faults\[0\]: 'meteor' is not a valid FaultKind"),
        ("horizon: 3\n", "unknown fields"),
    ],
)
def test_bad_scenarios_are_refused_with_the_place_named(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ScenarioError, match=message):
        load_scenario(path)
