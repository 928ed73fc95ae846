"""The protobuf-JSON wire codec of CrawlRequest / CrawlResponse / Item (SPEC §6)."""

from __future__ import annotations

import json
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from animehot_dagster.domain.cadence import CadencePolicy
from animehot_dagster.domain.messages import (
    EARLIEST_TIME,
    MAX_PAGES_PER_PHASE,
    CrawlRequest,
    CrawlResponse,
    Item,
    ItemStatus,
    MessageError,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)

INT32 = st.integers(-(2**31), 2**31 - 1)
UINT64 = st.integers(1, 2**64 - 1)
TEXT = st.text(max_size=20)
# Within SPEC §6's bounds (test_message_bounds.py tests them): 2012 to now, counts ≥ 0.
NOW = 1_790_000_000
TIMES = st.integers(EARLIEST_TIME, NOW)
NON_NEGATIVE = st.integers(0, 2**31 - 1)

items = st.builds(
    Item,
    source_id=TEXT,
    title=TEXT,
    price=NON_NEGATIVE,
    image_url=TEXT,
    item_url=TEXT,
    status=st.sampled_from(ItemStatus),
    created=TIMES | st.just(0),
    updated=TIMES | st.just(0),
)
COUNT = st.none() | st.integers(0, 2**63 - 1)
responses = st.builds(
    CrawlResponse,
    ip_id=UINT64,
    task_id=TEXT.filter(bool),
    crawled_at=TIMES,
    items=st.lists(items, max_size=5).map(tuple),
    total_found=NON_NEGATIVE,
    error_message=TEXT,
    pages_crawled=st.integers(0, 2 * MAX_PAGES_PER_PHASE),
    retry_count=NON_NEGATIVE,
    found_on_sale=COUNT,
    found_sold=COUNT,
    on_sale_more=st.booleans(),
)
requests = st.builds(
    CrawlRequest,
    ip_id=UINT64,
    keyword=TEXT.filter(bool),
    task_id=TEXT.filter(bool),
    created_at=st.integers(-(2**63), 2**63 - 1),
    retry_count=NON_NEGATIVE,
    pages_on_sale=st.integers(0, MAX_PAGES_PER_PHASE),
    pages_sold=st.integers(0, MAX_PAGES_PER_PHASE),
)


# ------------------------------------------------------------------------------ round trip


@settings(max_examples=300)
@given(responses)
def test_response_round_trip(message):
    assert decode_response(encode_response(message)) == message


@settings(max_examples=300)
@given(requests)
def test_request_round_trip(message):
    assert decode_request(encode_request(message)) == message


@given(responses)
def test_decode_accepts_bytes_and_parsed_objects(message):
    wire = encode_response(message)
    assert decode_response(wire.encode("utf-8")) == message
    assert decode_response(json.loads(wire)) == message


# ------------------------------------------------------------------------------ encoding rules


def test_encoding_uses_camel_case_strings_for_64_bit_ints_and_omits_zero_values():
    message = CrawlResponse(
        ip_id=42,
        task_id="7b0c3f9e-8f0e-4d55-9d2c-2f7c1e3a6b10",
        crawled_at=1767225600,
        items=(
            Item(source_id="m123", title="ちいかわ ぬいぐるみ", price=1200, item_url="https://jp.mercari.com/item/m123"),
            Item(source_id="m456", price=800, status=ItemStatus.SOLD),
        ),
        total_found=2,
        pages_crawled=10,
    )
    body = json.loads(encode_response(message))
    assert body == {
        "ipId": "42",
        "taskId": "7b0c3f9e-8f0e-4d55-9d2c-2f7c1e3a6b10",
        "crawledAt": "1767225600",
        "items": [
            {"sourceId": "m123", "title": "ちいかわ ぬいぐるみ", "price": 1200, "itemUrl": "https://jp.mercari.com/item/m123"},
            {"sourceId": "m456", "price": 800, "status": "ITEM_STATUS_SOLD"},
        ],
        "totalFound": 2,
        "pagesCrawled": 10,
    }
    # Japanese text stays readable on the wire
    assert "ちいかわ" in encode_response(message)


