"""SPEC §6 "Bounds" (issue 17 #1, #3, #7, #8): the wire decoder refuses what no crawl can
produce — a crawl time more than an hour ahead of the processor's clock or before 2012, an id,
title or URL longer than its column, a negative price, more items than the crawled pages hold,
page counts beyond 20 per phase — with :class:`OutOfBounds` naming the field and the bound."""

from __future__ import annotations

import json

import pytest

from animehot_dagster.domain.messages import (
    EARLIEST_TIME,
    MAX_PAGES_PER_PHASE,
    PAGE_SIZE,
    MessageError,
    OutOfBounds,
    decode_request,
    decode_response,
)
from animehot_dagster.storage import schema

NOW = 1_790_000_000  # 2026-09-21
HOUR = 3600


def result(**fields) -> dict:
    body = {"ipId": "15", "taskId": "t-1", "crawledAt": str(NOW), "pagesCrawled": 2,
            "items": [{"sourceId": "m5", "title": "ちいかわ", "price": 10}]}
    body.update(fields)
    return body


def item(**fields) -> dict:
    return {"sourceId": "m1", "title": "t", "price": 100, **fields}


def refused(body: dict, now: float = NOW) -> str:
    with pytest.raises(OutOfBounds) as caught:
        decode_response(json.dumps(body), now=now)
    assert isinstance(caught.value, MessageError)  # every path that handles undecodable ones handles it
    return str(caught.value)


def test_a_sane_result_decodes():
    assert decode_response(json.dumps(result()), now=NOW).crawled_at == NOW


def test_the_probe_result_of_issue_1_is_refused():
    reason = refused({"ipId": "15", "taskId": "h-future", "crawledAt": "253402300000",
                      "items": [{"sourceId": "m5", "price": 10}]})
    assert reason.startswith("CrawlResponse.crawledAt: ")
    assert "more than an hour ahead" in reason


@pytest.mark.parametrize("crawled_at", [NOW + HOUR + 1, 32_503_680_000, 253_402_300_000])  # +1 h 1 s, year 3000, 9999
def test_a_crawl_time_more_than_an_hour_ahead_is_refused(crawled_at):
    assert "more than an hour ahead" in refused(result(crawledAt=str(crawled_at)))


def test_an_hour_ahead_is_still_a_clock_skew_not_a_fault():
    assert decode_response(json.dumps(result(crawledAt=str(NOW + HOUR))), now=NOW).crawled_at == NOW + HOUR


def test_a_crawl_time_before_2012_is_refused():
    assert "before 2012" in refused(result(crawledAt=str(EARLIEST_TIME - 1)))
    assert decode_response(json.dumps(result(crawledAt=str(EARLIEST_TIME))), now=NOW).crawled_at == EARLIEST_TIME


def test_the_bound_follows_the_processors_clock():
    ahead = result(crawledAt=str(NOW + 2 * HOUR))
    refused(ahead)
    assert decode_response(json.dumps(ahead), now=NOW + HOUR).crawled_at == NOW + 2 * HOUR


@pytest.mark.parametrize(("field", "length", "column"), [
    ("taskId", 65, "CrawlResponse.taskId"),
    ("taskId", 202, "CrawlResponse.taskId"),
])
def test_a_task_id_longer_than_its_column_is_refused(field, length, column):
    reason = refused(result(**{field: "x" * length}))
    assert reason.startswith(f"{column}: ") and "64" in reason


@pytest.mark.parametrize(("field", "limit"), [("sourceId", 64), ("title", 512), ("imageUrl", 1024), ("itemUrl", 1024)])
def test_item_fields_longer_than_their_columns_are_refused(field, limit):
    fine = result(items=[item(**{field: "あ" * limit})])
    assert decode_response(json.dumps(fine), now=NOW)  # characters, as utf8mb4 columns count them
    reason = refused(result(items=[item(), item(**{field: "あ" * (limit + 1)})]))
    assert reason.startswith(f"CrawlResponse.items[1].{field}: ") and str(limit) in reason


def test_a_101_character_source_id_of_the_probe_is_refused():
    assert "items[0].sourceId" in refused(result(items=[item(sourceId="s" * 101)]))


def test_a_negative_price_is_refused():
    assert "items[0].price" in refused(result(items=[item(price=-1)]))


