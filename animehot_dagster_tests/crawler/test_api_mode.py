"""API mode against the simulator over a socket: signed requests, every served item extracted,
paging, every fault kind classified, retries and partial failures."""

from __future__ import annotations

import asyncio
import logging

import pytest

from animehot_dagster.crawler.crawl import PagePlan
from animehot_dagster.crawler.errors import BlockSign, CrawlError, ErrorKind
from animehot_dagster.crawler.metrics import CrawlerMetrics
from animehot_dagster.crawler.page import SearchQuery
from animehot_dagster.crawler.resilience import Mode
from animehot_dagster.domain.messages import NO_ITEMS
from animehot_dagster.simulator.faults import FaultKind, Surface
from animehot_dagster_tests.crawler import (
    EMPTY,
    KEYWORD,
    SMALL,
    config_for,
    crawl,
    expected_item,
    metric_value,
    reported,
    request,
    running_crawler,
)


def test_a_5_plus_5_crawl_reports_every_served_item_exactly(market):
    metrics = CrawlerMetrics()
    # WINDOW: the task's own 5 + 5 pages (COUNTS would spend 9 on sale and 1 sold).
    response = crawl(config_for(market, pinned_mode=Mode.API, page_plan=PagePlan.WINDOW), request(), metrics)
    served = market.served(KEYWORD, sold=False, pages=5) | market.served(KEYWORD, sold=True, pages=5)
    assert len(served) == 1200
    assert reported(response.items) == {expected_item(item) for item in served.values()}
    assert response.pages_crawled == 10 and response.error_message == ""
    assert response.total_found == 1200 and (response.ip_id, response.task_id) == (7, "task-1")
    assert any(item.source_id.startswith("shops_") for item in response.items)
    assert any(item.price == 0 for item in response.items)
    assert market.outcomes(Surface.API) == ["200"] * 10  # every DPoP proof accepted
    assert metric_value(metrics, "animetop_crawler_requests_total", status="success") == 10


def test_paging_stops_at_a_short_page_and_an_empty_search_reports_no_items(market):
    small = crawl(config_for(market, pinned_mode=Mode.API), request(SMALL))
    assert small.pages_crawled == 2 and small.error_message == ""
    assert reported(small.items) == {
        expected_item(item)
        for item in (market.served(SMALL, sold=False, pages=1) | market.served(SMALL, sold=True, pages=1)).values()
    }
    empty = crawl(config_for(market, pinned_mode=Mode.API), request(EMPTY))
    assert (empty.error_message, empty.items, empty.pages_crawled) == (NO_ITEMS, (), 2)
    assert len(market.requests(Surface.API)) == 4


BLOCKS = [
    (FaultKind.FORBIDDEN, BlockSign.FORBIDDEN),
    (FaultKind.RATE_LIMITED, BlockSign.TOO_MANY_REQUESTS),
    (FaultKind.CLOUDFLARE, BlockSign.CLOUDFLARE),
    (FaultKind.CAPTCHA, BlockSign.CAPTCHA),
    (FaultKind.HCAPTCHA, BlockSign.CAPTCHA),
    (FaultKind.BLANK, BlockSign.BLANK),
]


def fetch_first_page(market, **overrides):
    async def run():
        async with running_crawler(config_for(market, **overrides)) as crawler:
            return await crawler.api.fetch(SearchQuery(KEYWORD, sold=False), "", "session", proxy=None)

    return asyncio.run(run())


@pytest.mark.parametrize(("fault", "sign"), BLOCKS, ids=[fault.value for fault, _ in BLOCKS])
def test_every_block_the_api_can_answer_is_detected(market, fault, sign):
    market.fail(fault, surface=Surface.API)
    with pytest.raises(CrawlError) as failure:
        fetch_first_page(market)
    assert (failure.value.kind, failure.value.block) == (ErrorKind.BLOCKED, sign)


def test_a_slow_answer_is_a_timeout_and_a_dropped_connection_a_network_error(market):
    market.fail(FaultKind.SLOW, surface=Surface.API, delay_seconds=2)
    with pytest.raises(CrawlError) as slow:
        fetch_first_page(market, page_timeout_seconds=0.5)
    assert slow.value.kind is ErrorKind.TIMEOUT
    market.fail(FaultKind.DROP, surface=Surface.API)
    with pytest.raises(CrawlError) as dropped:
        fetch_first_page(market)
    assert dropped.value.kind is ErrorKind.NETWORK


def test_network_errors_are_retried_with_backoff(market):
    market.fail(FaultKind.DROP, surface=Surface.API, count=3)
    response = crawl(config_for(market, pinned_mode=Mode.API), request(SMALL, sold=0))
    assert response.pages_crawled == 1 and response.items
    assert market.outcomes(Surface.API) == ["fault:drop"] * 3 + ["200"]


def test_a_failed_page_is_skipped_and_a_task_whose_pages_all_fail_reports_why(market, caplog):
    market.fail(FaultKind.CAPTCHA, surface=Surface.API, count=1)
    partial = crawl(config_for(market, pinned_mode=Mode.API), request(on_sale=3, sold=0))
    assert partial.error_message == "" and partial.pages_crawled == 2
    first_page = market.served(KEYWORD, sold=False, pages=1)
    later_pages = {k: v for k, v in market.served(KEYWORD, sold=False, pages=3).items() if k not in first_page}
    assert reported(partial.items) == {expected_item(item) for item in later_pages.values()}

    market.fail(FaultKind.CAPTCHA, surface=Surface.API)
    metrics = CrawlerMetrics()
    caplog.clear()
    with caplog.at_level(logging.INFO):
        failed = crawl(config_for(market, pinned_mode=Mode.API), request(on_sale=2, sold=2), metrics)
    assert failed.items == () and failed.pages_crawled == 0
    assert failed.error_message == "no page crawled (blocked ×4); last: blocked: captcha"
    assert failed.failed
    assert metric_value(metrics, "animetop_crawler_errors_total", type="blocked") == 4
    assert metric_value(metrics, "animetop_crawler_requests_total", status="failed") == 4
    blocked_logs = [r for r in caplog.records if r.getMessage() == "crawler blocked detected"]
    assert len(blocked_logs) == 4 and all(r.levelno == logging.WARNING for r in blocked_logs)
    assert blocked_logs[0].error == "captcha"


def test_the_task_timeout_ends_a_crawl_that_takes_too_long(market):
    market.fail(FaultKind.SLOW, surface=Surface.API, delay_seconds=3)
    response = crawl(config_for(market, pinned_mode=Mode.API, task_timeout_seconds=0.5), request(on_sale=2, sold=2))
    assert response.pages_crawled == 0 and response.items == ()
    assert response.error_message == "no page crawled (timeout ×1); last: timeout: task timed out after 0.5 s"