def test_request_encoding():
    request = CrawlRequest(ip_id=2**63 + 5, keyword="初音ミク", task_id="t-1", created_at=1767225600, pages_on_sale=5, pages_sold=5)
    assert json.loads(encode_request(request)) == {
        "ipId": str(2**63 + 5),
        "keyword": "初音ミク",
        "taskId": "t-1",
        "createdAt": "1767225600",
        "pagesOnSale": 5,
        "pagesSold": 5,
    }


def test_empty_response_encodes_only_what_is_set():
    body = json.loads(encode_response(CrawlResponse(ip_id=1, task_id="t", crawled_at=5, error_message="no_items")))
    assert body == {"ipId": "1", "taskId": "t", "crawledAt": "5", "errorMessage": "no_items"}


# ------------------------------------------------------------------------------ decoding rules


def test_original_node_message_decodes():
    """A result as a crawler node of the original system sends it: ids as strings, the on-sale
    status omitted, fields this project does not know."""
    wire = (
        '{"ipId":"3","items":['
        '{"sourceId":"m71234567890","title":"呪術廻戦 缶バッジ","price":1200,'
        '"imageUrl":"https://static.mercdn.net/thumb/item/webp/m71234567890_1.jpg",'
        '"itemUrl":"https://jp.mercari.com/item/m71234567890"},'
        '{"sourceId":"shops_abc123","title":"五条悟 フィギュア","price":4800,"status":"ITEM_STATUS_SOLD",'
        '"itemUrl":"https://jp.mercari.com/shops/product/abc123"}],'
        '"totalFound":2,"taskId":"0f8b1d9e-2c4a-4f3e-9a71-5b6c7d8e9f00","crawledAt":"1767225600",'
        '"pagesCrawled":10,"nodeVersion":"1.4.2","listedAt":["1767220000"]}'
    )
    message = decode_response(wire)
    assert message == CrawlResponse(
        ip_id=3,
        task_id="0f8b1d9e-2c4a-4f3e-9a71-5b6c7d8e9f00",
        crawled_at=1767225600,
        items=(
            Item(
                source_id="m71234567890",
                title="呪術廻戦 缶バッジ",
                price=1200,
                image_url="https://static.mercdn.net/thumb/item/webp/m71234567890_1.jpg",
                item_url="https://jp.mercari.com/item/m71234567890",
                status=ItemStatus.ON_SALE,
            ),
            Item(
                source_id="shops_abc123",
                title="五条悟 フィギュア",
                price=4800,
                item_url="https://jp.mercari.com/shops/product/abc123",
                status=ItemStatus.SOLD,
            ),
        ),
        total_found=2,
        pages_crawled=10,
    )
    assert not message.failed


def test_original_node_request_decodes():
    request = decode_request('{"ipId":"12","keyword":"ブルーロック","taskId":"abc","createdAt":"1767225600","pagesOnSale":5,"pagesSold":5}')
    assert request == CrawlRequest(12, "ブルーロック", "abc", 1767225600, 0, 5, 5)


@pytest.mark.parametrize("ip_id", ['"7"', "7", "7.0", '" 7 "'])
def test_64_bit_ints_decode_from_strings_or_numbers(ip_id):
    message = decode_response(f'{{"ipId":{ip_id},"taskId":"t","crawledAt":1767225600}}')
    assert message.ip_id == 7
    assert message.crawled_at == 1767225600


def test_32_bit_ints_decode_from_strings_too():
    message = decode_response('{"ipId":1,"taskId":"t","crawledAt":"1767225600","totalFound":"120","items":[{"sourceId":"m1","price":"1500"}]}')
    assert message.total_found == 120
    assert message.items[0].price == 1500


def test_largest_uint64_ip_id():
    assert decode_response(f'{{"ipId":"{2**64 - 1}","taskId":"t","crawledAt":"1767225600"}}').ip_id == 2**64 - 1


