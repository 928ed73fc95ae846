"""API and browser mode against the realistic search (market.Realism on): full pages of fewer
than 120 still lead to the next page, the COUNTS page plan, and the response's result counts,
pages-left flag and per-item listing times, all as the simulator served them; in browser mode
read from the page's own search API answers, and from the DOM alone when none passed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from animehot_dagster.crawler.browser import BrowserPool, BrowserSearch
from animehot_dagster.crawler.crawl import PagePlan
from animehot_dagster.crawler.page import SearchQuery
from animehot_dagster.crawler.resilience import Mode
from animehot_dagster.domain.messages import ItemStatus as Status
from animehot_dagster.simulator.app import SimulatorState, create_app
from animehot_dagster.simulator.faults import Surface
from animehot_dagster.simulator.market import SOLD_STATUSES, ItemStatus
from animehot_dagster.simulator.market import SearchPage as SimSearchPage
from animehot_dagster.simulator.pages import render_search_page
from animehot_dagster.simulator.server import SimulatorServer, build_state
from animehot_dagster_tests.crawler import (
    AS_OF,
    KEYWORD,
    REALISTIC,
    SMALL,
    Market,
    config_for,
    crawl,
    expected_item,
    reported,
    request,
)

ON_SALE = frozenset({ItemStatus.ON_SALE})


@pytest.fixture(scope="module")
def realistic_state() -> SimulatorState:
    return build_state(REALISTIC, seed=21, time_scale=0, start=AS_OF)


@pytest.fixture(scope="module")
def realistic_server(realistic_state: SimulatorState) -> Iterator[SimulatorServer]:
    with SimulatorServer(create_app(realistic_state)) as running:
        yield running


@pytest.fixture
def market(realistic_server: SimulatorServer, realistic_state: SimulatorState) -> Market:
    realistic_state.faults.replace([])
    realistic_state.requests.clear()
    return Market(realistic_server, realistic_state)


def counted(market: Market, keyword: str, sold: bool) -> int:
    return market.state.market.search(keyword, AS_OF, SOLD_STATUSES if sold else ON_SALE).num_found


def test_counts_reads_one_sold_page_and_spends_the_rest_of_the_budget_on_sale(market):
    response = crawl(config_for(market, pinned_mode=Mode.API), request(on_sale=3, sold=2))
    served_on_sale = market.served(KEYWORD, sold=False, pages=4)
    served_sold = market.served(KEYWORD, sold=True, pages=1)
    # Full pages hold fewer than 120 items, yet the crawl followed the site's next page.
    pages = [market.state.market.search(KEYWORD, AS_OF, ON_SALE, page) for page in range(4)]
    assert all(page.has_next for page in pages) and sum(len(page.listings) for page in pages) < 4 * 120 - 4
    assert response.pages_crawled == 5 and response.error_message == ""
    assert reported(response.items) == {expected_item(item) for item in (served_on_sale | served_sold).values()}
    assert len(response.items) < 5 * 120
    assert market.outcomes(Surface.API) == ["200"] * 5


def test_window_reads_the_pages_the_task_names(market):
    response = crawl(config_for(market, pinned_mode=Mode.API, page_plan=PagePlan.WINDOW), request(on_sale=3, sold=2))
    served = market.served(KEYWORD, sold=False, pages=3) | market.served(KEYWORD, sold=True, pages=2)
    assert response.pages_crawled == 5
    assert reported(response.items) == {expected_item(item) for item in served.values()}


def test_the_response_carries_the_result_counts_and_whether_pages_were_left(market):
    busy = crawl(config_for(market, pinned_mode=Mode.API), request(on_sale=2, sold=1))
    assert (busy.found_on_sale, busy.found_sold) == (counted(market, KEYWORD, False), counted(market, KEYWORD, True))
    assert busy.found_on_sale > 2 * 120 and busy.on_sale_more
    small = crawl(config_for(market, pinned_mode=Mode.API), request(SMALL, on_sale=2, sold=1))
    assert (small.found_on_sale, small.found_sold) == (counted(market, SMALL, False), counted(market, SMALL, True))
    assert not small.on_sale_more and small.pages_crawled == 2
    # A count is never below what was served (hidden listings are counted, not served).
    assert small.found_on_sale >= sum(item.status is not Status.SOLD for item in small.items)


def test_each_item_carries_its_listing_and_update_times_as_served(market):
    response = crawl(config_for(market, pinned_mode=Mode.API), request(on_sale=2, sold=1))
    served = market.served(KEYWORD, sold=False, pages=2) | market.served(KEYWORD, sold=True, pages=1)
    times = {item.source_id: (item.created, item.updated) for item in response.items}
    assert times == {sid: (item["created"], item["updated"]) for sid, item in served.items()}
    assert all(0 < created <= updated <= AS_OF for created, updated in times.values())
    assert any(updated > created for created, updated in times.values())


# Browser mode: the page's own search API answers, read as they pass, give the same facts.


def test_a_browser_crawl_reads_counts_times_and_next_pages_from_the_pages_search_answers(market):
    response = crawl(config_for(market, pinned_mode=Mode.BROWSER), request(on_sale=2, sold=1))
    served = market.served(KEYWORD, sold=False, pages=2) | market.served(KEYWORD, sold=True, pages=1)
    # Pages of fewer than 120 cells, yet the crawl went on to the second on-sale page.
    assert response.pages_crawled == 3 and response.error_message == ""
    assert len(market.served(KEYWORD, sold=False, pages=1)) < 120
    assert reported(response.items) == {expected_item(item) for item in served.values()}
    times = {item.source_id: (item.created, item.updated) for item in response.items}
    assert times == {sid: (item["created"], item["updated"]) for sid, item in served.items()}
    assert (response.found_on_sale, response.found_sold) == (
        counted(market, KEYWORD, False), counted(market, KEYWORD, True)
    )
    assert response.on_sale_more
    # The page's API calls are the page's own: the request log holds the pages only.
    assert market.outcomes(Surface.WEB) == ["200"] * 3 and market.outcomes(Surface.API) == []


def test_a_browser_crawl_of_a_small_search_ends_where_the_search_says(market):
    response = crawl(config_for(market, pinned_mode=Mode.BROWSER), request(SMALL, on_sale=2, sold=1))
    assert response.pages_crawled == 2 and not response.on_sale_more
    assert (response.found_on_sale, response.found_sold) == (counted(market, SMALL, False), counted(market, SMALL, True))
    assert all(item.created > 0 for item in response.items)


class _DomOnlyHandler(BaseHTTPRequestHandler):
    """Search pages rendered by the simulator's own renderer, but without the API call: with
    a next-page link (keyword "linked") or without (keyword "last")."""

    listings: tuple = ()

    def do_GET(self) -> None:
        keyword = parse_qs(urlsplit(self.path).query)["keyword"][0]
        result = SimSearchPage(listings=self.listings, page=0, page_size=120, num_found=len(self.listings))
        next_url = "/search?keyword=linked&page_token=v1:1" if keyword == "linked" else None
        body = render_search_page(keyword, result, next_url).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_without_a_search_answer_the_page_is_read_from_the_dom_and_its_next_page_link(realistic_state):
    _DomOnlyHandler.listings = realistic_state.market.search(KEYWORD, AS_OF, ON_SALE).listings
    server = ThreadingHTTPServer(("127.0.0.1", 0), _DomOnlyHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    async def fetch_both() -> dict:
        pool = BrowserPool(max_concurrency=1, recycle_after_tasks=50)
        search = BrowserSearch(pool, f"http://127.0.0.1:{server.server_address[1]}", 20, 120)
        try:
            return {k: await search.fetch(SearchQuery(k, sold=False), 0, proxy=None) for k in ("linked", "last")}
        finally:
            await pool.close()

    try:
        pages = asyncio.run(fetch_both())
    finally:
        server.shutdown()
    expected = {listing.source_id for listing in _DomOnlyHandler.listings}
    for page in pages.values():
        assert {item.source_id for item in page.items} == expected
        assert all((item.created, item.updated) == (0, 0) for item in page.items)  # not reported
        assert page.num_found is None
    assert pages["linked"].next_page_token == "v1:1"
    assert pages["last"].next_page_token == ""  # a page of ~117 cells and no link: the last
