"""Web page mode in real Chromium against the simulator's virtualised search page: every served
item extracted, every fault kind classified, the page limit, recycling by draining."""

from __future__ import annotations

import asyncio
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from animehot_dagster.crawler.browser import (
    BrowserPool,
    BrowserSearch,
    desktop_user_agent,
    is_unwanted_request,
    search_page_url,
)
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


def test_the_search_url_of_spec_3():
    assert search_page_url("https://jp.mercari.com/", SearchQuery("ちいかわ グッズ", sold=False), 0) == (
        "https://jp.mercari.com/search?keyword=%E3%81%A1%E3%81%84%E3%81%8B%E3%82%8F%20%E3%82%B0%E3%83%83%E3%82%BA"
        "&order=desc&sort=created_time&status=on_sale"
    )
    assert search_page_url("https://jp.mercari.com", SearchQuery("a b", sold=True), 2) == (
        "https://jp.mercari.com/search?keyword=a%20b&order=desc&sort=created_time&status=sold_out%7Ctrading"
        "&page_token=v1:2"
    )


def test_images_fonts_media_and_analytics_are_not_fetched():
    assert is_unwanted_request("https://static.mercdn.net/thumb/m1.jpg", "image")
    assert is_unwanted_request("https://fonts.gstatic.com/a.woff2", "font")
    assert is_unwanted_request("https://www.googletagmanager.com/gtag/js?id=G-1", "script")
    assert not is_unwanted_request("https://jp.mercari.com/search?keyword=a", "document")
    assert not is_unwanted_request("https://web-jp.mercdn.net/_next/static/chunks/main.js", "script")


def test_pages_present_a_desktop_chrome_not_headless_chromium():
    agent = desktop_user_agent("144.0.7559.59")
    assert "Chrome/144.0.0.0" in agent and "Headless" not in agent


def test_a_5_plus_5_crawl_in_chromium_reports_every_served_item_exactly(market):
    metrics = CrawlerMetrics()
    # WINDOW: the task's own 5 + 5 pages (COUNTS would spend 9 on sale and 1 sold).
    response = crawl(config_for(market, pinned_mode=Mode.BROWSER, page_plan=PagePlan.WINDOW), request(), metrics)
    served = market.served(KEYWORD, sold=False, pages=5) | market.served(KEYWORD, sold=True, pages=5)
    assert reported(response.items) == {expected_item(item) for item in served.values()}
    assert response.pages_crawled == 10 and response.error_message == "" and len(response.items) == 1200
    assert market.outcomes(Surface.WEB) == ["200"] * 10
    assert metric_value(metrics, "animetop_crawler_browser_active") == 0


def test_a_short_page_ends_the_phase_and_an_empty_search_reports_no_items(market):
    async def run():
        async with running_crawler(config_for(market, pinned_mode=Mode.BROWSER)) as crawler:
            return await crawler.crawl(request(SMALL)), await crawler.crawl(request(EMPTY))

    small, empty = asyncio.run(run())
    served = market.served(SMALL, sold=False, pages=1) | market.served(SMALL, sold=True, pages=1)
    assert reported(small.items) == {expected_item(item) for item in served.values()}
    assert small.pages_crawled == 2
    assert (empty.error_message, empty.pages_crawled) == (NO_ITEMS, 2)
    assert len(market.requests(Surface.WEB)) == 4


def test_the_fetch_count_limit_caps_a_page(market):
    response = crawl(config_for(market, pinned_mode=Mode.BROWSER, max_fetch_count=50), request(on_sale=2, sold=0))
    first_two_pages = list(market.served(KEYWORD, sold=False, pages=2).values())
    # In result order: the first 50 cells of each page.
    expected = {expected_item(item) for item in first_two_pages[:50] + first_two_pages[120:170]}
    assert reported(response.items) == expected


EXPECTED_CLASSES = {
    FaultKind.FORBIDDEN: (ErrorKind.BLOCKED, BlockSign.FORBIDDEN),
    FaultKind.RATE_LIMITED: (ErrorKind.BLOCKED, BlockSign.TOO_MANY_REQUESTS),
    FaultKind.CLOUDFLARE: (ErrorKind.BLOCKED, BlockSign.CLOUDFLARE),
    FaultKind.CAPTCHA: (ErrorKind.BLOCKED, BlockSign.CAPTCHA),
    FaultKind.HCAPTCHA: (ErrorKind.BLOCKED, BlockSign.CAPTCHA),
    FaultKind.BLANK: (ErrorKind.BLOCKED, BlockSign.BLANK),
    FaultKind.SLOW: (ErrorKind.TIMEOUT, None),
    FaultKind.DROP: (ErrorKind.NETWORK, None),
}


