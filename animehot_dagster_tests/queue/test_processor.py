"""The result processor: Redis result queue → real ingest into MySQL → schedule → ack."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
import sqlalchemy as sa

from animehot_dagster.domain.messages import encode_response
from animehot_dagster.domain.timebuckets import to_unix
from animehot_dagster.queue import keys
from animehot_dagster.queue.processor import ResultProcessor
from animehot_dagster.queue.reliable import ResultQueue
from animehot_dagster.queue.schedule import ScheduleStore
from animehot_dagster.storage.db import create_engine
from animehot_dagster.storage.ingest import IngestConfig, apply
from animehot_dagster.storage.schema import crawl_log, ip_stats_hourly
from animehot_dagster_tests.factories import T0, make_ips, on_sale, response, sold
from animehot_dagster_tests.queue import FakeClock, json_list
from animehot_dagster_tests.queue.test_reliable import ORIGINAL_RESULT
from animehot_dagster_tests.queue.test_schedule import set_ip


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(now=(T0 + timedelta(minutes=1)).timestamp())


@pytest.fixture
def processor(queue_redis, mysql_engine, clock) -> ResultProcessor:
    return ResultProcessor(queue_redis, mysql_engine, IngestConfig(), clock)


def crawl_log_ids(engine) -> list[str]:
    with engine.connect() as connection:
        return sorted(connection.execute(sa.select(crawl_log.c.task_id)).scalars())


def assert_queues_empty(client) -> None:
    for key in (keys.RESULTS, keys.RESULTS_PROCESSING, keys.RESULTS_STARTED):
        assert not client.exists(key), key


def test_a_result_is_applied_scheduled_and_acked(processor, queue_redis, mysql_engine):
    (ip_id,) = make_ips(mysql_engine, "ちいかわ")
    results = ResultQueue(queue_redis)
    results.push(response(ip_id, T0, [on_sale("m1")], task_id="baseline"))
    results.push(response(ip_id, T0 + timedelta(minutes=30), [sold("m1"), on_sale("m2")], task_id="second"))

    report = processor.process_batch()

    assert report.as_dict()["applied_task_ids"] == ["baseline", "second"]
    assert (report.applied[1].inflow, report.applied[1].outflow) == (1, 1)
    assert crawl_log_ids(mysql_engine) == ["baseline", "second"]
    assert ScheduleStore(queue_redis).entries() == [(ip_id, to_unix(report.applied[1].next_crawl_at))]
    assert queue_redis.smembers(keys.PROCESSED) == {b"baseline", b"second"}
    assert_queues_empty(queue_redis)


def test_max_results_bounds_a_batch(processor, queue_redis, mysql_engine):
    ip_ids = make_ips(mysql_engine, "a", "b", "c")
    for ip_id in ip_ids:
        ResultQueue(queue_redis).push(response(ip_id, T0, [on_sale("m1")]))
    assert processor.process_batch(max_results=2).taken == 2
    assert queue_redis.llen(keys.RESULTS) == 1


def test_a_result_in_the_processed_set_is_only_acked(processor, queue_redis, mysql_engine):
    (ip_id,) = make_ips(mysql_engine, "seen")
    queue_redis.sadd(keys.PROCESSED, "done-before")
    ResultQueue(queue_redis).push(response(ip_id, T0, [on_sale("m1")], task_id="done-before"))
    report = processor.process_batch()
    assert (report.already_applied, report.applied) == (1, [])
    assert crawl_log_ids(mysql_engine) == []  # the set answered; the database was not asked
    assert_queues_empty(queue_redis)


def test_a_result_applied_before_a_crash_is_recognised_by_the_database(processor, queue_redis, mysql_engine, clock):
    (ip_id,) = make_ips(mysql_engine, "crashed")
    crawl = response(ip_id, T0, [on_sale("m1")], task_id="applied-then-killed")
    apply(mysql_engine, crawl, IngestConfig(), now=T0)  # committed, but never acked
    ResultQueue(queue_redis).push(crawl)
    report = processor.process_batch()
    assert (report.already_applied, report.applied) == (1, [])
    assert crawl_log_ids(mysql_engine) == ["applied-then-killed"]
    assert queue_redis.sismember(keys.PROCESSED, "applied-then-killed")
    assert [ip for ip, _ in ScheduleStore(queue_redis).entries()] == [ip_id]
    assert_queues_empty(queue_redis)


def test_a_malformed_result_goes_to_the_dead_letter_list_with_its_reason(processor, queue_redis, clock):
    queue_redis.lpush(keys.RESULTS, b'{"ipId":"1","taskId":"t","crawledAt":"soon"}')
    assert processor.process_batch().dead_lettered == 1
    (dead,) = json_list(queue_redis, keys.RESULTS_DEADLETTER)
    assert dead["reason"] == "undecodable: CrawlResponse.crawledAt: expected an integer, got 'soon'"
    assert dead["dead_at"] == int(clock.now)
    assert json.loads(dead["payload"])["crawledAt"] == "soon"
    assert_queues_empty(queue_redis)


def test_a_result_for_an_unknown_ip_goes_to_the_dead_letter_list(processor, queue_redis, mysql_engine):
    ResultQueue(queue_redis).push(response(424242, T0, [on_sale("m1")], task_id="orphan"))
    assert processor.process_batch().dead_lettered == 1
    (dead,) = json_list(queue_redis, keys.RESULTS_DEADLETTER)
    assert dead["reason"].startswith("unknown ip: ip_id 424242 is not in the catalog")
    assert crawl_log_ids(mysql_engine) == []
    assert not queue_redis.sismember(keys.PROCESSED, "orphan")
    assert_queues_empty(queue_redis)


def test_a_failure_is_logged_and_left_for_the_janitor(queue_redis, mysql_engine, clock, caplog):
    (ip_id,) = make_ips(mysql_engine, "broken")
    result = response(ip_id, T0, [on_sale("m1")], task_id="database-down")
    ResultQueue(queue_redis).push(result)
    # The database is unreachable (nothing listens on port 1): a transient failure, so the
    # result must wait in processing for the janitor, not be dead-lettered.
    unreachable = create_engine("mysql+pymysql://root@127.0.0.1:1/animehot?connect_timeout=2")
    processor = ResultProcessor(queue_redis, unreachable, IngestConfig(), clock)

    with caplog.at_level(logging.ERROR):
        report = processor.process_batch()

    assert report.failed == 1
    (record,) = [r for r in caplog.records if r.getMessage() == "task processing failed"]
    assert (record.levelname, record.task_id, record.ip_id) == ("ERROR", "database-down", ip_id)
    assert queue_redis.lrange(keys.RESULTS_PROCESSING, 0, -1) == [encode_response(result).encode()]
    assert queue_redis.hexists(keys.RESULTS_STARTED, "database-down")
    assert not queue_redis.llen(keys.RESULTS_DEADLETTER)
    assert crawl_log_ids(mysql_engine) == []


def test_a_paused_ip_leaves_the_schedule_when_its_result_is_processed(processor, queue_redis, mysql_engine, clock):
    (ip_id,) = make_ips(mysql_engine, "paused")
    ScheduleStore(queue_redis).schedule(ip_id, clock.now + 600)
    set_ip(mysql_engine, ip_id, status="paused")
    ResultQueue(queue_redis).push(response(ip_id, T0, [on_sale("m1")]))
    assert len(processor.process_batch().applied) == 1
    assert ScheduleStore(queue_redis).count() == 0


def test_a_result_of_the_original_system_is_applied(processor, queue_redis, mysql_engine):
    # ORIGINAL_RESULT names IP 42: create IPs until one has that id.
    ip_ids = make_ips(mysql_engine, *(f"ip{n}" for n in range(42)))
    assert ip_ids[-1] == 42
    # A baseline first, so that the original result's items are counted.
    ResultQueue(queue_redis).push(response(42, T0 - timedelta(hours=1), [on_sale("m0")]))
    queue_redis.lpush(keys.RESULTS, ORIGINAL_RESULT)
    report = processor.process_batch()
    original = report.applied[1]
    assert (original.task_id, original.inflow, original.outflow) == ("6f1c", 1, 1)
    with mysql_engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(ip_stats_hourly)).scalar_one() == 2


def test_recovery_on_start_then_processing(processor, queue_redis, mysql_engine):
    (ip_id,) = make_ips(mysql_engine, "recovered")
    results = ResultQueue(queue_redis)
    results.push(response(ip_id, T0, [on_sale("m1")], task_id="held-by-a-dead-processor"))
    results.take()  # the previous processor took it and died
    assert processor.recover().requeued == 1
    assert processor.process_batch().as_dict()["applied_task_ids"] == ["held-by-a-dead-processor"]
    assert_queues_empty(queue_redis)


def test_a_partition_run_processes_exactly_its_own_results(processor, queue_redis, mysql_engine):
    first, second = make_ips(mysql_engine, "first", "second")
    results = ResultQueue(queue_redis)
    results.push(response(first, T0, [on_sale("m1")], task_id="first-a"))
    results.push(response(second, T0, [on_sale("m2")], task_id="second-a"))
    results.push(response(first, T0 + timedelta(minutes=20), [sold("m1")], task_id="first-b"))

    waiting = [delivery.task_id for delivery in results.waiting(10)]
    report = processor.process_tasks(["first-a", "first-b", "not-there"], scan=10)
    again = processor.process_tasks(["first-a"], scan=10)

    assert waiting == ["first-a", "second-a", "first-b"]  # oldest first
    assert [r.task_id for r in report.applied] == ["first-a", "first-b"]
    assert again.taken == 0  # already taken and acked: nothing to claim
    assert crawl_log_ids(mysql_engine) == ["first-a", "first-b"]
    assert [d.task_id for d in results.waiting(10)] == ["second-a"]
    assert not queue_redis.llen(keys.RESULTS_PROCESSING)


def test_a_claim_only_scans_the_oldest_results(processor, queue_redis, mysql_engine):
    (ip_id,) = make_ips(mysql_engine, "deep")
    results = ResultQueue(queue_redis)
    for n in range(5):
        results.push(response(ip_id, T0 + timedelta(minutes=n), [on_sale(f"m{n}")], task_id=f"t{n}"))
    assert processor.process_tasks(["t4"], scan=2).taken == 0  # t4 is the newest of five
    assert [r.task_id for r in processor.process_tasks(["t1"], scan=2).applied] == ["t1"]


def test_an_applied_result_invalidates_its_ips_cache_and_the_hourly_leaderboards(processor, queue_redis, mysql_engine):
    first, other = make_ips(mysql_engine, "cached", "untouched")
    cached = {
        f"animetop:ip:{first}:liquidity": True,
        f"animetop:ip:{first}:hourly_stats:24": True,
        "animetop:leaderboard:hot:1": True,
        f"animetop:ip:{other}:liquidity": False,  # another IP's detail stays
        "animetop:leaderboard:hot:24": False,  # yesterday's board changes only with a rollup
    }
    for key in cached:
        queue_redis.set(key, b"{}")
    ResultQueue(queue_redis).push(response(first, T0, [on_sale("m1")]))
    assert len(processor.process_batch().applied) == 1
    assert {key: not queue_redis.exists(key) for key in cached} == cached
