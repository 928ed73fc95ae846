"""Web page mode: the search page in a real Chromium driven by Playwright (SPEC §3).

The result list is virtualised, so one script scrolls a screen at a time inside the page and
collects the cells it has not seen, with the selectors of :mod:`animehot_dagster.crawler.parse`;
Python turns them into items with the same code as the HTML parser. Images, fonts, media and
analytics are never fetched.

The web app loads its results from the search API, so the JSON answers of
``…/v2/entities:search`` that pass during the page load are read beside the DOM (Playwright
response events): they give each item's ``created``/``updated`` (matched by id), the page's
result count and whether a next page exists. Without such an answer the page is read from the
DOM alone, and a next page exists when the page shows its next-page link.

:class:`BrowserPool` owns the browser: launched on first use (a node in API mode never starts
one), at most ``max_concurrency`` pages at a time, each page in its own context (so a proxy
switch applies to the next page) and reused while it works, and the browser recycled after
``recycle_after_tasks`` tasks by draining.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote, urlsplit

from playwright.async_api import Browser, Page, Playwright, Response, Route, async_playwright
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from animehot_dagster.crawler.errors import (
    BLOCK_MARKER_SELECTOR,
    CrawlError,
    ErrorKind,
    PageSnapshot,
    blocked_error,
    detect_block,
    error_from_exception,
    kind_for_status,
)
from animehot_dagster.crawler.page import SearchPage, SearchQuery, page_token_for
from animehot_dagster.crawler.parse import (
    CELL_SELECTOR,
    EMPTY_RESULT_SELECTOR,
    IMAGE_SELECTOR,
    LINK_SELECTOR,
    PRICE_SELECTOR,
    STICKER_SELECTOR,
    TITLE_SELECTOR,
    RawCell,
    items_from_api_response,
    items_from_cells,
    next_page_token,
    result_count,
)

log = logging.getLogger(__name__)

CHROMIUM_PATH = "/usr/bin/chromium"
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    # Images are never fetched at all (cheaper than aborting each request in the route below,
    # which still catches fonts, media, analytics, and any image that slips through).
    "--blink-settings=imagesEnabled=false",
)
# A tall window shows more rows per screen: fewer scroll steps per page.
VIEWPORT = {"width": 1280, "height": 1600}
BLOCKED_RESOURCE_TYPES = frozenset({"image", "font", "media"})
ANALYTICS_HOSTS = (
    "google-analytics.com",
    "googletagmanager.com",
    "doubleclick.net",
    "googlesyndication.com",
    "facebook.net",
    "connect.facebook",
    "analytics.tiktok.com",
    "bat.bing.com",
    "clarity.ms",
    "hotjar.com",
    "criteo.",
    "karte.io",
    "datadoghq",
    "sentry.io",
    "newrelic.com",
    "nr-data.net",
)
# SPEC §3: stop scrolling after this many scrolls that bring no new cell.
IDLE_SCROLLS_BEFORE_STOP = 3
# After each scroll, the two animation frames a virtualised list renders in, plus this margin
# for a list that fetches its rows as it scrolls.
SCROLL_SETTLE_MS = 50
# Of the page timeout, the share kept for inspecting a page on which no result appeared.
_INSPECTION_SHARE = 0.2
# Proxy variables are the settings' business (HTTP_PROXY is the switch target, not a default).
_PROXY_ENVIRONMENT = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}

# The page's next-page link (Mercari's pagination button).
NEXT_PAGE_SELECTOR = '[data-testid="pagination-next-button"]'
# The search API the web app calls: api.mercari.jp/v2/entities:search (any host, any prefix).
SEARCH_API_PATH_SUFFIX = "/v2/entities:search"

PAGE_SELECTORS = {
    "cell": CELL_SELECTOR,
    "link": LINK_SELECTOR,
    "title": TITLE_SELECTOR,
    "image": IMAGE_SELECTOR,
    "price": PRICE_SELECTOR,
    "sticker": STICKER_SELECTOR,
    "empty": EMPTY_RESULT_SELECTOR,
    "blockMarker": BLOCK_MARKER_SELECTOR,
    "next": NEXT_PAGE_SELECTOR,
}

# What the page shows right now.
PAGE_STATE_SCRIPT = """(s) => ({
  results: document.querySelector(s.cell) !== null,
  empty: document.querySelector(s.empty) !== null,
  next: document.querySelector(s.next) !== null,
  blockMarker: document.querySelector(s.blockMarker) !== null,
  bodyEmpty: !document.body || document.body.innerHTML.trim() === "",
  title: document.title,
})"""

# Scroll a screen at a time, reading each cell not seen before into a RawCell-shaped object,
# until ``limit`` cells or ``idleScrolls`` scrolls in a row that add none.
COLLECT_CELLS_SCRIPT = """async ({s, limit, idleScrolls, settleMs}) => {
  const seen = new Map();
  const text = (cell, selector) => { const n = cell.querySelector(selector); return n ? n.textContent : ""; };
  const attribute = (cell, selector, name) => {
    const n = cell.querySelector(selector);
    return n ? (n.getAttribute(name) || "") : null;
  };
  const collect = () => {
    for (const cell of document.querySelectorAll(s.cell)) {
      const href = attribute(cell, s.link, "href");
      if (!href || seen.has(href)) continue;
      seen.set(href, {
        href,
        name: text(cell, s.title),
        image_alt: attribute(cell, s.image, "alt") || "",
        image_src: attribute(cell, s.image, "src") || "",
        price_text: text(cell, s.price),
        sticker_label: attribute(cell, s.sticker, "aria-label"),
      });
    }
  };
  const settle = () => new Promise((done) =>
    requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(done, settleMs))));
  collect();
  let idle = 0;
  while (seen.size < limit && idle < idleScrolls) {
    const before = seen.size;
    window.scrollBy(0, window.innerHeight);
    await settle();
    collect();
    idle = seen.size > before ? 0 : idle + 1;
  }
  return [...seen.values()].slice(0, limit);
}"""


def desktop_user_agent(browser_version: str) -> str:
    """Chrome's user agent for this Chromium's major version; headless Chromium announces itself
    as ``HeadlessChrome``, which sites treat as a bot."""
    major = browser_version.split(".", 1)[0]
    return f"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{major}.0.0.0 Safari/537.36"


def search_page_url(web_url: str, query: SearchQuery, page_index: int) -> str:
    """SPEC §3: spaces as %20 (not +), the sold statuses joined by an encoded ``|``."""
    status = "sold_out%7Ctrading" if query.sold else "on_sale"
    url = f"{web_url.rstrip('/')}/search?keyword={quote(query.keyword, safe='')}&order=desc&sort=created_time&status={status}"
    token = page_token_for(page_index)
    return f"{url}&page_token={token}" if token else url


def is_unwanted_request(url: str, resource_type: str) -> bool:
    return resource_type in BLOCKED_RESOURCE_TYPES or any(host in url for host in ANALYTICS_HOSTS)


async def _skip_unwanted(route: Route) -> None:
    request = route.request
    if is_unwanted_request(request.url, request.resource_type):
        await route.abort("blockedbyclient")
    else:
        await route.continue_()


@dataclasses.dataclass(frozen=True)
class _SparePage:
    browser: Browser
    proxy: str | None
    page: Page


async def _close_quietly(page: Page) -> None:
    with contextlib.suppress(Exception):  # the browser may be gone (recycled, crashed)
        await page.context.close()


class BrowserPool:
    """Each page has a context of its own (its proxy, its cookies). A page that served a
    search without error is kept for the next one: navigating a live tab costs a fraction of
    a new context's renderer start. A page that failed is closed (it may be mid-navigation or
    carry a challenge's state)."""

    def __init__(
        self,
        *,
        max_concurrency: int,
        recycle_after_tasks: int,
        drain_timeout_seconds: float = 60.0,
        on_active_pages: Callable[[int], None] = lambda count: None,
        executable_path: str = CHROMIUM_PATH,
        launch_args: tuple[str, ...] = CHROMIUM_ARGS,
    ) -> None:
        self._slots = asyncio.Semaphore(max_concurrency)
        self._recycle_after = recycle_after_tasks
        self._drain_timeout = drain_timeout_seconds
        self._on_active_pages = on_active_pages
        self._executable_path = executable_path
        self._launch_args = list(launch_args)
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._launch_lock = asyncio.Lock()
        self._accepting = asyncio.Event()  # cleared while draining: new pages wait
        self._accepting.set()
        self._none_in_use = asyncio.Event()
        self._none_in_use.set()
        self._in_use = 0
        self._spares: list[_SparePage] = []
        self._tasks_on_browser = 0
        self._user_agent = ""
        self.launches = 0

    @property
    def running(self) -> bool:
        return self._browser is not None

    async def _launch(self) -> Browser:
        if self._playwright is None:
            self._playwright = await async_playwright().start()
        environment = {k: v for k, v in os.environ.items() if k.lower() not in _PROXY_ENVIRONMENT}
        browser = await self._playwright.chromium.launch(
            executable_path=self._executable_path, args=self._launch_args, headless=True, env=environment
        )
        self._user_agent = desktop_user_agent(browser.version)
        self.launches += 1
        log.info("browser started", extra={"launches": self.launches})
        return browser

    async def _current_browser(self) -> Browser:
        async with self._launch_lock:
            if self._browser is None or not self._browser.is_connected():
                self._browser = await self._launch()
                self._tasks_on_browser = 0
            return self._browser

    async def _spare_or_new_page(self, browser: Browser, proxy: str | None) -> Page:
        usable = None
        for spare in self._take_spares():
            if usable is None and spare.browser is browser and spare.proxy == proxy and not spare.page.is_closed():
                usable = spare.page
            else:  # left over from another proxy or browser
                await _close_quietly(spare.page)
        if usable is not None:
            return usable
        context = await browser.new_context(
            viewport=VIEWPORT,
            locale="ja-JP",
            user_agent=self._user_agent,
            proxy={"server": proxy} if proxy else None,
        )
        await context.route("**/*", _skip_unwanted)
        return await context.new_page()

    def _take_spares(self) -> list[_SparePage]:
        spares, self._spares = self._spares, []
        return spares

    def _count_in_use(self, delta: int) -> None:
        self._in_use += delta
        if self._in_use:
            self._none_in_use.clear()
        else:
            self._none_in_use.set()
        self._on_active_pages(self._in_use)

    @contextlib.asynccontextmanager
    async def page(self, proxy: str | None) -> AsyncIterator[Page]:
        async with self._slots:
            await self._accepting.wait()
            browser = await self._current_browser()
            self._count_in_use(+1)
            try:
                page = await self._spare_or_new_page(browser, proxy)
                served = False
                try:
                    yield page
                    served = True
                finally:
                    if served and browser is self._browser and not page.is_closed():
                        self._spares.append(_SparePage(browser, proxy, page))
                    else:
                        await _close_quietly(page)
            finally:
                self._count_in_use(-1)

    async def task_finished(self) -> None:
        """Count a task that used the browser; recycle it after ``recycle_after_tasks``."""
        if self._browser is None:
            return
        self._tasks_on_browser += 1
        if self._tasks_on_browser >= self._recycle_after:
            await self.recycle()

    async def recycle(self) -> None:
        """Refuse new pages, let open ones finish (up to the drain timeout), start a new
        browser, switch to it, close the old one."""
        self._accepting.clear()
        try:
            try:
                await asyncio.wait_for(self._none_in_use.wait(), self._drain_timeout)
            except TimeoutError:
                log.warning("browser drain timed out", extra={"active_pages": self._in_use})
            async with self._launch_lock:
                old, self._browser = self._browser, await self._launch()
                self._tasks_on_browser = 0
                self._take_spares()  # they belong to the old browser, which closes them
        finally:
            self._accepting.set()
        if old is not None:
            with contextlib.suppress(Exception):
                await old.close()

    async def close_browser(self) -> None:
        async with self._launch_lock:
            browser, self._browser = self._browser, None
            self._take_spares()
        if browser is not None:
            with contextlib.suppress(Exception):
                await browser.close()

    async def close(self) -> None:
        await self.close_browser()
        if self._playwright is not None:
            await self._playwright.stop()
            self._playwright = None


