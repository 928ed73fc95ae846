"""One crawl task: a CrawlRequest in, a CrawlResponse out (SPEC §3).

Two phases, on sale then sold, run side by side (each page of a phase needs the one before
it, for its token and to know whether to go on); each page is fetched in API or browser mode
as :class:`ModeSelector` says at that moment, through the proxy when the proxy switch says so,
after a token from the shared rate limit. Every attempt is reported to the switching rules
and the metrics. A page that fails is skipped; a task whose every page failed reports an
error message instead of items, and a search without results reports ``no_items``.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import enum
import logging
import random
import socket
import time
from collections.abc import Callable
from typing import Any

from animehot_dagster.crawler.api import ApiSearch, new_search_session_id
from animehot_dagster.crawler.browser import (
    SCROLL_SETTLE_MS,
    BrowserPool,
    BrowserSearch,
)
from animehot_dagster.crawler.errors import CrawlError, ErrorKind
from animehot_dagster.crawler.metrics import CrawlerMetrics
from animehot_dagster.crawler.page import SearchPage, SearchQuery, page_token_for
from animehot_dagster.crawler.proxy import describe_proxy, proxy_is_healthy
from animehot_dagster.crawler.ratelimit import RateLimiter
from animehot_dagster.crawler.resilience import (
    CircuitBreaker,
    Mode,
    ModeSelector,
    ProxySwitch,
    ResiliencePolicy,
    backoff_delay,
)
from animehot_dagster.domain.messages import NO_ITEMS, CrawlRequest, CrawlResponse, Item
from animehot_dagster.settings import Settings

log = logging.getLogger(__name__)
# Which node produced a result, shown with each crawl in the Dagster UI.
NODE_NAME = socket.gethostname()


class PagePlan(enum.Enum):
    """How a task's page budget (pages on sale + pages sold) is spent (SPEC §4.1).

    COUNTS: the sold phase reads one page (its result count gives the sales, its newest sales
    the prices) and the on-sale phase the rest, so busy IPs' new listings fit in the window.
    WINDOW: each phase reads the pages the task names, as the original nodes do.
    """

    COUNTS = "counts"
    WINDOW = "window"

    def phase_pages(self, pages_on_sale: int, pages_sold: int) -> tuple[int, int]:
        if self is PagePlan.WINDOW or not pages_sold or not pages_on_sale:
            return pages_on_sale, pages_sold
        return pages_on_sale + pages_sold - 1, 1


@dataclasses.dataclass(frozen=True)
class CrawlerConfig:
    web_url: str
    api_url: str
    pages_on_sale: int = 5  # when a request leaves both page counts out
    pages_sold: int = 5
    page_timeout_seconds: float = 60.0
    task_timeout_seconds: float = 12 * 60.0
    max_fetch_count: int = 120
    max_concurrency: int = 2
    recycle_after_tasks: int = 50
    drain_timeout_seconds: float = 60.0
    scroll_settle_ms: int = SCROLL_SETTLE_MS
    proxy_url: str = ""
    proxy_auto_switch: bool = False
    proxy_failure_threshold: int = 10
    proxy_cooldown_seconds: float = 600.0
    pinned_mode: Mode | None = None  # None: API first, browser as fallback
    policy: ResiliencePolicy = dataclasses.field(default_factory=ResiliencePolicy)
    page_plan: PagePlan = PagePlan.COUNTS

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> CrawlerConfig:
        values: dict[str, Any] = {
            "web_url": settings.mercari_web_url,
            "api_url": settings.mercari_api_url,
            "pages_on_sale": settings.scheduler_pages_on_sale,
            "pages_sold": settings.scheduler_pages_sold,
            "page_timeout_seconds": settings.browser_page_timeout.total_seconds(),
            "task_timeout_seconds": settings.browser_task_timeout.total_seconds(),
            "max_fetch_count": settings.browser_max_fetch_count,
            "max_concurrency": settings.browser_max_concurrency,
            "recycle_after_tasks": settings.max_tasks,
            "proxy_url": settings.http_proxy,
            "proxy_auto_switch": settings.proxy_auto_switch,
            "proxy_failure_threshold": settings.proxy_failure_threshold,
            "proxy_cooldown_seconds": settings.proxy_cooldown.total_seconds(),
            "page_plan": PagePlan(settings.crawler_page_plan),
        }
        return cls(**values | overrides)


def failure_summary(failures: list[CrawlError]) -> str:
    """``no page crawled (blocked ×6, timeout ×4); last: blocked: captcha``."""
    kinds = collections.Counter(error.kind.value for error in failures)
    counts = ", ".join(f"{kind} ×{count}" for kind, count in kinds.most_common())
    return f"no page crawled ({counts}); last: {failures[-1]}"


@dataclasses.dataclass
class _TaskProgress:
    """What a task has gathered so far; kept when the task timeout cuts it short."""

    items: dict[str, Item] = dataclasses.field(default_factory=dict)
    pages_crawled: int = 0
    failures: list[CrawlError] = dataclasses.field(default_factory=list)
    # Per phase (sold?): the result count its first page told, and whether pages were left.
    found: dict[bool, int | None] = dataclasses.field(default_factory=dict)
    more: dict[bool, bool] = dataclasses.field(default_factory=dict)

    def page_done(self, query: SearchQuery, index: int, page: SearchPage) -> None:
        self.pages_crawled += 1
        if index == 0:
            self.found[query.sold] = page.num_found
        self.more[query.sold] = bool(page.next_page_token)
        for item in page.items:
            # A later sighting is newer (the sold phase can see an item listed as on sale).
            self.items[item.source_id] = item

    def response(self, request: CrawlRequest, crawled_at: int) -> CrawlResponse:
        error_message = ""
        if self.pages_crawled == 0 and self.failures:
            error_message = failure_summary(self.failures)
        elif not self.items:
            error_message = NO_ITEMS
        return CrawlResponse(
            ip_id=request.ip_id,
            task_id=request.task_id,
            crawled_at=crawled_at,
            items=tuple(self.items.values()),
            total_found=len(self.items),
            error_message=error_message,
            pages_crawled=self.pages_crawled,
            retry_count=request.retry_count,
            crawler_node=NODE_NAME,
            found_on_sale=self.found.get(False),
            found_sold=self.found.get(True),
            on_sale_more=self.more.get(False, False),
        )


class Crawler:
    def __init__(
        self,
        config: CrawlerConfig,
        rate_limiter: RateLimiter,
        metrics: CrawlerMetrics,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self._rate_limiter = rate_limiter
        self._rng = rng or random.Random()
        policy = config.policy
        self.modes = ModeSelector(policy, clock, pinned=config.pinned_mode)
        self.circuit = CircuitBreaker(policy.circuit_failures, policy.circuit_open_seconds, clock)
        self.proxies = ProxySwitch(
            config.proxy_url, config.proxy_auto_switch, config.proxy_failure_threshold,
            config.proxy_cooldown_seconds, clock,
        )
        self._proxy_lock = asyncio.Lock()
        self.api = ApiSearch(config.api_url, config.web_url, config.page_timeout_seconds)
        self.pool = BrowserPool(
            max_concurrency=config.max_concurrency,
            recycle_after_tasks=config.recycle_after_tasks,
            drain_timeout_seconds=config.drain_timeout_seconds,
            on_active_pages=metrics.browser_active.set,
        )
        self.browser = BrowserSearch(
            self.pool, config.web_url, config.page_timeout_seconds, config.max_fetch_count, config.scroll_settle_ms
        )
        metrics.proxy_mode.set(0)

    async def crawl(self, request: CrawlRequest) -> CrawlResponse:
        pages_on_sale, pages_sold = request.pages_on_sale, request.pages_sold
        if not pages_on_sale and not pages_sold:  # proto3 leaves zeros out: the task said nothing
            pages_on_sale, pages_sold = self.config.pages_on_sale, self.config.pages_sold
        pages_on_sale, pages_sold = self.config.page_plan.phase_pages(pages_on_sale, pages_sold)
        progress = _TaskProgress()
        context = {"task_id": request.task_id, "ip_id": request.ip_id, "keyword": request.keyword}
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.config.task_timeout_seconds), asyncio.TaskGroup() as phases:
                phases.create_task(self._crawl_phase(SearchQuery(request.keyword, sold=False), pages_on_sale, progress))
                phases.create_task(self._crawl_phase(SearchQuery(request.keyword, sold=True), pages_sold, progress))
        except TimeoutError:
            progress.failures.append(
                CrawlError(ErrorKind.TIMEOUT, f"task timed out after {self.config.task_timeout_seconds:g} s")
            )
            log.warning("crawl task timed out", extra=context)
        finally:
            await self._after_task()
        response = progress.response(request, crawled_at=int(time.time()))
        log.info(
            "crawl finished",
            extra=context | {
                "items": len(response.items),
                "pages_crawled": response.pages_crawled,
                "failed_pages": len(progress.failures),
                "error": response.error_message,
                "duration_seconds": round(time.monotonic() - started, 3),
            },
        )
        return response

    async def _after_task(self) -> None:
        await self.pool.task_finished()
        if self.config.pinned_mode is None and self.modes.current() is Mode.API and self.pool.running:
            # Back in API mode: the browser's memory is better returned than kept in reserve.
            await self.pool.close_browser()

    async def _crawl_phase(self, query: SearchQuery, pages: int, progress: _TaskProgress) -> None:
        session_id = new_search_session_id()  # one search session per phase, as the web app does
        token = ""
        for index in range(pages):
            try:
                page = await self._fetch_page(query, index, token, session_id)
            except CrawlError as error:
                progress.failures.append(error)
                token = page_token_for(index + 1)
                continue
            progress.page_done(query, index, page)
            if not page.next_page_token:
                return
            token = page.next_page_token

    async def _fetch_page(self, query: SearchQuery, index: int, token: str, session_id: str) -> SearchPage:
        """One page, retrying network errors with backoff."""
        policy = self.config.policy
        attempt = 0
        while True:
            try:
                return await self._request(query, index, token, session_id)
            except CrawlError as error:
                if error.kind is not ErrorKind.NETWORK or attempt == policy.network_retries:
                    raise
            await asyncio.sleep(backoff_delay(attempt, policy.backoff_base_seconds, policy.backoff_cap_seconds, self._rng))
            attempt += 1

    async def _request(self, query: SearchQuery, index: int, token: str, session_id: str) -> SearchPage:
        if not self.circuit.allows():
            raise CrawlError(
                ErrorKind.UNKNOWN, f"circuit open for {self.circuit.seconds_until_closed():.0f} s more; request not sent"
            )
        mode = self.modes.current()
        if mode is Mode.API and (pause := self.modes.api_pause()) > 0:
            await asyncio.sleep(pause)
        await self._update_proxy()
        await self._rate_limiter.acquire()
        proxy = self.proxies.current_proxy()
        started = time.monotonic()
        try:
            if mode is Mode.API:
                async with asyncio.timeout(self.config.page_timeout_seconds):
                    page = await self.api.fetch(query, token, session_id, proxy)
            else:
                page = await self.browser.fetch(query, index, proxy)
        except CrawlError as error:
            self._record(mode, time.monotonic() - started, error, query, index)
            raise
        except TimeoutError as exc:
            error = CrawlError(ErrorKind.TIMEOUT, f"no answer within {self.config.page_timeout_seconds:g} s")
            self._record(mode, time.monotonic() - started, error, query, index)
            raise error from exc
        self._record(mode, time.monotonic() - started, None, query, index)
        return page

    def _record(self, mode: Mode, seconds: float, error: CrawlError | None, query: SearchQuery, index: int) -> None:
        self.metrics.request_duration.observe(seconds)
        self.metrics.requests.labels(status="failed" if error else "success").inc()
        self.proxies.record(error)
        if error is None:
            self.circuit.record_success()
            if mode is Mode.API:
                self.modes.record_api_success()
            return
        self.circuit.record_failure()
        if mode is Mode.API:
            self.modes.record_api_failure(error)
        self.metrics.errors.labels(type=error.kind.value).inc()
        context = {
            "keyword": query.keyword,
            "sold": query.sold,
            "page": index + 1,
            "mode": mode.value,
            "error_type": error.kind.value,
            "error": error.detail,
            "http_status": error.status,
        }
        if error.kind is ErrorKind.BLOCKED:
            log.warning("crawler blocked detected", extra=context)
        else:
            log.warning("crawl request failed", extra=context)
        if mode is Mode.API and self.modes.current() is Mode.BROWSER:
            log.warning("api mode failing, falling back to browser mode", extra=context)

    async def _update_proxy(self) -> None:
        async with self._proxy_lock:  # both phases may see the threshold at once: check once
            if self.proxies.cooldown_over():
                self.proxies.use_direct()
                self.metrics.proxy_mode.set(0)
                log.info("proxy switched", extra={"to": "direct"})
            elif self.proxies.wants_proxy():
                proxy = describe_proxy(self.proxies.proxy_url)
                await self._rate_limiter.acquire()  # the check is a request to Mercari too
                if await proxy_is_healthy(self.proxies.proxy_url, self.config.web_url, self.config.page_timeout_seconds):
                    self.proxies.use_proxy()
                    self.metrics.proxy_mode.set(1)
                    log.info("proxy switched", extra={"to": "proxy", "proxy": proxy})
                else:
                    self.proxies.proxy_unhealthy()
                    log.warning("proxy health check failed, staying direct", extra={"proxy": proxy})

    async def close(self) -> None:
        await self.api.close()
        await self.pool.close()
