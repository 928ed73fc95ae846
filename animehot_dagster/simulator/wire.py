"""Mercari's wire formats, shared by the web page and the API: page tokens, status names, item JSON.

Shapes follow the recorded real exchange (``fixtures/mercari-api/search_sort_created_desc.yml``),
key for key and in the same order, so a parser that reads the simulator reads Mercari.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from animehot_dagster.simulator.market import ALL_STATUSES, ItemStatus, Listing, SearchPage

API_STATUS_NAMES = {
    ItemStatus.ON_SALE: "ITEM_STATUS_ON_SALE",
    ItemStatus.TRADING: "ITEM_STATUS_TRADING",
    ItemStatus.SOLD_OUT: "ITEM_STATUS_SOLD_OUT",
}
_SEARCH_CONDITION_STATUSES = {
    "STATUS_ON_SALE": ItemStatus.ON_SALE,
    "STATUS_TRADING": ItemStatus.TRADING,
    "STATUS_SOLD_OUT": ItemStatus.SOLD_OUT,
}
_WEB_STATUSES = {status.value: status for status in ItemStatus}
_PAGE_TOKEN = re.compile(r"v1:(\d{1,6})")

# The real response carries these layout hints after the items; clients ignore them.
_COMPONENTS = ({"rowNumber": "0", "shallowFacet": {}}, {"rowNumber": "12", "keywordSuggest": {}})


class WireError(ValueError):
    """A request parameter Mercari would not accept."""


def parse_page_token(token: object) -> int:
    """``""`` (first page) or ``v1:N`` → the 0-based page N."""
    if token is None or token == "":
        return 0
    match = _PAGE_TOKEN.fullmatch(token) if isinstance(token, str) else None
    if match is None:
        raise WireError(f"page token {token!r} is not v1:<page>")
    return int(match.group(1))


def page_token(page: int) -> str:
    return f"v1:{page}" if page > 0 else ""


def parse_web_status(text: str | None) -> frozenset[ItemStatus]:
    """The web URL's ``status``: ``on_sale``, ``sold_out|trading`` …; absent means every status."""
    if not text:
        return ALL_STATUSES
    statuses = set()
    for part in re.split(r"[|,]", text):
        if part not in _WEB_STATUSES:
            raise WireError(f"unknown status {part!r} (on_sale, trading, sold_out)")
        statuses.add(_WEB_STATUSES[part])
    return frozenset(statuses)


def parse_api_statuses(names: object) -> frozenset[ItemStatus]:
    """``searchCondition.status``: a list of STATUS_* names; empty means every status."""
    if not isinstance(names, list):
        raise WireError("searchCondition.status must be a list")
    if not names:
        return ALL_STATUSES
    unknown = [name for name in names if name not in _SEARCH_CONDITION_STATUSES]
    if unknown:
        raise WireError(f"unknown searchCondition.status {unknown} ({', '.join(_SEARCH_CONDITION_STATUSES)})")
    return frozenset(_SEARCH_CONDITION_STATUSES[name] for name in names)


def thumbnail_url(listing: Listing) -> str:
    if listing.is_shop:
        return f"https://assets.mercari-shops-static.com/-/small/plain/{listing.api_id}.jpg@jpg"
    return f"https://static.mercdn.net/c!/w=240,f=webp/thumb/photos/{listing.api_id}_1.jpg?{listing.created}"


def _as_is(seconds: int) -> int:
    return seconds


def api_item(listing: Listing, reported: Callable[[int], int] = _as_is) -> dict:
    return {
        "id": listing.api_id,
        "sellerId": listing.seller_id,
        "buyerId": listing.buyer_id,
        "status": API_STATUS_NAMES[listing.status],
        "name": listing.title,
        "price": str(listing.price),
        "created": str(reported(listing.created)),
        "updated": str(reported(listing.updated)),
        "thumbnails": [thumbnail_url(listing)],
        "itemType": "ITEM_TYPE_BEYOND" if listing.is_shop else "ITEM_TYPE_MERCARI",
        "itemConditionId": str(listing.item_condition_id),
        "shippingPayerId": str(listing.shipping_payer_id),
        "itemSizes": [],
        "itemBrand": None,
        "itemPromotions": [],
        "shopName": f"ショップ{listing.seller_id[-4:]}" if listing.is_shop else "",
        "itemSize": None,
        "shippingMethodId": str(listing.shipping_method_id),
        "categoryId": str(listing.category_id),
    }


def api_search_response(page: SearchPage, reported: Callable[[int], int] = _as_is) -> dict:
    """``reported`` turns the market's times into the times served (:meth:`MarketClock.reported`)."""
    return {
        "items": [api_item(listing, reported) for listing in page.listings],
        "meta": {
            "nextPageToken": page_token(page.page + 1) if page.has_next else "",
            "previousPageToken": page_token(page.page - 1) if page.page > 0 else "",
            "numFound": str(page.num_found),
        },
        "components": [dict(component) for component in _COMPONENTS],
    }
