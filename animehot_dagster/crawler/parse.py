"""Pure parsers from what Mercari serves to :class:`Item`s (SPEC §3), shared by both crawl modes.

The web page's selectors live here and nowhere else: the browser evaluates them (the script in
:mod:`animehot_dagster.crawler.browser` is built from these constants) and
:func:`items_from_search_html` applies the same ones to HTML, so a test on either path covers
the other. Both paths produce :class:`RawCell`s and share :func:`items_from_cells`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urljoin

from selectolax.lexbor import LexborHTMLParser, LexborNode

from animehot_dagster.domain.messages import MAX_UNIX_SECONDS, Item, ItemStatus
from animehot_dagster.domain.pages import PAGE_SIZE as PAGE_SIZE  # the crawl modes size their pages by it
from animehot_dagster.domain.scores import NO_PRICE

MERCARI_WEB_URL = "https://jp.mercari.com"

# --- the web page (SPEC §3) ---------------------------------------------------------------
CELL_SELECTOR = '[data-testid="item-cell"]'
LINK_SELECTOR = "a[href]"
TITLE_SELECTOR = '[data-testid="thumbnail-item-name"]'
IMAGE_SELECTOR = "img"
PRICE_SELECTOR = ".merPrice, span[class^='merPrice'], [data-testid='price']"
STICKER_SELECTOR = '[data-testid="thumbnail-sticker"]'
EMPTY_RESULT_SELECTOR = '[data-testid="search-result-empty"]'
SOLD_STICKER_LABEL = "売り切れ"
THUMBNAIL_ALT_SUFFIX = "のサムネイル"

# --- the API ------------------------------------------------------------------------------
SOLD_API_STATUSES = frozenset({"ITEM_STATUS_TRADING", "ITEM_STATUS_SOLD_OUT"})
SHOP_ITEM_TYPE = "ITEM_TYPE_BEYOND"

_MERCARI_ITEM_ID = re.compile(r"m\d+")
_ITEM_PATH = re.compile(r"/item/(m\d+)")
_SHOP_PRODUCT_PATH = re.compile(r"/shops/product/([A-Za-z0-9_-]+)")
# The first run of digits and thousands separators: ``¥1,200``, ``￥ 200``, ``1,999``.
_PRICE_DIGITS = re.compile(r"\d[\d,]*")


@dataclasses.dataclass(frozen=True)
class RawCell:
    """What one result cell shows, read with the selectors above, before interpretation.
    The browser's extraction script returns objects with exactly these fields."""

    href: str
    name: str = ""  # the thumbnail-item-name text
    image_alt: str = ""
    image_src: str = ""
    price_text: str = ""
    sticker_label: str | None = None  # the sold sticker's aria-label; None without a sticker


def price_from_text(text: str) -> int:
    """Yen from a price as the page writes it; 0 when there is no price (none written, or
    Mercari's 9,999,999 placeholder)."""
    match = _PRICE_DIGITS.search(text)
    return normalize_price(int(match.group().replace(",", ""))) if match else 0


def normalize_price(price: int) -> int:
    return 0 if price >= NO_PRICE or price < 0 else price


def source_id_from_href(href: str) -> str | None:
    """``m<digits>`` for ``/item/m…``, ``shops_<id>`` for ``/shops/product/<id>``, else None."""
    if match := _ITEM_PATH.search(href):
        return match.group(1)
    if match := _SHOP_PRODUCT_PATH.search(href):
        return f"shops_{match.group(1)}"
    return None


def title_from_cell(name: str, image_alt: str) -> str:
    title = name.strip()
    if title:
        return title
    return image_alt.strip().removesuffix(THUMBNAIL_ALT_SUFFIX).strip()


def item_from_cell(cell: RawCell, web_url: str = MERCARI_WEB_URL) -> Item | None:
    """None for a cell that links to neither an item nor a shop product (an ad, a banner)."""
    source_id = source_id_from_href(cell.href)
    if source_id is None:
        return None
    sold = cell.sticker_label is not None and SOLD_STICKER_LABEL in cell.sticker_label
    return Item(
        source_id=source_id,
        title=title_from_cell(cell.name, cell.image_alt),
        price=price_from_text(cell.price_text),
        image_url=cell.image_src,
        item_url=urljoin(web_url, cell.href),
        status=ItemStatus.SOLD if sold else ItemStatus.ON_SALE,
    )