@pytest.mark.parametrize(
    "status, expected",
    [
        ('"ITEM_STATUS_SOLD"', ItemStatus.SOLD),
        ('"ITEM_STATUS_ON_SALE"', ItemStatus.ON_SALE),
        ("1", ItemStatus.SOLD),
        ("0", ItemStatus.ON_SALE),
        ("null", ItemStatus.ON_SALE),
    ],
)
def test_enum_by_name_or_number(status, expected):
    message = decode_response(f'{{"ipId":1,"taskId":"t","crawledAt":1767225600,"items":[{{"sourceId":"m1","status":{status}}}]}}')
    assert message.items[0].status is expected


def test_missing_status_means_on_sale():
    message = decode_response('{"ipId":1,"taskId":"t","crawledAt":1767225600,"items":[{"sourceId":"m1","price":100}]}')
    assert message.items[0].status is ItemStatus.ON_SALE
    assert not message.items[0].is_sold


def test_omitted_fields_take_zero_values():
    message = decode_response('{"ipId":"1","taskId":"t","crawledAt":"1767225600","items":[{}]}')
    assert message.items == (Item(source_id=""),)
    assert (message.total_found, message.error_message, message.pages_crawled, message.retry_count) == (0, "", 0, 0)
    assert message.items[0] == Item(source_id="", title="", price=0, image_url="", item_url="", status=ItemStatus.ON_SALE)


def test_item_without_source_id_decodes_so_the_state_machine_can_skip_it():
    # proto3 omits an empty sourceId; one such item must not make the whole result unreadable.
    message = decode_response('{"ipId":"1","taskId":"t","crawledAt":"1767225600","items":[{"title":"広告","price":100},{"sourceId":"m2"}]}')
    assert [i.source_id for i in message.items] == ["", "m2"]


def test_unknown_fields_are_ignored_at_every_level():
    message = decode_response(
        '{"ipId":1,"taskId":"t","crawledAt":1767225600,"somethingNew":{"deep":[1,2]},'
        '"items":[{"sourceId":"m1","createdAt":"1767000000","thumbnails":["x"]}]}'
    )
    assert message.items == (Item(source_id="m1"),)


def test_snake_case_field_names_are_accepted():
    message = decode_response(
        '{"ip_id":"9","task_id":"t","crawled_at":"1767225600","total_found":3,"error_message":"no_items",'
        '"pages_crawled":2,"retry_count":1,"items":[{"source_id":"m1","image_url":"i","item_url":"u","status":"ITEM_STATUS_SOLD"}]}'
    )
    assert message == CrawlResponse(
        ip_id=9,
        task_id="t",
        crawled_at=1767225600,
        items=(Item(source_id="m1", image_url="i", item_url="u", status=ItemStatus.SOLD),),
        total_found=3,
        error_message="no_items",
        pages_crawled=2,
        retry_count=1,
    )
    request = decode_request('{"ip_id":1,"keyword":"k","task_id":"t","created_at":5,"pages_on_sale":3,"pages_sold":2}')
    assert (request.pages_on_sale, request.pages_sold, request.created_at) == (3, 2, 5)


@pytest.mark.parametrize("error, failed", [("", False), ("no_items", False), ("timeout: all 10 pages failed", True)])
def test_no_items_is_not_a_failure(error, failed):
    assert CrawlResponse(ip_id=1, task_id="t", crawled_at=1, error_message=error).failed is failed


# ------------------------------------------------------------------------------ malformed input


