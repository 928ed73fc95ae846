"""The web search page in real headless Chromium: a virtualised list that must be scrolled a
screen at a time, whose cells (read with the selectors of SPEC §3) are exactly what the
simulator says it served."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from animehot_dagster.simulator.app import create_app
from animehot_dagster.simulator.market import HOUR, KeywordProfile, Realism
from animehot_dagster.simulator.scenario import Scenario
from animehot_dagster.simulator.server import SimulatorServer, build_state

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
KEYWORD = "ちいかわ グッズ"
AS_OF = 1_767_538_800 + 9 * 24 * HOUR + 1500
# A plain-filter search, so a full page mounts 120 cells (with realism on it holds 116-119).
SCENARIO = Scenario(profiles=(KeywordProfile(keyword=KEYWORD, listings_per_hour=60, shop_fraction=0.1),),
                    realism=Realism.off())

# The SPEC §3 selectors, as a crawler evaluates them in the page.
EXTRACT_CELLS = """() => [...document.querySelectorAll('[data-testid="item-cell"]')].map((cell) => {
  const price = cell.querySelector(".merPrice, span[class^='merPrice'], [data-testid='price']");
  const sticker = cell.querySelector('[data-testid="thumbnail-sticker"]');
  return {
    href: cell.querySelector("a[href]").getAttribute("href"),
    title: cell.querySelector('[data-testid="thumbnail-item-name"]').textContent,
    alt: cell.querySelector("img").getAttribute("alt"),
    price: price.textContent,
    sold: sticker !== null && sticker.getAttribute("aria-label").includes("売り切れ"),
  };
})"""
AFTER_NEXT_RENDER = "() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))"


@pytest.fixture(scope="module")
def server() -> Iterator[SimulatorServer]:
    with SimulatorServer(create_app(build_state(SCENARIO, seed=21))) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, server: SimulatorServer) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    page = context.new_page()
    # As a crawler does: nothing but the simulator's own documents and scripts.
    page.route(
        "**/*",
        lambda route: route.continue_()
        if route.request.url.startswith(server.url) and route.request.resource_type not in {"image", "font"}
        else route.abort(),
    )
    yield page
    context.close()


def source_id(href: str) -> str:
    if href.startswith("/shops/product/"):
        return "shops_" + href.removeprefix("/shops/product/")
    return href.removeprefix("/item/")


def scroll_and_collect(page: Page) -> tuple[dict[str, dict], int, int]:
    """Scroll a screen at a time, collecting cells not seen before, until 3 scrolls in a row
    add nothing. Returns the cells by source id, the count first in the DOM, and the most
    ever in the DOM at once."""
    seen: dict[str, dict] = {}
    # The list mounts once the page's own search API call has answered, as a crawler waits.
    page.wait_for_selector('[data-testid="item-cell"]', state="attached")
    first_count = most_in_dom = len(page.evaluate(EXTRACT_CELLS))
    scrolls_without_growth = 0
    while scrolls_without_growth < 3:
        cells = page.evaluate(EXTRACT_CELLS)
        most_in_dom = max(most_in_dom, len(cells))
        before = len(seen)
        seen.update((source_id(cell["href"]), cell) for cell in cells)
        scrolls_without_growth = scrolls_without_growth + 1 if len(seen) == before else 0
        page.evaluate("window.scrollBy(0, window.innerHeight)")
        page.evaluate(AFTER_NEXT_RENDER)
    return seen, first_count, most_in_dom


def search_path(status: str, page_token: str = "") -> str:
    token = f"&page_token={page_token}" if page_token else ""
    return f"/search?keyword={quote(KEYWORD)}&order=desc&sort=created_time&status={status}{token}&as_of={AS_OF}"


def served_items(server: SimulatorServer, status: str, page_token: str = "") -> set[tuple]:
    params = {"keyword": KEYWORD, "status": status, "page_token": page_token, "as_of": AS_OF}
    items = httpx.get(f"{server.url}/__items", params=params).json()["items"]
    return {(item["source_id"], item["title"], item["price_text"], item["sold"]) for item in items}


def extracted(cells: dict[str, dict]) -> set[tuple]:
    return {(sid, cell["title"], cell["price"], cell["sold"]) for sid, cell in cells.items()}


def test_only_rows_near_the_viewport_are_mounted_and_scrolling_mounts_every_cell(page, server):
    page.goto(server.url + search_path("on_sale"))
    cells, first_count, most_in_dom = scroll_and_collect(page)
    assert 0 < first_count <= 36  # the rows in view plus one, out of 120
    assert most_in_dom < 60
    assert len(cells) == 120
    assert extracted(cells) == served_items(server, "on_sale")
    assert all(cell["alt"] == f"{cell['title']}のサムネイル" for cell in cells.values())
    assert any(sid.startswith("shops_") for sid in cells) and any(sid.startswith("m") for sid in cells)


def test_sold_cells_carry_the_sold_sticker(page, server):
    page.goto(server.url + search_path("sold_out%7Ctrading", "v1:1"))
    cells, _, _ = scroll_and_collect(page)
    assert len(cells) == 120 and all(cell["sold"] for cell in cells.values())
    assert extracted(cells) == served_items(server, "sold_out|trading", "v1:1")


def test_prices_are_written_in_each_of_the_real_formats(page, server):
    page.goto(server.url + search_path("on_sale"))
    prices = [cell["price"] for cell in scroll_and_collect(page)[0].values()]
    assert any(p.startswith("¥") and "," in p for p in prices)
    assert any(p.startswith("￥ ") for p in prices)
    assert any(p[0].isdigit() for p in prices)


def test_an_unknown_keyword_shows_the_empty_result_element(page, server):
    page.goto(f"{server.url}/search?keyword=%E5%AD%98%E5%9C%A8%E3%81%97%E3%81%AA%E3%81%84&order=desc&sort=created_time")
    assert page.locator('[data-testid="search-result-empty"]').count() == 1
    assert page.locator('[data-testid="item-cell"]').count() == 0


def test_a_cloudflare_interstitial_looks_like_one_in_the_browser(page, server):
    httpx.post(f"{server.url}/__faults", json={"rules": [{"kinds": ["cloudflare"], "count": 1}]})
    response = page.goto(server.url + search_path("on_sale"), wait_until="domcontentloaded")
    assert response.status == 403 and page.title() == "Just a moment..."
    assert "Ray ID" in page.inner_text("body")
    assert page.locator("iframe[src*='challenges.cloudflare.com']").count() == 1