def test_every_fault_the_web_page_can_show_is_detected_and_classified(market):
    async def classify_each() -> dict:
        seen = {}
        # A timeout a loaded machine's Chromium still loads a page in, and a slow page slower.
        async with running_crawler(config_for(market, page_timeout_seconds=5)) as crawler:
            for fault in FaultKind:
                # Chromium retries a dropped connection once by itself: drop every attempt.
                market.fail(fault, surface=Surface.WEB, delay_seconds=8)
                try:
                    await crawler.browser.fetch(SearchQuery(KEYWORD, sold=False), 0, proxy=None)
                    seen[fault] = "no error"
                except CrawlError as error:
                    seen[fault] = (error.kind, error.block)
        return seen

    assert asyncio.run(classify_each()) == EXPECTED_CLASSES


# Pages a client-rendered site can show instead of results, after its scripts have run.
LATE_PAGES = {
    "late-block": "<html><head><title>loading</title></head><body><div id='app'></div><script>"
    "setTimeout(() => { document.title = '403 Forbidden'; app.textContent = 'Forbidden'; }, 100);"
    "</script></body></html>",
    "never": "<html><head><title>メルカリ</title></head><body><div id='app'>読み込み中…</div></body></html>",
}


class _LatePageHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = LATE_PAGES[parse_qs(urlsplit(self.path).query)["keyword"][0]].encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_page_whose_scripts_show_a_block_instead_of_results_is_inspected_before_the_timeout():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _LatePageHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    async def fetch_each() -> dict:
        pool = BrowserPool(max_concurrency=1, recycle_after_tasks=50)
        search = BrowserSearch(pool, f"http://127.0.0.1:{server.server_address[1]}", 1.5, 120)
        seen = {}
        for keyword in LATE_PAGES:
            try:
                await search.fetch(SearchQuery(keyword, sold=False), 0, proxy=None)
            except CrawlError as error:
                seen[keyword] = (error.kind, error.block)
        await pool.close()
        return seen

    try:
        seen = asyncio.run(fetch_each())
    finally:
        server.shutdown()
    assert seen == {"late-block": (ErrorKind.BLOCKED, BlockSign.BLOCKED_TITLE), "never": (ErrorKind.TIMEOUT, None)}


def test_at_most_max_concurrency_pages_are_open():
    async def run() -> list[int]:
        counts: list[int] = []
        pool = BrowserPool(max_concurrency=2, recycle_after_tasks=50, on_active_pages=counts.append)

        async def hold_page() -> None:
            async with pool.page(None) as page:
                await page.set_content("<p>x</p>")
                await asyncio.sleep(0.3)

        await asyncio.gather(*(hold_page() for _ in range(5)))
        await pool.close()
        return counts

    counts = asyncio.run(run())
    assert max(counts) == 2 and counts[-1] == 0


def test_the_browser_is_recycled_after_max_tasks_by_draining_first():
    async def run() -> dict:
        pool = BrowserPool(max_concurrency=2, recycle_after_tasks=2, drain_timeout_seconds=5)
        events: list[str] = []
        page_open = asyncio.Event()

        async def long_page() -> None:
            async with pool.page(None) as page:
                page_open.set()
                await asyncio.sleep(0.5)
                await page.set_content("<p>still works while draining</p>")
                events.append("old page finished")

        async def new_page() -> None:
            async with pool.page(None) as page:
                await page.set_content("<p>new</p>")
                events.append("new page opened")

        async with pool.page(None):
            pass
        await pool.task_finished()
        first = pool.launches
        running = asyncio.create_task(long_page())
        await page_open.wait()
        recycling = asyncio.create_task(pool.task_finished())  # the second task: recycle
        await asyncio.sleep(0.05)
        await new_page()  # refused until the old page is done and the new browser is up
        await asyncio.gather(running, recycling)
        result = {"events": events, "launches": (first, pool.launches)}
        await pool.close()
        return result

    result = asyncio.run(run())
    assert result["launches"] == (1, 2)
    assert result["events"] == ["old page finished", "new page opened"]


def test_draining_gives_up_on_a_page_that_outlives_the_drain_timeout():
    async def run() -> tuple[float, str]:
        pool = BrowserPool(max_concurrency=2, recycle_after_tasks=1, drain_timeout_seconds=0.3)
        outcome = ""
        opened = asyncio.Event()

        async def stuck_page() -> None:
            nonlocal outcome
            try:
                async with pool.page(None) as page:
                    opened.set()
                    await page.wait_for_selector("#never-there", timeout=30_000)
                    outcome = "finished"
            except Exception as exc:  # noqa: BLE001 - the old browser was closed under it
                outcome = type(exc).__name__

        stuck = asyncio.create_task(stuck_page())
        await opened.wait()
        started = time.monotonic()
        await pool.task_finished()
        took = time.monotonic() - started
        await stuck
        await pool.close()
        return took, outcome

    took, outcome = asyncio.run(run())
    assert 0.3 <= took < 10  # the drain timeout and a browser launch, not the page's 30 s
    assert outcome == "TargetClosedError"