@pytest.mark.parametrize(
    "wire, path",
    [
        ('{"ipId":1,"taskId":"t","crawledAt":1767225600,"items":[{"sourceId":"a"},{"sourceId":"b"},{"sourceId":"c"},{"sourceId":"d","price":"12yen"}]}', "CrawlResponse.items[3].price"),
        ('{"ipId":1,"taskId":"t","crawledAt":1767225600,"items":[{"sourceId":"a","price":1.5}]}', "CrawlResponse.items[0].price"),
        ('{"ipId":1,"taskId":"t","crawledAt":1767225600,"items":[{"sourceId":"a","price":2147483648}]}', "CrawlResponse.items[0].price"),
        ('{"ipId":1,"taskId":"t","crawledAt":1767225600,"items":[{"sourceId":"a","price":true}]}', "CrawlResponse.items[0].price"),
        ('{"ipId":1,"taskId":"t","crawledAt":1767225600,"items":[{"sourceId":"a","status":"ITEM_STATUS_TRADING"}]}', "CrawlResponse.items[0].status"),
        ('{"ipId":1,"taskId":"t","crawledAt":1767225600,"items":[{"sourceId":"a","status":7}]}', "CrawlResponse.items[0].status"),
        ('{"ipId":1,"taskId":"t","crawledAt":1767225600,"items":[{"sourceId":"a","status":{"x":1}}]}', "CrawlResponse.items[0].status"),
        ('{"ipId":1,"taskId":"t","crawledAt":1767225600,"items":[{"sourceId":123}]}', "CrawlResponse.items[0].sourceId"),
        ('{"ipId":1,"taskId":"t","crawledAt":1767225600,"items":[{"sourceId":"a"},"m2"]}', "CrawlResponse.items[1]"),
        ('{"ipId":1,"taskId":"t","crawledAt":1767225600,"items":{"sourceId":"a"}}', "CrawlResponse.items"),
        ('{"ipId":"-1","taskId":"t","crawledAt":1767225600}', "CrawlResponse.ipId"),
        (f'{{"ipId":"{2**64}","taskId":"t","crawledAt":1767225600}}', "CrawlResponse.ipId"),
        ('{"ipId":"abc","taskId":"t","crawledAt":1767225600}', "CrawlResponse.ipId"),
        ('{"ipId":[1],"taskId":"t","crawledAt":1767225600}', "CrawlResponse.ipId"),
        (f'{{"ipId":1,"taskId":"t","crawledAt":"{2**63}"}}', "CrawlResponse.crawledAt"),
        ('{"ipId":1,"taskId":"t","crawledAt":1767225600,"totalFound":"many"}', "CrawlResponse.totalFound"),
        ('{"ipId":1,"taskId":5,"crawledAt":1767225600}', "CrawlResponse.taskId"),
        ('{"ipId":1,"taskId":"t","crawledAt":1767225600,"errorMessage":false}', "CrawlResponse.errorMessage"),
        ('{"taskId":"t","crawledAt":1767225600}', "CrawlResponse.ipId"),
        ('{"ipId":1,"crawledAt":1767225600}', "CrawlResponse.taskId"),
        ('{"ipId":1,"taskId":"t"}', "CrawlResponse.crawledAt"),
        ('{"ipId":1,"taskId":"","crawledAt":1767225600}', "CrawlResponse.taskId"),
    ],
)
def test_malformed_response_names_the_field(wire, path):
    with pytest.raises(MessageError) as raised:
        decode_response(wire)
    assert str(raised.value).startswith(path + ":"), str(raised.value)


@pytest.mark.parametrize(
    "wire, path",
    [
        ('{"keyword":"k","taskId":"t"}', "CrawlRequest.ipId"),
        ('{"ipId":1,"taskId":"t"}', "CrawlRequest.keyword"),
        ('{"ipId":1,"keyword":"k"}', "CrawlRequest.taskId"),
        ('{"ipId":1,"keyword":"k","taskId":"t","pagesOnSale":"five"}', "CrawlRequest.pagesOnSale"),
        ('{"ipId":1,"keyword":"k","taskId":"t","retryCount":2147483648}', "CrawlRequest.retryCount"),
    ],
)
def test_malformed_request_names_the_field(wire, path):
    with pytest.raises(MessageError) as raised:
        decode_request(wire)
    assert str(raised.value).startswith(path + ":"), str(raised.value)