class BrowserSearch:
    """Fetches result pages of the web search page through a :class:`BrowserPool`."""

    def __init__(self, pool: BrowserPool, web_url: str, page_timeout_seconds: float, max_fetch_count: int,
                 scroll_settle_ms: int = SCROLL_SETTLE_MS) -> None:
        self._pool = pool
        self._web_url = web_url
        self._page_timeout = page_timeout_seconds
        self._max_fetch_count = max_fetch_count
        self._scroll_settle_ms = scroll_settle_ms

    async def fetch(self, query: SearchQuery, page_index: int, proxy: str | None) -> SearchPage:
        url = search_page_url(self._web_url, query, page_index)
        try:
            async with self._pool.page(proxy) as page, asyncio.timeout(self._page_timeout):
                return await self._read(page, url, page_index)
        except CrawlError:
            raise
        except Exception as exc:  # every other failure is classified, not lost
            raise error_from_exception(exc) from exc

    async def _read(self, page: Page, url: str, page_index: int) -> SearchPage:
        answers: list[Response] = []

        def keep_search_answer(response: Response) -> None:
            if response.request.method == "POST" and urlsplit(response.url).path.endswith(SEARCH_API_PATH_SUFFIX):
                answers.append(response)

        page.on("response", keep_search_answer)
        try:
            result = await self._read_page(page, url)
            document = await _search_document(answers)
        finally:
            page.remove_listener("response", keep_search_answer)
        if result is None:  # the page says there is nothing: a count of 0 unless the API told one
            return SearchPage(items=[], next_page_token="", num_found=0 if document is None else result_count(document))
        items, shows_next = result
        if document is None:  # the DOM alone: a next page exists when the page links to one
            return SearchPage(items=items, next_page_token=page_token_for(page_index + 1) if shows_next else "")
        times = {item.source_id: (item.created, item.updated) for item in items_from_api_response(document)}
        items = [
            dataclasses.replace(item, created=times[item.source_id][0], updated=times[item.source_id][1])
            if item.source_id in times
            else item
            for item in items
        ]
        more = bool(next_page_token(document))
        return SearchPage(
            items=items, next_page_token=page_token_for(page_index + 1) if more else "", num_found=result_count(document)
        )

    async def _read_page(self, page: Page, url: str) -> tuple[list, bool] | None:
        """The items the page shows and whether it links to a next page; None for no results."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._page_timeout
        response = await page.goto(url, wait_until="domcontentloaded", timeout=self._page_timeout * 1000)
        status = response.status if response is not None else None
        state = await page.evaluate(PAGE_STATE_SCRIPT, PAGE_SELECTORS)
        settled = state["results"] or state["empty"] or state["blockMarker"] or state["bodyEmpty"]
        if not settled and (status or 200) < 400:
            # Rendered client-side: wait for the results, the empty marker or a challenge, and
            # keep part of the page timeout to look at what came instead.
            wait_seconds = (deadline - loop.time()) * (1 - _INSPECTION_SHARE)
            with contextlib.suppress(PlaywrightTimeoutError):
                await page.wait_for_selector(
                    f"{CELL_SELECTOR}, {EMPTY_RESULT_SELECTOR}, {BLOCK_MARKER_SELECTOR}",
                    state="attached",
                    timeout=max(1.0, wait_seconds * 1000),
                )
            state = await page.evaluate(PAGE_STATE_SCRIPT, PAGE_SELECTORS)
        if not (state["results"] or state["empty"]):
            raise await self._failure(page, status, state["title"])
        if not state["results"]:
            return None
        cells = await page.evaluate(
            COLLECT_CELLS_SCRIPT,
            {"s": PAGE_SELECTORS, "limit": self._max_fetch_count, "idleScrolls": IDLE_SCROLLS_BEFORE_STOP,
             "settleMs": self._scroll_settle_ms},
        )
        items = items_from_cells((RawCell(**cell) for cell in cells), self._web_url)
        shows_next = await page.evaluate("(selector) => document.querySelector(selector) !== null", NEXT_PAGE_SELECTOR)
        return items, shows_next

    @staticmethod
    async def _failure(page: Page, status: int | None, title: str) -> CrawlError:
        snapshot = PageSnapshot(status=status, title=title, html=await page.content())
        if sign := detect_block(snapshot):
            return blocked_error(snapshot, sign)
        if status is not None and status >= 400:
            return CrawlError(kind_for_status(status), f"search page answered {status}", status=status)
        return CrawlError(ErrorKind.TIMEOUT, "no search result appeared", status=status)


async def _search_document(answers: list[Response]) -> dict[str, Any] | None:
    """The last search API answer of the page load that is a search result (items and meta)."""
    for response in reversed(answers):
        if not response.ok:
            continue
        try:
            document = json.loads(await response.body())
        except Exception:  # noqa: BLE001 - a body gone with a navigation, or not JSON: not an answer
            continue
        if isinstance(document, dict) and isinstance(document.get("items"), list):
            return document
    return None
