"""The dispatcher on the real Redis and MySQL, with a fake clock and sleep."""

from __future__ import annotations

import json
import uuid

import pytest

from animehot_dagster.queue import keys
from animehot_dagster.queue.dispatcher import DispatchConfig, dispatch
from animehot_dagster.queue.reliable import TaskQueue
from animehot_dagster.queue.schedule import ScheduleStore
from animehot_dagster_tests.factories import make_ips
from animehot_dagster_tests.queue import FakeClock, json_list, request
from animehot_dagster_tests.queue.test_schedule import set_ip

LEASE = 7200


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def due_now(client, clock: FakeClock, *ip_ids: int) -> None:
    store = ScheduleStore(client, clock)
    for offset, ip_id in enumerate(ip_ids):
        store.schedule(ip_id, clock.now - len(ip_ids) + offset)  # earliest first, in this order


def test_due_ips_become_crawl_requests(queue_redis, mysql_engine, clock):
    first, second, later = make_ips(mysql_engine, "ちいかわ", "初音ミク", "later")
    due_now(queue_redis, clock, first, second)
    ScheduleStore(queue_redis, clock).schedule(later, clock.now + 60)
    config = DispatchConfig(pages_on_sale=3, pages_sold=2, lease_seconds=LEASE)

    report = dispatch(queue_redis, mysql_engine, config, clock, clock.sleep)

    assert (report.due, report.enqueued, report.batches, report.waited_seconds) == (2, [first, second], 1, 0)
    requests = json_list(queue_redis, keys.TASKS)[::-1]  # oldest first
    assert [(r["ipId"], r["keyword"], r["createdAt"], r["pagesOnSale"], r["pagesSold"]) for r in requests] == [
        (str(first), "ちいかわ", str(int(clock.now)), 3, 2),
        (str(second), "初音ミク", str(int(clock.now)), 3, 2),
    ]
    assert all(uuid.UUID(r["taskId"]).version == 4 for r in requests)
    # Leased: back in two hours unless the result says otherwise; the IP not due is untouched.
    assert sorted(ScheduleStore(queue_redis).entries()) == [
        (first, int(clock.now) + LEASE), (second, int(clock.now) + LEASE), (later, int(clock.now) + 60)]


def test_an_ip_with_a_task_pending_gets_no_second_one_but_its_lease(queue_redis, mysql_engine, clock):
    (ip_id,) = make_ips(mysql_engine, "pending")
    TaskQueue(queue_redis).enqueue(request(ip_id))
    due_now(queue_redis, clock, ip_id)
    report = dispatch(queue_redis, mysql_engine, DispatchConfig(lease_seconds=LEASE), clock, clock.sleep)
    assert (report.enqueued, report.already_pending) == ([], [ip_id])
    assert queue_redis.llen(keys.TASKS) == 1
    assert ScheduleStore(queue_redis).entries() == [(ip_id, int(clock.now) + LEASE)]


def test_backpressure_pauses_between_batches(queue_redis, mysql_engine, clock):
    ip_ids = make_ips(mysql_engine, *(f"ip{n}" for n in range(7)))
    due_now(queue_redis, clock, *ip_ids)
    consumer = TaskQueue(queue_redis)
    depths_while_waiting: list[int] = []

    def sleep_while_a_crawler_finishes_one_task(seconds: float) -> None:
        depths_while_waiting.append(consumer.depth())
        consumer.ack(consumer.take())
        clock.advance(seconds)

    config = DispatchConfig(batch_size=3, backpressure_threshold=2, backpressure_poll_seconds=5)
    report = dispatch(queue_redis, mysql_engine, config, clock, sleep_while_a_crawler_finishes_one_task)

    assert report.batches == 3 and report.enqueued == ip_ids
    # Batch 1 (3 tasks) waits down to 2; batch 2 brings 5, waits down to 2; batch 3 adds 1.
    assert depths_while_waiting == [3, 5, 4, 3]
    assert report.waited_seconds == 4 * 5
    assert report.backpressure_timeouts == 0
    assert queue_redis.llen(keys.TASKS) == 3