def test_more_items_than_the_pages_hold_are_refused():
    full = [item(sourceId=f"m{n}") for n in range(2 * PAGE_SIZE)]
    assert len(decode_response(json.dumps(result(items=full, pagesCrawled=2)), now=NOW).items) == 2 * PAGE_SIZE
    reason = refused(result(items=full + [item(sourceId="one-more")], pagesCrawled=2))
    assert "241 items" in reason and "2 pages" in reason
    # pagesCrawled omitted (0, proto3): bounded by the most a crawl reads, 2 phases × 20 pages.
    most = [item(sourceId=f"m{n}") for n in range(2 * MAX_PAGES_PER_PHASE * PAGE_SIZE)]
    assert decode_response(json.dumps(result(items=most, pagesCrawled=0)), now=NOW)
    assert "4801 items" in refused(result(items=most + [item(sourceId="one-more")], pagesCrawled=0))


def test_the_100000_item_result_of_the_probe_is_refused():
    many = [item(sourceId=f"m{n}") for n in range(100_000)]
    assert "items" in refused(result(items=many, pagesCrawled=10))


@pytest.mark.parametrize("pages", [2 * MAX_PAGES_PER_PHASE + 1, 100_000, -1])
def test_pages_crawled_beyond_both_phases_are_refused(pages):
    assert "pagesCrawled" in refused(result(pagesCrawled=pages, items=[]))


@pytest.mark.parametrize(("field", "value"), [("totalFound", -1), ("retryCount", -1)])
def test_negative_counts_are_refused(field, value):
    assert field in refused(result(**{field: value}))


@pytest.mark.parametrize("field", ["foundOnSale", "foundSold"])
def test_result_counts_fit_their_columns(field):
    assert decode_response(json.dumps(result(**{field: "0"})), now=NOW)
    assert field in refused(result(**{field: str(2**63)}))  # BIGINT


@pytest.mark.parametrize("field", ["created", "updated"])
def test_listing_times_lie_in_the_same_window(field):
    assert decode_response(json.dumps(result(items=[item(**{field: str(NOW - 86400)})])), now=NOW)
    assert decode_response(json.dumps(result(items=[item()])), now=NOW).items[0].created == 0  # not reported
    assert f"items[0].{field}" in refused(result(items=[item(**{field: str(NOW + 2 * HOUR)})]))
    assert f"items[0].{field}" in refused(result(items=[item(**{field: str(EARLIEST_TIME - 1)})]))


def request(**fields) -> str:
    return json.dumps({"ipId": "1", "keyword": "k", "taskId": "t", **fields})


def test_a_task_asking_for_more_than_20_pages_a_phase_is_refused():
    assert decode_request(request(pagesOnSale=20, pagesSold=20)).pages_on_sale == 20
    for field in ("pagesOnSale", "pagesSold"):
        with pytest.raises(OutOfBounds, match=f"CrawlRequest.{field}"):
            decode_request(request(**{field: 100_000}))
        with pytest.raises(OutOfBounds, match=f"CrawlRequest.{field}"):
            decode_request(request(**{field: -1}))
    # 0 stays "not said" (proto3 omits zeros): the node then uses its own page counts.
    assert decode_request(request()).pages_on_sale == 0


def test_a_task_id_longer_than_its_column_is_refused_in_a_task_too():
    with pytest.raises(OutOfBounds, match="CrawlRequest.taskId"):
        decode_request(request(taskId="x" * 65))


def test_the_bounds_match_the_columns():
    columns = {
        "task_id": [schema.crawl_log.c.task_id, schema.item_events.c.task_id],
        "source_id": [schema.item_snapshots.c.source_id, schema.item_events.c.source_id,
                      schema.listings_seen.c.source_id],
        "title": [schema.item_snapshots.c.title, schema.item_events.c.title],
        "url": [schema.item_snapshots.c.image_url, schema.item_snapshots.c.item_url,
                schema.item_events.c.image_url, schema.item_events.c.item_url],
    }
    from animehot_dagster.domain.messages import MAX_LENGTHS

    for name, cols in columns.items():
        assert {col.type.length for col in cols} == {MAX_LENGTHS[name]}, name


def test_the_page_size_is_the_crawlers():
    from animehot_dagster.crawler import parse

    assert parse.PAGE_SIZE == PAGE_SIZE


def test_the_settings_cannot_ask_for_tasks_out_of_bounds():
    from animehot_dagster.settings import SettingsError, load_settings

    assert load_settings({"SCHEDULER_PAGES_ON_SALE": "20", "SCHEDULER_PAGES_SOLD": "20"}).scheduler_pages_sold == 20
    with pytest.raises(SettingsError, match="SCHEDULER_PAGES_ON_SALE=21: at most 20 pages a phase"):
        load_settings({"SCHEDULER_PAGES_ON_SALE": "21"})
