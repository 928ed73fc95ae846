"""Data for the dashboard's browser tests and screenshots, written by the real ingest path.

Six IPs of a seeded simulated market (:class:`animehot_dagster.simulator.market.Market`, the one
the simulator serves) are crawled every three hours for eight and a half days: each crawl's pages are
what the simulator's search API answers at that moment (``wire.api_search_response``), read by the
crawler's own parser (``crawler.parse.items_from_api_response``), pushed onto the Redis results
queue and applied by the real :class:`~animehot_dagster.queue.processor.ResultProcessor` (ingest,
alerts, the next crawl in the schedule ZSET). The daily and weekly rollups then run as the
Dagster schedules run them (``storage.rollups``), so every leaderboard window has figures.

Nothing is written by hand: the hourly rows, items, alerts and schedule are what the system
makes of what it saw.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import redis
import sqlalchemy as sa

from animehot_dagster.crawler.parse import items_from_api_response
from animehot_dagster.domain.messages import CrawlResponse
from animehot_dagster.queue.processor import ResultProcessor
from animehot_dagster.queue.reliable import ResultQueue
from animehot_dagster.simulator.market import SOLD_STATUSES, ItemStatus, KeywordProfile, Market, Surge
from animehot_dagster.simulator.wire import api_search_response
from animehot_dagster.storage.ingest import IngestConfig
from animehot_dagster.storage.ip_catalog import import_ips
from animehot_dagster.storage.rollups import rollup_day, rollup_week

JST_OFFSET = timedelta(hours=9)
# Monday 2026-11-02 00:00 in Japan: the first crawls are the baseline, the week of 2–8 November is
# the last complete week at NOW, and Monday 9 November is "yesterday".
START = datetime(2026, 11, 1, 15, 0, tzinfo=UTC)
NOW = START + timedelta(days=8, hours=15, minutes=20)  # Tuesday 10 November, 15:20: after the 15:00 round
CRAWL_EVERY = timedelta(hours=3)
WEEK_START = date(2026, 11, 2)

IPS = (
    {"name": "鬼滅の刃", "name_en": "Demon Slayer", "name_cn": "鬼灭之刃", "category": "anime",
     "tags": ["ジャンプ", "アニメ"]},
    {"name": "ちいかわ", "name_en": "Chiikawa", "name_cn": "吉伊卡哇", "category": "character",
     "tags": ["キャラクター"]},
    {"name": "初音ミク", "name_en": "Hatsune Miku", "name_cn": "初音未来", "category": "vocaloid",
     "tags": ["ボカロ"]},
    {"name": "呪術廻戦", "name_en": "Jujutsu Kaisen", "name_cn": "咒术回战", "category": "anime",
     "tags": ["ジャンプ"]},
    {"name": "ホロライブ", "name_en": "hololive", "name_cn": "Hololive", "category": "vtuber",
     "tags": ["VTuber"]},
    {"name": "ブルーアーカイブ", "name_en": "Blue Archive", "name_cn": "蔚蓝档案", "category": "game",
     "tags": ["ゲーム"]},
)


def _surge(day: int, hours: int, listing: float, sale: float) -> Surge:
    start = int((START + timedelta(days=day, hours=10)).timestamp())
    return Surge(start=start, end=start + hours * 3600, listing_multiplier=listing, sale_multiplier=sale)


PROFILES = (
    KeywordProfile(keyword="鬼滅の刃", listings_per_hour=24, price_median=1800, mean_hours_to_sell=30),
    # a buying rush on the last day: outflow above inflow, the surge alert
    KeywordProfile(keyword="ちいかわ", listings_per_hour=30, price_median=1200, mean_hours_to_sell=20,
                   surges=(_surge(8, 6, 1.0, 6.0),)),
    KeywordProfile(keyword="初音ミク", listings_per_hour=12, price_median=3500, mean_hours_to_sell=60),
    # more listings than a crawl's page holds: the figures are estimated
    KeywordProfile(keyword="呪術廻戦", listings_per_hour=70, price_median=1500, mean_hours_to_sell=40),
    KeywordProfile(keyword="ホロライブ", listings_per_hour=8, price_median=4200, mean_hours_to_sell=90,
                   sell_probability=0.35),
    KeywordProfile(keyword="ブルーアーカイブ", listings_per_hour=15, price_median=2600, mean_hours_to_sell=45,
                   surges=(_surge(7, 8, 3.0, 1.0),)),
)

ON_SALE = frozenset({ItemStatus.ON_SALE})


@dataclasses.dataclass(frozen=True)
class DashboardMarket:
    ids: dict[str, int]  # by Japanese name
    crawls: int
    now: datetime = NOW


def crawl(market: Market, ip_id: int, keyword: str, at: datetime, task_id: str | None = None) -> CrawlResponse:
    """One page on sale and one page sold, as the crawler reads them from the simulator's API."""
    moment = int(at.timestamp())
    items: dict[str, object] = {}
    found: dict[bool, int] = {}
    more: dict[bool, bool] = {}
    for sold, statuses in ((False, ON_SALE), (True, SOLD_STATUSES)):
        page = market.search(keyword, moment, statuses)
        found[sold], more[sold] = page.num_found, page.has_next
        for item in items_from_api_response(api_search_response(page)):
            items[item.source_id] = item
    return CrawlResponse(ip_id=ip_id, task_id=task_id or str(uuid.uuid4()), crawled_at=moment,
                         items=tuple(items.values()), total_found=len(items), pages_crawled=2,
                         crawler_node="dashboard-fixture", found_on_sale=found[False], found_sold=found[True],
                         on_sale_more=more[False])


