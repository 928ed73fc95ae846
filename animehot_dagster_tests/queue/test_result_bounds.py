"""Issue 17 #1, #3, #7, #8 through the queues: a result (or task) out of SPEC §6's bounds is
dead-lettered at once with the reason — never retried, never applied — and an error retrying
cannot fix (a DataError from the database) is dead-lettered with its cause.

Real MariaDB and a Redis of this module alone (the shared test database may be flushed by another
run); the clock is the processor's (fake, at T0 + 1 min).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
import sqlalchemy as sa

from animehot_dagster.domain.messages import CrawlRequest, encode_request
from animehot_dagster.queue import janitor, keys
from animehot_dagster.queue.processor import ResultProcessor
from animehot_dagster.queue.reliable import ResultQueue, TaskQueue
from animehot_dagster.storage.db import create_engine
from animehot_dagster.storage.ingest import IngestConfig
from animehot_dagster.storage.schema import crawl_log, ip_metadata
from animehot_dagster_tests.conftest import fresh_mysql_database
from animehot_dagster_tests.factories import T0, make_ips, on_sale, response
from animehot_dagster_tests.private_servers import PrivateRedis
from animehot_dagster_tests.queue import FakeClock, json_list

TIMEOUT = 600


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def queue_redis(private_redis: PrivateRedis) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(private_redis.url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(now=(T0 + timedelta(minutes=1)).timestamp())


@pytest.fixture
def processor(queue_redis, mysql_engine, clock) -> ResultProcessor:
    return ResultProcessor(queue_redis, mysql_engine, IngestConfig(), clock)


def crawled(engine) -> tuple[list[str], list]:
    with engine.connect() as connection:
        logged = sorted(connection.execute(sa.select(crawl_log.c.task_id)).scalars())
        last = connection.execute(sa.select(ip_metadata.c.last_crawled_at)).scalars().all()
    return logged, last


def assert_dead_at_once(client, processor, clock, reason_start: str) -> dict:
    """Processed once: dead-lettered with a reason starting ``reason_start``, nothing held for
    the janitor to retry, and a sweep past the timeout finds nothing to return."""
    report = processor.process_batch()
    assert (report.dead_lettered, report.failed, report.applied) == (1, 0, []), report.as_dict()
    (dead,) = json_list(client, keys.RESULTS_DEADLETTER)
    assert dead["reason"].startswith(reason_start), dead["reason"]
    for key in (keys.RESULTS, keys.RESULTS_PROCESSING, keys.RESULTS_STARTED, keys.PROCESSED):
        assert not client.exists(key), key
    clock.advance(TIMEOUT)
    assert janitor.sweep(client, TIMEOUT, clock).results.as_dict()["requeued"] == 0
    assert client.llen(keys.RESULTS_DEADLETTER) == 1
    return dead


def test_the_probe_result_of_issue_1_is_dead_lettered_at_once_and_never_applied(processor, queue_redis, mysql_engine, clock):
    (ip_id,) = make_ips(mysql_engine, "exists")
    queue_redis.lpush(keys.RESULTS, json.dumps(
        {"ipId": str(ip_id), "taskId": "h-future", "crawledAt": "253402300000",
         "items": [{"sourceId": "m5", "price": 10}]}))
    dead = assert_dead_at_once(queue_redis, processor, clock, "out of bounds: CrawlResponse.crawledAt: 253402300000")
    assert "more than an hour ahead of the processor's clock" in dead["reason"]
    assert crawled(mysql_engine) == ([], [None])  # last_crawled_at untouched: the IP list stays servable


def test_a_crawl_in_year_3000_is_dead_lettered_and_the_schedule_left_alone(processor, queue_redis, mysql_engine, clock):
    (ip_id,) = make_ips(mysql_engine, "year-3000")
    ResultQueue(queue_redis).push(response(ip_id, T0.replace(year=3000), [on_sale("m1")], task_id="y3000"))
    assert_dead_at_once(queue_redis, processor, clock, "out of bounds: CrawlResponse.crawledAt: ")
    assert crawled(mysql_engine) == ([], [None])
    assert not queue_redis.exists(keys.SCHEDULE)


@pytest.mark.parametrize(("fields", "where"), [
    ({"task_id": "t" * 202}, "CrawlResponse.taskId"),
    ({"items": [on_sale("s" * 101)]}, "CrawlResponse.items[0].sourceId"),
    ({"items": [on_sale("m1", price=-1)]}, "CrawlResponse.items[0].price"),
    ({"items": [on_sale(f"m{n}") for n in range(100_000)], "pages_crawled": 10}, "CrawlResponse.items"),
    ({"pages_crawled": 100_000}, "CrawlResponse.pagesCrawled"),
])
def test_a_result_out_of_bounds_is_dead_lettered_at_once_with_the_reason(processor, queue_redis, mysql_engine, clock,
                                                                       fields, where):
    (ip_id,) = make_ips(mysql_engine, "bounded")
    body = {"items": [on_sale("m1")], "task_id": "bounded", **fields}
    ResultQueue(queue_redis).push(response(ip_id, T0, body.pop("items"), **body))
    assert_dead_at_once(queue_redis, processor, clock, f"out of bounds: {where}: ")
    assert crawled(mysql_engine) == ([], [None])


def test_the_janitor_dead_letters_a_held_result_out_of_bounds_with_the_reason(queue_redis, clock):
    queue_redis.lpush(keys.RESULTS_PROCESSING, json.dumps({"ipId": "1", "taskId": "held", "crawledAt": "1"}))
    assert janitor.sweep(queue_redis, TIMEOUT, clock).results.dead_lettered == 1
    (dead,) = json_list(queue_redis, keys.RESULTS_DEADLETTER)
    assert dead["reason"].startswith("out of bounds: CrawlResponse.crawledAt: 1 ")


def test_a_task_asking_for_100000_pages_reaches_the_node_as_out_of_bounds(queue_redis, clock):
    tasks = TaskQueue(queue_redis, clock)
    wire = encode_request(CrawlRequest(ip_id=7, keyword="k", task_id="greedy", pages_on_sale=100_000))
    queue_redis.lpush(keys.TASKS, wire)
    delivery = tasks.take()
    assert delivery.message is None and delivery.out_of_bounds
    assert delivery.reason.startswith("out of bounds: CrawlRequest.pagesOnSale: 100000 pages")
    assert tasks.dead_letter(delivery, delivery.error)  # what the node does with it
    assert queue_redis.llen(keys.TASKS_PROCESSING) == 0 and queue_redis.llen(keys.TASKS_DEADLETTER) == 1


@pytest.fixture
def narrow_database() -> Iterator[sa.Engine]:
    """A migrated database whose crawl_log.crawler_node holds 4 characters: a value in bounds the
    database then refuses with a real DataError (1406 Data too long), as a column a node's
    value outgrew would."""
    with fresh_mysql_database("animehot_narrow") as url:
        engine = create_engine(url)
        with engine.begin() as connection:
            connection.execute(sa.text("ALTER TABLE crawl_log MODIFY crawler_node VARCHAR(4) NOT NULL DEFAULT ''"))
        yield engine
        engine.dispose()


def test_a_data_error_is_dead_lettered_with_its_cause_not_retried(queue_redis, narrow_database, clock):
    (ip_id,) = make_ips(narrow_database, "narrow")
    ResultQueue(queue_redis).push(response(ip_id, T0, [on_sale("m1")], task_id="too-long", crawler_node="node-a1"))
    processor = ResultProcessor(queue_redis, narrow_database, IngestConfig(), clock)
    dead = assert_dead_at_once(queue_redis, processor, clock, "data error: DataError: (1406, ")
    assert "crawler_node" in dead["reason"]
    assert crawled(narrow_database) == ([], [None])
