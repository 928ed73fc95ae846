"""The mode and circuit rules of SPEC §3 acting on real traffic to the simulator, with the
durations shrunk: API→browser fallback, the return to API, the 403 pause, the circuit."""

from __future__ import annotations

import asyncio
import dataclasses

from animehot_dagster.crawler.resilience import Mode
from animehot_dagster.simulator.faults import FaultKind, Surface
from animehot_dagster_tests.crawler import (
    FAST_POLICY,
    KEYWORD,
    config_for,
    crawl,
    expected_item,
    reported,
    request,
    running_crawler,
)


def test_three_api_failures_fall_back_to_the_browser_which_hands_back_to_the_api_later(market):
    policy = dataclasses.replace(FAST_POLICY, api_retry_after_seconds=1.0)

    async def run():
        async with running_crawler(config_for(market, policy=policy)) as crawler:
            market.fail(FaultKind.FORBIDDEN, surface=Surface.API)
            fallback = await crawler.crawl(request(on_sale=4, sold=0))
            await asyncio.sleep(1.0)
            probe_failed = await crawler.crawl(request(on_sale=2, sold=0))  # the API probe fails: browser again
            market.heal()
            await asyncio.sleep(1.0)
            recovered = await crawler.crawl(request(on_sale=1, sold=0))
            return fallback, probe_failed, recovered

    fallback, probe_failed, recovered = asyncio.run(run())
    first_three = market.served(KEYWORD, sold=False, pages=3)
    fourth_page = {k: v for k, v in market.served(KEYWORD, sold=False, pages=4).items() if k not in first_three}
    assert fallback.pages_crawled == 1
    assert reported(fallback.items) == {expected_item(item) for item in fourth_page.values()}
    assert probe_failed.pages_crawled == 1
    assert recovered.pages_crawled == 1 and recovered.error_message == ""
    assert market.outcomes(Surface.API) == ["fault:forbidden"] * 4 + ["200"]
    assert market.outcomes(Surface.WEB) == ["200", "200"]


def test_after_an_api_403_the_next_api_request_waits(market):
    policy = dataclasses.replace(FAST_POLICY, forbidden_pause_seconds=1.0)
    market.fail(FaultKind.FORBIDDEN, surface=Surface.API, count=1)
    response = crawl(config_for(market, policy=policy, pinned_mode=Mode.API), request(on_sale=2, sold=0))
    first, second = market.requests(Surface.API)
    assert (first["outcome"], second["outcome"]) == ("fault:forbidden", "200")
    assert second["time"] - first["time"] >= 1.0
    assert response.pages_crawled == 1


def test_five_consecutive_failures_open_the_circuit_and_stop_sending(market):
    market.fail(FaultKind.CAPTCHA, surface=Surface.API)
    response = crawl(config_for(market, pinned_mode=Mode.API), request(on_sale=8, sold=0))
    assert len(market.requests(Surface.API)) == 5
    assert response.pages_crawled == 0
    assert response.error_message.startswith("no page crawled (blocked ×5, unknown ×3); last: unknown: circuit open")
