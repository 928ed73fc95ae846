"""The pure parsers: the recorded real API response, search page HTML in every price format,
and the browser's in-page extraction agreeing with the HTML parser on the same markup."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
from pathlib import Path

import pytest
import yaml
from playwright.async_api import async_playwright

from animehot_dagster.crawler.api import search_request_body
from animehot_dagster.crawler.browser import (
    CHROMIUM_ARGS,
    CHROMIUM_PATH,
    COLLECT_CELLS_SCRIPT,
    PAGE_SELECTORS,
)
from animehot_dagster.crawler.dpop import DpopSigner
from animehot_dagster.crawler.page import SearchQuery
from animehot_dagster.crawler.parse import (
    RawCell,
    items_from_api_response,
    items_from_cells,
    items_from_search_html,
    next_page_token,
    price_from_text,
    result_count,
    source_id_from_href,
    title_from_cell,
)
from animehot_dagster.domain.messages import Item, ItemStatus

FIXTURE = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "mercari-api" / "search_sort_created_desc.yml"


@pytest.fixture(scope="module")
def recorded() -> dict:
    interaction = yaml.safe_load(FIXTURE.read_text(encoding="utf-8"))["interactions"][0]
    return {
        "request_body": json.loads(interaction["request"]["body"]),
        "dpop": interaction["request"]["headers"]["dpop"][0],
        "response": json.loads(interaction["response"]["content"]),
    }


def test_the_recorded_response_gives_every_item_with_its_status_price_and_urls(recorded):
    raw = recorded["response"]["items"]
    items = items_from_api_response(recorded["response"])
    assert [item.source_id for item in items] == [entry["id"] for entry in raw]
    assert len(items) == 84
    assert sum(item.is_sold for item in items) == 65  # 63 SOLD_OUT + 2 TRADING
    assert items[0] == Item(
        source_id="m11517428736",
        title="ヲタCrossLine Chronicle 1",
        price=4500,
        image_url="https://static.mercdn.net/c!/w=240,f=webp/thumb/photos/m11517428736_1.jpg?1701093648",
        item_url="https://jp.mercari.com/item/m11517428736",
        status=ItemStatus.SOLD,  # ITEM_STATUS_TRADING
        created=1701093648,  # the recorded listing and update times
        updated=1701492303,
    )
    assert all(
        (item.created, item.updated) == (int(entry["created"]), int(entry["updated"]))
        for item, entry in zip(items, raw, strict=True)
    )
    assert result_count(recorded["response"]) == 90  # meta.numFound: 90 counted, 84 served
    on_sale = next(item for item in items if item.source_id == "m67454606048")
    assert (on_sale.price, on_sale.status) == (50000, ItemStatus.ON_SALE)
    assert all(item.price == int(entry["price"]) for item, entry in zip(items, raw, strict=True))
    assert next_page_token(recorded["response"]) == ""


def test_no_price_and_shop_items_from_the_api(recorded):
    body = copy.deepcopy(recorded["response"])
    body["items"][0]["price"] = "9999999"
    body["items"][1].update(id="2GqG6pPQmtUgGJEYmgYdX7", itemType="ITEM_TYPE_BEYOND")
    body["items"].append({"name": "no id: skipped"})
    first, shop = items_from_api_response(body, web_url="http://127.0.0.1:8090")[:2]
    assert first.price == 0
    assert shop.source_id == "shops_2GqG6pPQmtUgGJEYmgYdX7"
    assert shop.item_url == "http://127.0.0.1:8090/shops/product/2GqG6pPQmtUgGJEYmgYdX7"
    assert len(items_from_api_response(body)) == 84


def test_the_request_body_has_the_recorded_shape(recorded):
    body = search_request_body(SearchQuery("sharpnel", sold=True), "v1:1", "2d8a929ef4874cd9afa88eea4ea984a2")
    expected = recorded["request_body"]
    assert list(body) == list(expected)
    assert list(body["searchCondition"]) == list(expected["searchCondition"])
    assert body["pageSize"] == 120 and body["pageToken"] == "v1:1"
    condition = body["searchCondition"]
    assert (condition["keyword"], condition["sort"], condition["order"]) == ("sharpnel", "SORT_CREATED_TIME", "ORDER_DESC")
    assert condition["status"] == ["STATUS_SOLD_OUT", "STATUS_TRADING"]
    on_sale = search_request_body(SearchQuery("sharpnel", sold=False), "", "x")["searchCondition"]["status"]
    assert on_sale == ["STATUS_ON_SALE"]


def _jwt_part(token: str, index: int) -> dict:
    part = token.split(".")[index]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def test_our_dpop_proof_has_the_recorded_header_and_claims(recorded):
    ours = DpopSigner().proof("https://api.mercari.jp/v2/entities:search")
    assert set(_jwt_part(ours, 0)) == set(_jwt_part(recorded["dpop"], 0)) == {"typ", "alg", "jwk"}
    assert set(_jwt_part(ours, 0)["jwk"]) == set(_jwt_part(recorded["dpop"], 0)["jwk"]) == {"crv", "kty", "x", "y"}
    assert set(_jwt_part(ours, 1)) == set(_jwt_part(recorded["dpop"], 1)) == {"iat", "jti", "htu", "htm", "uuid"}


@pytest.mark.parametrize(
    ("text", "yen"),
    [("¥1,200", 1200), ("￥ 200", 200), ("1,999", 1999), ("¥9,999,999", 0), ("", 0), ("¥ -", 0), ("¥300 税込", 300)],
)
def test_price_text_in_every_written_form(text, yen):
    assert price_from_text(text) == yen


@pytest.mark.parametrize(
    ("href", "source_id"),
    [
        ("/item/m12345678901", "m12345678901"),
        ("https://jp.mercari.com/item/m12345678901?source=search", "m12345678901"),
        ("/shops/product/2GqG6pPQmtUgGJEYmgYdX7", "shops_2GqG6pPQmtUgGJEYmgYdX7"),
        ("/promotion/summer", None),
    ],
)
def test_source_ids_from_links(href, source_id):
    assert source_id_from_href(href) == source_id


def test_the_title_falls_back_to_the_image_alt_without_its_suffix():
    assert title_from_cell(" ちいかわ ぬいぐるみ ", "x") == "ちいかわ ぬいぐるみ"
    assert title_from_cell("", "ちいかわ ぬいぐるみのサムネイル") == "ちいかわ ぬいぐるみ"


SOLD_STICKER = '<div data-testid="thumbnail-sticker" aria-label="売り切れ"></div>'


def cell(href: str, name: str | None, price_markup: str, alt: str = "", sticker: str = "") -> str:
    title = f'<span data-testid="thumbnail-item-name">{name}</span>' if name is not None else ""
    return (
        f'<li data-testid="item-cell"><a href="{href}"><figure><img src="https://img/{href[-3:]}.jpg" alt="{alt}">'
        f"{sticker}<div>{price_markup}</div></figure>{title}</a></li>"
    )


SEARCH_HTML = (
    "<!DOCTYPE html><html><head><title>ちいかわの通販・購入はメルカリ</title></head><body><ul>"
    + cell("/item/m10000000001", "うさぎ 缶バッジ",
           '<span class="merPrice"><span class="currency">¥</span><span class="number">1,200</span></span>')
    + cell("/item/m10000000002", "ハチワレ", '<span class="merPrice__a1f3" data-testid="price">￥ 200</span>',
           sticker=SOLD_STICKER)
    + cell("/shops/product/AbC123xYz", "ショップ品", '<span class="number__6b27" data-testid="price">1,999</span>')
    + cell("/item/m10000000004", None, '<span class="merPrice">¥9,999,999</span>', alt="くりまんじゅうのサムネイル")
    + '<li data-testid="item-cell"><div>広告</div></li>'  # no link: an ad, skipped
    + cell("/item/m10000000001", "うさぎ 缶バッジ", '<span class="merPrice">¥1,200</span>')  # shown twice
    + "</ul></body></html>"
)
EXPECTED_ITEMS = [
    ("m10000000001", "うさぎ 缶バッジ", 1200, ItemStatus.ON_SALE),
    ("m10000000002", "ハチワレ", 200, ItemStatus.SOLD),
    ("shops_AbC123xYz", "ショップ品", 1999, ItemStatus.ON_SALE),
    ("m10000000004", "くりまんじゅう", 0, ItemStatus.ON_SALE),
]


def test_search_html_gives_each_cell_once_in_every_price_format():
    items = items_from_search_html(SEARCH_HTML, web_url="http://127.0.0.1:8090")
    assert [(i.source_id, i.title, i.price, i.status) for i in items] == EXPECTED_ITEMS
    assert items[2].item_url == "http://127.0.0.1:8090/shops/product/AbC123xYz"
    assert items[0].image_url == "https://img/001.jpg"


def test_the_browser_reads_the_same_html_to_the_same_items():
    async def extract_in_chromium() -> list[dict]:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM_PATH, args=list(CHROMIUM_ARGS))
            page = await browser.new_page()
            await page.set_content(SEARCH_HTML)
            cells = await page.evaluate(
                COLLECT_CELLS_SCRIPT, {"s": PAGE_SELECTORS, "limit": 120, "idleScrolls": 1, "settleMs": 0}
            )
            await browser.close()
            return cells

    in_browser = items_from_cells((RawCell(**c) for c in asyncio.run(extract_in_chromium())), "http://127.0.0.1:8090")
    assert in_browser == items_from_search_html(SEARCH_HTML, web_url="http://127.0.0.1:8090")
