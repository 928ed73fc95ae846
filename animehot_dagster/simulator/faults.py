"""Which requests the simulator answers with a block, a delay or a dropped connection.

Rules are tried in order; the first that matches a request and fires answers it. A rule can
target a keyword (deterministic: every request for it), a surface (web page or API), a fraction
of requests (drawn from a seeded generator, so a run is repeatable given the same request
order), or only the next N matching requests.
"""

from __future__ import annotations

import dataclasses
import enum
import random
from collections.abc import Iterable, Mapping

from animehot_dagster.simulator.market import normalize_keyword


class FaultKind(enum.Enum):
    FORBIDDEN = "forbidden"  # HTTP 403
    RATE_LIMITED = "rate_limited"  # HTTP 429 with Retry-After
    CLOUDFLARE = "cloudflare"  # "Just a moment..." interstitial with a challenge iframe
    CAPTCHA = "captcha"  # a reCAPTCHA page
    HCAPTCHA = "hcaptcha"  # an hCaptcha page
    BLANK = "blank"  # 200 with an empty body
    SLOW = "slow"  # the normal answer, after a delay
    DROP = "drop"  # the socket closed without a response


# What --fault-rate injects when no kinds are named: every block a crawler must recognise.
BLOCKING_KINDS = (
    FaultKind.FORBIDDEN,
    FaultKind.RATE_LIMITED,
    FaultKind.CLOUDFLARE,
    FaultKind.CAPTCHA,
    FaultKind.HCAPTCHA,
    FaultKind.BLANK,
)


class Surface(enum.Enum):
    WEB = "web"
    API = "api"


@dataclasses.dataclass(frozen=True)
class FaultRule:
    kinds: tuple[FaultKind, ...]  # one is picked at random when there are several
    keyword: str | None = None  # None: any keyword
    surface: Surface | None = None  # None: both
    rate: float = 1.0  # fraction of matching requests it fires on
    count: int | None = None  # fires this many times, then never again; None: no limit
    delay_seconds: float = 5.0  # for SLOW

    def __post_init__(self) -> None:
        if not self.kinds:
            raise ValueError("a fault rule needs at least one kind")
        if not 0 <= self.rate <= 1:
            raise ValueError("a fault rule's rate must be within 0..1")
        if self.count is not None and self.count < 0:
            raise ValueError("a fault rule's count cannot be negative")
        if self.delay_seconds < 0:
            raise ValueError("a fault rule's delay_seconds cannot be negative")

    @classmethod
    def from_dict(cls, data: Mapping) -> FaultRule:
        """From the scenario / admin JSON form: ``{"kinds": ["captcha"], "keyword": …}``
        (``kind`` for a single kind)."""
        known = {"kind", "kinds", "keyword", "surface", "rate", "count", "delay_seconds"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault rule fields {sorted(unknown)} (known: {sorted(known)})")
        names = data.get("kinds", [data["kind"]] if "kind" in data else [])
        if isinstance(names, str):
            names = [names]
        try:
            kinds = tuple(FaultKind(name) for name in names)
            surface = Surface(data["surface"]) if data.get("surface") else None
        except ValueError as exc:
            raise ValueError(f"{exc} (kinds: {[k.value for k in FaultKind]}; surfaces: web, api)") from None
        keyword = data.get("keyword")
        return cls(
            kinds=kinds,
            keyword=normalize_keyword(keyword) if keyword else None,
            surface=surface,
            rate=float(data.get("rate", 1.0)),
            count=None if data.get("count") is None else int(data["count"]),
            delay_seconds=float(data.get("delay_seconds", 5.0)),
        )

    def as_dict(self) -> dict:
        return {
            "kinds": [kind.value for kind in self.kinds],
            "keyword": self.keyword,
            "surface": self.surface.value if self.surface else None,
            "rate": self.rate,
            "count": self.count,
            "delay_seconds": self.delay_seconds,
        }

    def matches(self, surface: Surface, keyword: str | None) -> bool:
        if self.surface is not None and self.surface is not surface:
            return False
        return self.keyword is None or (keyword is not None and normalize_keyword(keyword) == self.keyword)


@dataclasses.dataclass(frozen=True)
class Fault:
    kind: FaultKind
    delay_seconds: float


class FaultPlan:
    """The active rules and how many firings each has left."""

    def __init__(self, rules: Iterable[FaultRule] = (), seed: int = 0) -> None:
        self._random = random.Random(seed)
        self._rules: list[FaultRule] = []
        self._remaining: list[int | None] = []
        self.replace(rules)

    def replace(self, rules: Iterable[FaultRule]) -> None:
        self._rules = list(rules)
        self._remaining = [rule.count for rule in self._rules]

    def describe(self) -> list[dict]:
        return [rule.as_dict() | {"remaining": left} for rule, left in zip(self._rules, self._remaining, strict=True)]

    def fault_for(self, surface: Surface, keyword: str | None) -> Fault | None:
        for index, rule in enumerate(self._rules):
            if self._remaining[index] == 0 or not rule.matches(surface, keyword):
                continue
            if rule.rate < 1 and self._random.random() >= rule.rate:
                continue
            if self._remaining[index] is not None:
                self._remaining[index] -= 1
            kind = rule.kinds[0] if len(rule.kinds) == 1 else self._random.choice(rule.kinds)
            return Fault(kind=kind, delay_seconds=rule.delay_seconds)
        return None
