"""Event-time figures through the real ingest (SPEC §4.1), on MySQL and on SQLite.

A small market is written out as crawl results with result counts and listing times: what each
crawl would see. The hourly rows must follow the market's own hours, revise an hour when a later
crawl finds more of it, and be the same whatever order the results arrive in.
"""

from __future__ import annotations

import dataclasses
import random
from datetime import timedelta

import sqlalchemy as sa

from animehot_dagster.domain.messages import Item, ItemStatus
from animehot_dagster.storage.ingest import IngestConfig, apply
from animehot_dagster.storage.schema import ip_stats_hourly
from animehot_dagster_tests.factories import T0, make_ips, response

CONFIG = IngestConfig()
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)


def listing(number: int, created, sold: bool = False) -> Item:
    return Item(
        source_id=f"m{number}", title=f"item {number}", price=1000 + number,
        status=ItemStatus.SOLD if sold else ItemStatus.ON_SALE, created=int(created.timestamp()),
        updated=int(created.timestamp()),
    )


def market_crawls(ip_id: int) -> list:
    """Crawls at 00:10, 02:10, 04:10 and 05:40 of a market where listing n is created at
    00:00 + 7n minutes (listings created before 00:10 exist at the baseline) and, from the second
    crawl on, 30 sales happen per hour (the sold count grows by them)."""
    moments = [T0 + 10 * MINUTE, T0 + 130 * MINUTE, T0 + 250 * MINUTE, T0 + 340 * MINUTE]
    crawls = []
    for index, at in enumerate(moments):
        created = [T0 - 60 * MINUTE + 7 * n * MINUTE for n in range(60)]
        items = [listing(n, c) for n, c in enumerate(created) if c <= at]
        sold_count = 1000 + int(30 * max(0.0, (at - moments[0]) / HOUR))
        crawls.append(
            response(ip_id, at, items, task_id=f"crawl-{index}", found_on_sale=len(items), found_sold=sold_count)
        )
    return crawls


def hourly_rows(engine, ip_id: int) -> list[tuple]:
    with engine.connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(
                sa.select(
                    ip_stats_hourly.c.hour_bucket,
                    ip_stats_hourly.c.inflow,
                    ip_stats_hourly.c.outflow,
                    ip_stats_hourly.c.active_count,
                    ip_stats_hourly.c.quality,
                    ip_stats_hourly.c.crawl_count,
                )
                .where(ip_stats_hourly.c.ip_id == ip_id)
                .order_by(ip_stats_hourly.c.hour_bucket)
            )
        ]


def test_listings_count_in_their_own_hour_and_sales_in_the_hours_between_crawls(engine):
    (ip_id,) = make_ips(engine, "イベント時刻")
    for result in market_crawls(ip_id):
        apply(engine, result, CONFIG, now=T0 + 6 * HOUR)
    rows = {row[0]: row[1:] for row in hourly_rows(engine, ip_id)}
    # Listings every 7 minutes from 23:00: each counts in its own hour once it was created after
    # the baseline crawl (00:10) and seen by a crawl (the last is at 05:40).
    created = [T0 + (7 * n - 60) * MINUTE for n in range(60)]
    counted = [c for c in created if T0 + 10 * MINUTE <= c <= T0 + 340 * MINUTE]
    expected_inflow = {T0 + i * HOUR: sum(1 for c in counted if T0 + i * HOUR <= c < T0 + (i + 1) * HOUR) for i in range(6)}
    assert {hour: figures[0] for hour, figures in rows.items()} == expected_inflow
    # 30 sales an hour from 00:10 on, spread over the hours between crawls: the hours that lie
    # whole between two crawls get 30, the first 25 (00:10-01:00), and every sale is counted once.
    outflow = {hour: figures[1] for hour, figures in rows.items()}
    assert outflow[T0] == 25 and outflow[T0 + HOUR] == 30 and outflow[T0 + 4 * HOUR] == 30
    assert sum(outflow.values()) == 1000 + 30 * 5.5 - 1000
    assert rows[T0][3] == "lower_bound"  # the baseline's hour
    assert rows[T0 + HOUR][3] == "counted" and rows[T0 + HOUR][4] == 0  # no crawl in it, still figures
    assert rows[T0 + 5 * HOUR][3] == "lower_bound"  # after the last crawl: not closed yet


def test_a_later_crawl_revises_an_hour_it_finds_more_listings_of(engine):
    (ip_id,) = make_ips(engine, "改訂")
    baseline, first = market_crawls(ip_id)[:2]
    # The first result missed the listings of 01:30-02:10 (a node whose pages ran short) …
    short = dataclasses.replace(first, items=tuple(i for i in first.items if i.created < int((T0 + 90 * MINUTE).timestamp())))
    apply(engine, baseline, CONFIG, now=T0 + 3 * HOUR)
    apply(engine, short, CONFIG, now=T0 + 3 * HOUR)
    before = {row[0]: row[1] for row in hourly_rows(engine, ip_id)}
    # … and the next crawl finds them: the 01 and 02 hours grow, their rows are rewritten.
    later = dataclasses.replace(first, task_id="later", crawled_at=first.crawled_at + 600)
    result = apply(engine, later, CONFIG, now=T0 + 3 * HOUR)
    after = {row[0]: row[1] for row in hourly_rows(engine, ip_id)}
    assert after[T0 + HOUR] > before[T0 + HOUR]
    assert T0 + HOUR in {f.hour_bucket for f in result.hours}


def test_the_rows_are_the_same_whatever_order_the_results_arrive_in(engine):
    ip_in_order, ip_shuffled = make_ips(engine, "順番どおり", "ばらばら")
    for result in market_crawls(ip_in_order):
        apply(engine, result, CONFIG, now=T0 + 6 * HOUR)
    shuffled = market_crawls(ip_shuffled)
    for seed in range(3):
        random.Random(seed).shuffle(shuffled)
    assert [r.task_id for r in shuffled] != [f"crawl-{i}" for i in range(4)]
    for result in shuffled:
        apply(engine, dataclasses.replace(result, task_id=result.task_id + "-b"), CONFIG, now=T0 + 6 * HOUR)
    assert hourly_rows(engine, ip_shuffled) == hourly_rows(engine, ip_in_order)
    assert hourly_rows(engine, ip_in_order)


def test_results_without_counts_keep_the_item_method(engine):
    (ip_id,) = make_ips(engine, "旧ノード")
    for result in market_crawls(ip_id):
        old = dataclasses.replace(
            result, found_on_sale=None, found_sold=None, pages_crawled=2,
            items=tuple(dataclasses.replace(i, created=0, updated=0) for i in result.items),
        )
        apply(engine, old, CONFIG, now=T0 + 6 * HOUR)
    rows = hourly_rows(engine, ip_id)
    # One row per crawl hour, with the new listings each crawl saw; the hours without a crawl
    # have none, and nothing is sold (the sold phase reported nothing). Each phase fitted in one
    # page, so the crawls saw every listing: exact.
    assert [row[0] for row in rows] == [T0, T0 + 2 * HOUR, T0 + 4 * HOUR, T0 + 5 * HOUR]
    assert [row[1] for row in rows] == [0, 17, 17, 13]
    assert all(row[2] == 0 and row[4] == "exact" for row in rows)
