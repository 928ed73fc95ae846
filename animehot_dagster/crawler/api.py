"""API mode: the search API the web app itself calls (SPEC §3), over httpx.

No browser: a request is one signed POST, so a node in API mode is cheap. The body is the
one the recorded real exchange carries, field for field.
"""

from __future__ import annotations

import json
import uuid

import httpx
from selectolax.lexbor import LexborHTMLParser

from animehot_dagster.crawler.dpop import DpopSigner
from animehot_dagster.crawler.errors import (
    CrawlError,
    PageSnapshot,
    blocked_error,
    detect_block,
    error_from_exception,
    kind_for_status,
)
from animehot_dagster.crawler.page import SearchPage, SearchQuery
from animehot_dagster.crawler.parse import (
    PAGE_SIZE,
    items_from_api_response,
    next_page_token,
    result_count,
)

SEARCH_PATH = "/v2/entities:search"
ON_SALE_STATUSES = ["STATUS_ON_SALE"]
SOLD_STATUSES = ["STATUS_SOLD_OUT", "STATUS_TRADING"]
BROWSER_USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/144.0.0.0 Safari/537.36"
)


def new_search_session_id() -> str:
    return uuid.uuid4().hex


def search_request_body(query: SearchQuery, page_token: str, search_session_id: str) -> dict:
    return {
        "userId": "",
        "pageSize": PAGE_SIZE,
        "pageToken": page_token,
        "searchSessionId": search_session_id,
        "indexRouting": "INDEX_ROUTING_UNSPECIFIED",
        "thumbnailTypes": [],
        "searchCondition": {
            "keyword": query.keyword,
            "excludeKeyword": "",
            "sort": "SORT_CREATED_TIME",
            "order": "ORDER_DESC",
            "status": list(SOLD_STATUSES if query.sold else ON_SALE_STATUSES),
            "sizeId": [],
            "categoryId": [],
            "brandId": [],
            "sellerId": [],
            "priceMin": 0,
            "priceMax": 0,
            "itemConditionId": [],
            "shippingPayerId": [],
            "shippingFromArea": [],
            "shippingMethod": [],
            "colorId": [],
            "hasCoupon": False,
            "attributes": [],
            "itemTypes": [],
            "skuIds": [],
        },
        "defaultDatasets": [],
        "serviceFrom": "suruga",
    }


def page_from_api_response(status: int, body: bytes, web_url: str) -> SearchPage:
    """The page an API response carries, or the CrawlError it amounts to."""
    try:
        document = json.loads(body) if status == 200 else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        document = None
    if isinstance(document, dict) and isinstance(document.get("items"), list):
        items = items_from_api_response(document, web_url)
        # Full pages hold a few items less than the page size (the search filters after paging):
        # only the site knows whether another page follows.
        return SearchPage(
            items=items, next_page_token=next_page_token(document) if items else "", num_found=result_count(document)
        )
    text = body.decode("utf-8", "replace")
    title_node = LexborHTMLParser(text).css_first("title") if "<" in text else None
    snapshot = PageSnapshot(status=status, title=title_node.text() if title_node else "", html=text)
    if sign := detect_block(snapshot):
        raise blocked_error(snapshot, sign)
    raise CrawlError(kind_for_status(status), f"API answered {status}: {text[:200]}", status=status)


class ApiSearch:
    """Fetches result pages from ``{api_url}/v2/entities:search``, directly or through a proxy."""

    def __init__(self, api_url: str, web_url: str, timeout_seconds: float) -> None:
        self.search_url = api_url.rstrip("/") + SEARCH_PATH
        self._web_url = web_url
        self._timeout = timeout_seconds
        self._signer = DpopSigner()
        self._clients: dict[str | None, httpx.AsyncClient] = {}

    def _client(self, proxy: str | None) -> httpx.AsyncClient:
        if proxy not in self._clients:
            self._clients[proxy] = httpx.AsyncClient(
                proxy=proxy,
                timeout=self._timeout,
                headers={"User-Agent": BROWSER_USER_AGENT, "Accept": "application/json"},
                trust_env=False,  # the proxy is ours to choose (HTTP_PROXY is the switch target)
            )
        return self._clients[proxy]

    async def fetch(self, query: SearchQuery, page_token: str, search_session_id: str, proxy: str | None) -> SearchPage:
        headers = {"X-Platform": "web", "DPoP": self._signer.proof(self.search_url, "POST")}
        body = search_request_body(query, page_token, search_session_id)
        try:
            response = await self._client(proxy).post(self.search_url, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise error_from_exception(exc) from exc
        return page_from_api_response(response.status_code, response.content, self._web_url)

    async def close(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
