"""Scenario files: which keywords the simulated market has, how each behaves, and which faults
it serves. YAML or JSON (a JSON file is valid YAML)::

    seed: 7                      # optional; --seed overrides
    horizon_days: 21             # how far back the search index reaches
    realism: {hidden_fraction: 0}   # optional: the search's departures from the market
                                    # (market.Realism; ``realism: off`` for a plain filter)
    keywords:
      初音ミク:
        listings_per_hour: 120   # mean over the day; the daily cycle moves it around
        price_median: 2800
        surges:
          - {start: "2026-05-01T20:00:00+09:00", end: "2026-05-02T02:00:00+09:00",
             listing_multiplier: 3, sale_multiplier: 2}
    faults:
      - {keyword: faulty-captcha, kinds: [captcha]}

Keywords can also come from an IP import file (``{"ips": [{"name", "weight"}, …]}``): each IP
gets a profile derived from its weight and its name (see :func:`profile_for_ip`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path

import yaml

from animehot_dagster.simulator.faults import FaultRule
from animehot_dagster.simulator.market import (
    DEFAULT_HORIZON_HOURS,
    KeywordProfile,
    Realism,
    Surge,
    normalize_keyword,
)

DEFAULT_SCENARIO_PATH = Path(__file__).parent / "scenarios" / "default.yaml"

_PROFILE_FIELDS = {f.name for f in dataclasses.fields(KeywordProfile)} - {"keyword"}
_SURGE_FIELDS = {f.name for f in dataclasses.fields(Surge)}
_REALISM_FIELDS = {f.name for f in dataclasses.fields(Realism)}
_SCENARIO_FIELDS = {"seed", "horizon_days", "keywords", "faults", "realism"}


class ScenarioError(ValueError):
    """A scenario or IP file the simulator cannot use; the message names the place."""


@dataclasses.dataclass(frozen=True)
class Scenario:
    profiles: tuple[KeywordProfile, ...] = ()
    fault_rules: tuple[FaultRule, ...] = ()
    horizon_hours: int = DEFAULT_HORIZON_HOURS
    seed: int | None = None
    realism: Realism = Realism()

    def with_profiles(self, extra: Iterable[KeywordProfile]) -> Scenario:
        """Add profiles for keywords the scenario does not already define (its own win)."""
        known = {normalize_keyword(p.keyword) for p in self.profiles}
        added = tuple(p for p in extra if normalize_keyword(p.keyword) not in known)
        return dataclasses.replace(self, profiles=self.profiles + added)


def parse_time(value: object) -> int:
    """Unix seconds from a number, an RFC 3339 string or a YAML timestamp (with an offset)."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a time")
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(float(text))
        except ValueError:
            pass
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{text!r} is neither unix seconds nor RFC 3339") from None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"{value.isoformat()} has no UTC offset (write it like 2026-05-01T20:00:00+09:00)")
        return int(value.timestamp())
    raise ValueError(f"{value!r} is not a time")


def _surge(data: object, where: str) -> Surge:
    if not isinstance(data, Mapping):
        raise ScenarioError(f"{where}: a surge is a mapping with start, end and multipliers")
    unknown = set(data) - _SURGE_FIELDS
    if unknown:
        raise ScenarioError(f"{where}: unknown surge fields {sorted(unknown)}")
    try:
        return Surge(
            start=parse_time(data.get("start")),
            end=parse_time(data.get("end")),
            listing_multiplier=float(data.get("listing_multiplier", 1.0)),
            sale_multiplier=float(data.get("sale_multiplier", 1.0)),
        )
    except (TypeError, ValueError) as exc:
        raise ScenarioError(f"{where}: {exc}") from None


def profile_from_dict(keyword: str, data: Mapping | None, where: str) -> KeywordProfile:
    data = dict(data or {})
    unknown = set(data) - _PROFILE_FIELDS
    if unknown:
        raise ScenarioError(f"{where}: unknown fields {sorted(unknown)} (known: {sorted(_PROFILE_FIELDS)})")
    if "listings_per_hour" not in data:
        raise ScenarioError(f"{where}: listings_per_hour is required")
    surges = data.pop("surges", None) or []
    try:
        return KeywordProfile(
            keyword=str(keyword),
            surges=tuple(_surge(s, f"{where}.surges[{i}]") for i, s in enumerate(surges)),
            **data,
        )
    except (TypeError, ValueError) as exc:
        raise ScenarioError(f"{where}: {exc}") from None