@pytest.mark.parametrize("wire", ["", "not json", '{"ipId":1', b"\xff\xfe{}"])
def test_not_json_is_a_message_error(wire):
    with pytest.raises(MessageError, match=r"^CrawlResponse: not JSON"):
        decode_response(wire)


@pytest.mark.parametrize("wire", ["[]", "42", '"text"', "null"])
def test_non_object_is_a_message_error(wire):
    with pytest.raises(MessageError, match=r"^CrawlResponse: expected a JSON object"):
        decode_response(wire)


@settings(max_examples=300)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(), lambda children: st.lists(children) | st.dictionaries(st.sampled_from(["ipId", "taskId", "crawledAt", "items", "price", "status", "sourceId", "x"]), children), max_leaves=12))
def test_any_json_either_decodes_or_raises_message_error(document):
    """Whatever a node sends, the decoder answers with a message or a MessageError, never a crash."""
    try:
        decode_response(json.dumps(document))
    except MessageError:
        pass
    try:
        decode_response({"ipId": 1, "taskId": "t", "crawledAt": 1767225600, "items": [document]})
    except MessageError as exc:
        assert str(exc).startswith("CrawlResponse.items[0]")


@pytest.mark.parametrize("crawled_at", ["-1", "0", str(10**12)])
def test_a_crawl_time_no_date_can_hold_is_malformed(crawled_at):
    with pytest.raises(MessageError, match=r"^CrawlResponse\.crawledAt: "):
        decode_response({"ipId": "1", "taskId": "t", "crawledAt": crawled_at})


# ------------------------------------------------------------------ event-time additions (§4.1)


def test_result_counts_keep_zero_and_listing_times_travel_as_strings():
    message = CrawlResponse(
        ip_id=1, task_id="t", crawled_at=1_700_000_000, found_on_sale=0, found_sold=12, on_sale_more=True,
        items=(Item(source_id="m1", created=1_699_990_000, updated=1_699_999_000),),
    )
    body = json.loads(encode_response(message))
    assert body["foundOnSale"] == "0" and body["foundSold"] == "12" and body["onSaleMore"] is True
    assert body["items"][0]["created"] == "1699990000" and body["items"][0]["updated"] == "1699999000"
    decoded = decode_response(body)
    assert decoded == message and decoded.has_counts


def test_a_result_of_an_original_node_has_no_counts():
    decoded = decode_response({"ipId": "1", "taskId": "t", "crawledAt": "1700000000", "items": [{"sourceId": "m1"}]})
    assert decoded.found_on_sale is None and decoded.found_sold is None and not decoded.has_counts
    assert decoded.items[0].created == 0
    assert not decode_response({"ipId": "1", "taskId": "t", "crawledAt": "1767225600", "foundSold": "3"}).has_counts


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [("foundSold", "-1", "CrawlResponse.foundSold"), ("foundOnSale", "x", "CrawlResponse.foundOnSale"),
     ("onSaleMore", "yes", "CrawlResponse.onSaleMore")],
)
def test_malformed_counts_name_the_field(field, value, path):
    with pytest.raises(MessageError, match=path.replace(".", r"\.")):
        decode_response({"ipId": "1", "taskId": "t", "crawledAt": "1767225600", field: value})


def test_a_new_task_reads_the_budgets_pages_under_a_fresh_task_id():
    budget = CadencePolicy(pages_on_sale=3, pages_sold=1)
    first = CrawlRequest.new_task(7, "初音ミク", budget, 1_700_000_000.9)
    second = CrawlRequest.new_task(7, "初音ミク", budget, 1_700_000_000.9)
    assert (first.ip_id, first.keyword, first.created_at, first.retry_count) == (7, "初音ミク", 1_700_000_000, 0)
    assert (first.pages_on_sale, first.pages_sold) == (3, 1)
    assert first.task_id != second.task_id and str(uuid.UUID(first.task_id)) == first.task_id
    assert CrawlRequest.new_task(0, "k", budget, 0, task_id="cli").task_id == "cli"