def test_backpressure_gives_up_after_ten_minutes(queue_redis, mysql_engine, clock):
    ip_ids = make_ips(mysql_engine, "a", "b", "c")
    due_now(queue_redis, clock, *ip_ids)
    config = DispatchConfig(batch_size=1, backpressure_threshold=0, backpressure_poll_seconds=7)
    report = dispatch(queue_redis, mysql_engine, config, clock, clock.sleep)
    assert report.enqueued == ip_ids
    assert (report.batches, report.backpressure_timeouts, report.waited_seconds) == (3, 2, 1200)


def test_paused_deleted_and_unknown_ips_leave_the_schedule(queue_redis, mysql_engine, clock):
    active, paused, deleted = make_ips(mysql_engine, "active", "paused", "deleted")
    set_ip(mysql_engine, paused, status="paused")
    set_ip(mysql_engine, deleted, status="deleted")
    unknown = deleted + 1000
    due_now(queue_redis, clock, active, paused, deleted, unknown)
    report = dispatch(queue_redis, mysql_engine, DispatchConfig(), clock, clock.sleep)
    assert report.enqueued == [active]
    assert report.dropped == [paused, deleted, unknown]
    assert [ip for ip, _ in ScheduleStore(queue_redis).entries()] == [active]
    assert queue_redis.smembers(keys.TASKS_PENDING) == {f"ip:{active}".encode()}


def test_a_failed_enqueue_is_retried_a_minute_later(queue_redis, mysql_engine, clock):
    (ip_id,) = make_ips(mysql_engine, "unlucky")
    due_now(queue_redis, clock, ip_id)
    queue_redis.set(keys.TASKS, "not a list")  # every push now fails with WRONGTYPE
    report = dispatch(queue_redis, mysql_engine, DispatchConfig(), clock, clock.sleep)
    assert (report.enqueued, report.failed) == ([], [ip_id])
    assert ScheduleStore(queue_redis).entries() == [(ip_id, int(clock.now) + 60)]
    assert queue_redis.scard(keys.TASKS_PENDING) == 0

    queue_redis.delete(keys.TASKS)
    clock.advance(60)
    assert dispatch(queue_redis, mysql_engine, DispatchConfig(), clock, clock.sleep).enqueued == [ip_id]


def test_nothing_due_does_nothing(queue_redis, mysql_engine, clock):
    (ip_id,) = make_ips(mysql_engine, "tomorrow")
    ScheduleStore(queue_redis, clock).schedule(ip_id, clock.now + 86400)
    report = dispatch(queue_redis, mysql_engine, DispatchConfig(), clock, clock.sleep)
    assert json.loads(json.dumps(report.as_dict())) == {
        "due": 0, "enqueued": [], "already_pending": [], "dropped": [], "failed": [], "deferred": [],
        "batches": 0, "waited_seconds": 0.0, "backpressure_timeouts": 0,
    }
    assert not queue_redis.exists(keys.TASKS)


def test_with_defer_when_full_the_wait_bounds_the_whole_call_and_the_rest_stays_due(queue_redis, mysql_engine, clock):
    ids = make_ips(mysql_engine, *[f"ip{n}" for n in range(6)])
    schedule = ScheduleStore(queue_redis, clock)
    for offset, ip_id in enumerate(ids):
        schedule.schedule(ip_id, clock.now - 100 + offset)
    config = DispatchConfig(batch_size=2, backpressure_threshold=0, max_backpressure_wait_seconds=5, defer_when_full=True)

    report = dispatch(queue_redis, mysql_engine, config, clock, clock.sleep)

    # Nobody takes tasks: after the first batch the queue stays full until the bound, once.
    assert report.enqueued == ids[:2]
    assert report.deferred == ids[2:]
    assert report.backpressure_timeouts == 1 and report.waited_seconds == pytest.approx(5, abs=1)
    assert sorted(schedule.due()) == sorted(ids[2:])  # still due for the next call
