"""API mode against the realistic search (market.Realism on): full pages of fewer than 120
still lead to the next page, the COUNTS page plan, and the response's result counts, pages-left
flag and per-item listing times, all as the simulator served them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from animehot_dagster.crawler.crawl import PagePlan
from animehot_dagster.crawler.resilience import Mode
from animehot_dagster.domain.messages import ItemStatus as Status
from animehot_dagster.simulator.app import SimulatorState, create_app
from animehot_dagster.simulator.faults import Surface
from animehot_dagster.simulator.market import SOLD_STATUSES, ItemStatus
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