def build(engine: sa.Engine, client: redis.Redis, seed: int = 14, until: datetime = NOW) -> DashboardMarket:
    """Import the IPs, crawl them every three hours up to ``until`` through the results queue and
    the real processor, then run the daily rollups of every complete day and the weekly rollup."""
    report = import_ips(engine, [dict(ip, weight=1.0) for ip in IPS], upsert=False, now=START - timedelta(hours=1))
    assert not report.failed, report.failed
    ids = {row["name"]: row["id"] for row in report.created}
    market = Market(PROFILES, seed=seed, sold_count_origin=int((START - timedelta(days=30)).timestamp()))
    clock = {"now": START.timestamp()}
    processor = ResultProcessor(client, engine, IngestConfig(), clock=lambda: clock["now"])
    queue = ResultQueue(client, clock=lambda: clock["now"])
    crawls = 0
    at = START - CRAWL_EVERY
    while at <= until:
        for offset, ip in enumerate(IPS):
            moment = at + timedelta(minutes=3 * offset)  # the crawls of a round a few minutes apart
            if moment > until:
                continue
            clock["now"] = moment.timestamp() + 30
            queue.push(crawl(market, ids[ip["name"]], ip["name"], moment))
            processed = processor.process_batch()
            assert len(processed.applied) == 1, processed
            crawls += 1
        at += CRAWL_EVERY
    last_day = (until + JST_OFFSET).date() - timedelta(days=1)
    with engine.begin() as connection:
        day = (START + JST_OFFSET).date()
        while day <= last_day:
            rollup_day(connection, day, until)
            day += timedelta(days=1)
        rollup_week(connection, WEEK_START, until)
    return DashboardMarket(ids=ids, crawls=crawls, now=until)


@contextlib.contextmanager
def private_redis() -> Iterator[str]:
    """A redis-server of our own on a free port (its URL): the shared test database of other
    sessions is neither flushed by us nor can it take our results."""
    binary = shutil.which("redis-server")
    if not binary:
        raise RuntimeError("redis-server not found (apt-get install redis-server)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(url, socket_connect_timeout=1).ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(10)