def realism_from_dict(data: object, where: str) -> Realism:
    if data is False or data == "off":
        return Realism.off()
    if data is None or data is True or data == "on":
        return Realism()
    if not isinstance(data, Mapping):
        raise ScenarioError(f"{where}: realism is on, off or a mapping of {sorted(_REALISM_FIELDS)}")
    unknown = set(data) - _REALISM_FIELDS
    if unknown:
        raise ScenarioError(f"{where}: unknown realism fields {sorted(unknown)} (known: {sorted(_REALISM_FIELDS)})")
    try:
        return Realism(**data)
    except (TypeError, ValueError) as exc:
        raise ScenarioError(f"{where}: {exc}") from None


def scenario_from_dict(data: object, source: str) -> Scenario:
    if not isinstance(data, Mapping):
        raise ScenarioError(f"{source}: a scenario is a mapping (seed, horizon_days, keywords, faults)")
    unknown = set(data) - _SCENARIO_FIELDS
    if unknown:
        raise ScenarioError(f"{source}: unknown fields {sorted(unknown)} (known: {sorted(_SCENARIO_FIELDS)})")
    keywords = data.get("keywords") or {}
    if not isinstance(keywords, Mapping):
        raise ScenarioError(f"{source}: keywords is a mapping of keyword to its profile")
    profiles = tuple(profile_from_dict(k, v, f"{source}: keywords.{k}") for k, v in keywords.items())
    rules = []
    for index, rule in enumerate(data.get("faults") or []):
        try:
            rules.append(FaultRule.from_dict(rule))
        except (TypeError, ValueError, AttributeError) as exc:
            raise ScenarioError(f"{source}: faults[{index}]: {exc}") from None
    horizon_days = data.get("horizon_days", DEFAULT_HORIZON_HOURS / 24)
    if not isinstance(horizon_days, int | float) or horizon_days <= 0:
        raise ScenarioError(f"{source}: horizon_days must be a positive number")
    seed = data.get("seed")
    if seed is not None and (not isinstance(seed, int) or seed < 0):
        raise ScenarioError(f"{source}: seed must be a non-negative whole number")
    return Scenario(
        profiles=profiles,
        fault_rules=tuple(rules),
        horizon_hours=round(horizon_days * 24),
        seed=seed,
        realism=realism_from_dict(data.get("realism"), f"{source}: realism"),
    )


def load_scenario(path: str | Path) -> Scenario:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{path}: {exc}") from None
    return scenario_from_dict(data, str(path))


def _unit_hash(text: str, salt: str) -> float:
    """A stable number in [0, 1) per (text, salt): IPs of equal weight still differ."""
    digest = hashlib.blake2b(f"{salt}\x00{text}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _log_between(low: float, high: float, unit: float) -> float:
    return math.exp(math.log(low) + unit * (math.log(high) - math.log(low)))


def profile_for_ip(name: str, weight: float) -> KeywordProfile:
    """A plausible market for an IP. Weight (0.5 … 2) sets the level, squared so the hottest
    stand well apart; the name spreads IPs of one weight over two orders of magnitude, from a
    handful of listings a day (weight 0.5, quiet) to several hundred an hour (weight 2, hot)."""
    level = 30 * weight**2 * _log_between(1 / 30, 4, _unit_hash(name, "level"))
    return KeywordProfile(
        keyword=name,
        listings_per_hour=round(level, 3),
        price_median=int(round(_log_between(800, 6000, _unit_hash(name, "price")), -1)),
        price_sigma=round(0.6 + 0.5 * _unit_hash(name, "sigma"), 2),
        sell_probability=round(0.35 + 0.4 * _unit_hash(name, "sell"), 2),
        mean_hours_to_sell=round(_log_between(12, 96, _unit_hash(name, "speed")), 1),
    )


def profiles_from_ips(path: str | Path) -> tuple[KeywordProfile, ...]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ScenarioError(f"{path}: {exc}") from None
    ips = data.get("ips") if isinstance(data, Mapping) else data
    if not isinstance(ips, list):
        raise ScenarioError(f"{path}: expected {{\"ips\": [...]}} or a list of IPs")
    profiles = []
    for index, ip in enumerate(ips):
        if not isinstance(ip, Mapping) or not isinstance(ip.get("name"), str) or not ip["name"].strip():
            raise ScenarioError(f"{path}: ips[{index}] has no name")
        weight = ip.get("weight", 1.0)
        if not isinstance(weight, int | float) or weight <= 0:
            raise ScenarioError(f"{path}: ips[{index}] ({ip['name']}): weight must be a positive number")
        profiles.append(profile_for_ip(ip["name"].strip(), float(weight)))
    return tuple(profiles)
