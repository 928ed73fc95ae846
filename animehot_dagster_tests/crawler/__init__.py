"""Shared pieces of the crawler tests: a frozen simulated market served on a real socket, what
it says it served, and crawlers built with fast switching rules.

The fixtures (the simulator and its state, one per test module, and ``market``) are in
``conftest.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from typing import Any

import httpx

from animehot_dagster.crawler.crawl import Crawler, CrawlerConfig
from animehot_dagster.crawler.metrics import CrawlerMetrics
from animehot_dagster.crawler.ratelimit import LocalRateLimiter
from animehot_dagster.crawler.resilience import ResiliencePolicy
from animehot_dagster.domain.messages import CrawlRequest, ItemStatus
from animehot_dagster.simulator.app import SimulatorState
from animehot_dagster.simulator.faults import FaultKind, FaultRule, Surface
from animehot_dagster.simulator.market import HOUR, KeywordProfile, Realism
from animehot_dagster.simulator.scenario import Scenario
from animehot_dagster.simulator.server import SimulatorServer

KEYWORD = "ちいかわ グッズ"  # a space: it must travel as %20
SMALL = "ひっそり"  # under a page of items in each phase: one request per phase
EMPTY = "誰も出品しない"  # the market has no such keyword: an empty result
AS_OF = 1_767_538_800 + 9 * 24 * HOUR + 1500  # 2026-01-14T00:25:00+09:00
PROFILES = (
    KeywordProfile(keyword=KEYWORD, listings_per_hour=60, shop_fraction=0.1, no_price_fraction=0.05),
    KeywordProfile(keyword=SMALL, listings_per_hour=0.6, sell_probability=0.3),
)
# The crawler tests check the crawler against a plain-filter search (full pages of 120, every
# served item reported exactly, a page count known in advance); the search's departures from
# the market (market.Realism) have their own tests against REALISTIC.
SCENARIO = Scenario(profiles=PROFILES, realism=Realism.off())
REALISTIC = Scenario(profiles=PROFILES)
PHASE_STATUS = {False: "on_sale", True: "sold_out|trading"}
# Every rule of SPEC §3 shrunk to test time; backoff kept tiny so retried pages stay fast.
FAST_POLICY = ResiliencePolicy(
    forbidden_pause_seconds=0.0,
    api_retry_after_seconds=3600.0,
    circuit_open_seconds=3600.0,
    backoff_base_seconds=0.01,
    backoff_cap_seconds=0.05,
)
FAST_RATE = 1000.0


@dataclasses.dataclass
class Market:
    server: SimulatorServer
    state: SimulatorState

    @property
    def url(self) -> str:
        return self.server.url

    def fail(self, *kinds: FaultKind, surface: Surface | None = None, keyword: str | None = None,
             count: int | None = None, delay_seconds: float = 5.0) -> None:
        self.state.faults.replace(
            [FaultRule(kinds=kinds, surface=surface, keyword=keyword, count=count, delay_seconds=delay_seconds)]
        )

    def heal(self) -> None:
        self.state.faults.replace([])

    def requests(self, surface: Surface | None = None) -> list[dict]:
        return [r for r in self.state.requests.recent if surface is None or r["surface"] == surface.value]

    def outcomes(self, surface: Surface) -> list[str]:
        return [r["outcome"] for r in self.requests(surface)]

    def served(self, keyword: str, sold: bool, pages: int) -> dict[str, dict]:
        """What the search served on its first ``pages`` pages, by source id."""
        served: dict[str, dict] = {}
        for page in range(pages):
            params = {"keyword": keyword, "status": PHASE_STATUS[sold], "page_token": f"v1:{page}" if page else ""}
            body = httpx.get(f"{self.url}/__items", params=params, timeout=10).json()
            served.update((item["source_id"], item) for item in body["items"])
        return served


def expected_item(served: dict) -> tuple:
    """(source id, title, price, status) as the crawler must report a served item."""
    price = 0 if served["price"] >= 9_999_999 else served["price"]
    return served["source_id"], served["title"], price, ItemStatus.SOLD if served["sold"] else ItemStatus.ON_SALE


def reported(items) -> set[tuple]:
    return {(item.source_id, item.title, item.price, item.status) for item in items}


def config_for(market: Market, **overrides: Any) -> CrawlerConfig:
    defaults: dict[str, Any] = {"web_url": market.url, "api_url": market.url, "policy": FAST_POLICY}
    return CrawlerConfig(**defaults | overrides)


def request(keyword: str = KEYWORD, on_sale: int = 5, sold: int = 5, task_id: str = "task-1") -> CrawlRequest:
    return CrawlRequest(ip_id=7, keyword=keyword, task_id=task_id, pages_on_sale=on_sale, pages_sold=sold)


@contextlib.asynccontextmanager
async def running_crawler(config: CrawlerConfig, metrics: CrawlerMetrics | None = None, rate_limiter=None):
    crawler = Crawler(config, rate_limiter or LocalRateLimiter(FAST_RATE, 100), metrics or CrawlerMetrics())
    try:
        yield crawler
    finally:
        await crawler.close()


def crawl(config: CrawlerConfig, crawl_request: CrawlRequest, metrics: CrawlerMetrics | None = None):
    async def run():
        async with running_crawler(config, metrics) as crawler:
            return await crawler.crawl(crawl_request)

    return asyncio.run(run())


def metric_value(metrics: CrawlerMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value