def items_from_cells(cells: Iterable[RawCell], web_url: str = MERCARI_WEB_URL) -> list[Item]:
    """Items in page order, each source id once (a virtualised list can show a cell twice)."""
    items: dict[str, Item] = {}
    for cell in cells:
        item = item_from_cell(cell, web_url)
        if item is not None and item.source_id not in items:
            items[item.source_id] = item
    return list(items.values())


def _text(cell: LexborNode, selector: str) -> str:
    node = cell.css_first(selector)
    return node.text() if node is not None else ""


def _attribute(cell: LexborNode, selector: str, name: str) -> str | None:
    node = cell.css_first(selector)
    return None if node is None else node.attributes.get(name) or ""


def cells_from_search_html(html: str) -> list[RawCell]:
    cells = []
    for cell in LexborHTMLParser(html).css(CELL_SELECTOR):
        href = _attribute(cell, LINK_SELECTOR, "href")
        if not href:
            continue
        cells.append(
            RawCell(
                href=href,
                name=_text(cell, TITLE_SELECTOR),
                image_alt=_attribute(cell, IMAGE_SELECTOR, "alt") or "",
                image_src=_attribute(cell, IMAGE_SELECTOR, "src") or "",
                price_text=_text(cell, PRICE_SELECTOR),
                sticker_label=_attribute(cell, STICKER_SELECTOR, "aria-label"),
            )
        )
    return cells


def items_from_search_html(html: str, web_url: str = MERCARI_WEB_URL) -> list[Item]:
    """The items of a search result page's HTML (the cells present in it)."""
    return items_from_cells(cells_from_search_html(html), web_url)


# --- API ----------------------------------------------------------------------------------


def _api_item(entry: Mapping[str, Any], web_url: str) -> Item | None:
    item_id = entry.get("id")
    if not isinstance(item_id, str) or not item_id:
        return None
    is_shop = entry.get("itemType") == SHOP_ITEM_TYPE or not _MERCARI_ITEM_ID.fullmatch(item_id)
    path = f"/shops/product/{item_id}" if is_shop else f"/item/{item_id}"
    try:
        price = normalize_price(int(entry.get("price") or 0))
    except (TypeError, ValueError):
        price = 0
    thumbnails = entry.get("thumbnails") or []
    return Item(
        created=_unix_seconds(entry.get("created")),
        updated=_unix_seconds(entry.get("updated")),
        source_id=f"shops_{item_id}" if is_shop else item_id,
        title=str(entry.get("name") or ""),
        price=price,
        image_url=thumbnails[0] if thumbnails and isinstance(thumbnails[0], str) else "",
        item_url=urljoin(web_url, path),
        status=ItemStatus.SOLD if entry.get("status") in SOLD_API_STATUSES else ItemStatus.ON_SALE,
    )


def items_from_api_response(body: Mapping[str, Any], web_url: str = MERCARI_WEB_URL) -> list[Item]:
    """The items of a ``/v2/entities:search`` response, in order; entries without an id are
    skipped."""
    entries = body.get("items") or []
    return [item for entry in entries if isinstance(entry, Mapping) and (item := _api_item(entry, web_url))]


def _unix_seconds(value: Any) -> int:
    """A time the API writes as unix seconds in a string; 0 (not reported) when it is not one."""
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        return 0
    return seconds if 0 < seconds <= MAX_UNIX_SECONDS else 0


def result_count(body: Mapping[str, Any]) -> int | None:
    """``meta.numFound``: how many results the search counts (a little more than it serves)."""
    meta = body.get("meta")
    try:
        count = int(meta.get("numFound")) if isinstance(meta, Mapping) else None
    except (TypeError, ValueError):
        return None
    return count if count is not None and count >= 0 else None


def next_page_token(body: Mapping[str, Any]) -> str:
    meta = body.get("meta")
    token = meta.get("nextPageToken") if isinstance(meta, Mapping) else None
    return token if isinstance(token, str) else ""
