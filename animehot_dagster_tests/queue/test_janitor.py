"""The janitor and the recovery on start, on the real Redis with a fake clock."""

from __future__ import annotations

import json
import threading

import pytest
import redis

from animehot_dagster.queue import janitor, keys
from animehot_dagster.queue.reliable import MAX_RETRIES, ResultQueue, TaskQueue
from animehot_dagster_tests.conftest import REDIS_URL
from animehot_dagster_tests.factories import T0, on_sale, response
from animehot_dagster_tests.queue import FakeClock, json_list, lrange, request

TIMEOUT = 600


def _fill(client: redis.Redis, which: str, clock: FakeClock, count: int = 1):
    """Queue ``count`` messages of the task or result queue; returns the queue."""
    if which == "tasks":
        queue = TaskQueue(client, clock)
        for ip_id in range(1, count + 1):
            queue.enqueue(request(ip_id))
    else:
        queue = ResultQueue(client, clock)
        for ip_id in range(1, count + 1):
            queue.push(response(ip_id, T0, [on_sale("m1")], task_id=f"task-{ip_id}"))
    return queue


@pytest.mark.parametrize("which", ["tasks", "results"])
def test_a_message_held_past_the_timeout_returns_with_retry_count_plus_one(queue_redis, which):
    clock = FakeClock()
    queue = _fill(queue_redis, which, clock)
    queue.take()
    clock.advance(TIMEOUT)
    report = janitor.sweep(queue_redis, TIMEOUT, clock)
    assert getattr(report, which).requeued == 1
    (returned,) = json_list(queue_redis, queue.keys.queue)
    assert returned["retryCount"] == 1
    assert queue_redis.llen(queue.keys.processing) == 0
    assert queue_redis.hlen(queue.keys.started) == 0
    if which == "tasks":
        assert queue_redis.smembers(keys.TASKS_PENDING) == {b"ip:1"}  # still queued, still pending


@pytest.mark.parametrize("which", ["tasks", "results"])
def test_a_message_within_the_timeout_stays_held(queue_redis, which):
    clock = FakeClock()
    queue = _fill(queue_redis, which, clock)
    delivery = queue.take()
    clock.advance(TIMEOUT - 1)
    report = janitor.sweep(queue_redis, TIMEOUT, clock)
    assert getattr(report, which).held == 1
    assert lrange(queue_redis, queue.keys.processing) == [delivery.raw]


def test_a_held_message_without_start_time_is_timed_from_first_sight(queue_redis):
    # A consumer killed between BLMOVE and HSET leaves exactly this.
    clock = FakeClock()
    _fill(queue_redis, "tasks", clock)
    queue_redis.lmove(keys.TASKS, keys.TASKS_PROCESSING, "RIGHT", "LEFT")
    assert janitor.sweep(queue_redis, TIMEOUT, clock).tasks.stamped == 1
    assert queue_redis.hget(keys.TASKS_STARTED, "task-1") == str(int(clock.now)).encode()
    clock.advance(TIMEOUT - 1)
    assert janitor.sweep(queue_redis, TIMEOUT, clock).tasks.held == 1
    clock.advance(1)
    assert janitor.sweep(queue_redis, TIMEOUT, clock).tasks.requeued == 1


@pytest.mark.parametrize("which", ["tasks", "results"])
def test_dead_letter_after_the_third_retry(queue_redis, which):
    clock = FakeClock()
    queue = _fill(queue_redis, which, clock)
    for retry in range(1, MAX_RETRIES + 1):
        queue.take()
        clock.advance(TIMEOUT)
        assert getattr(janitor.sweep(queue_redis, TIMEOUT, clock), which).requeued == 1
        assert json_list(queue_redis, queue.keys.queue)[0]["retryCount"] == retry
    original = queue.take().raw
    clock.advance(TIMEOUT)
    assert getattr(janitor.sweep(queue_redis, TIMEOUT, clock), which).dead_lettered == 1
    (dead,) = json_list(queue_redis, queue.keys.deadletter)
    assert dead["payload"].encode() == original
    assert dead["reason"] == "retries exhausted: held past the timeout with retryCount 3"
    assert dead["dead_at"] == int(clock.now)
    for key in (queue.keys.queue, queue.keys.processing, queue.keys.started, keys.TASKS_PENDING):
        assert not queue_redis.exists(key), key


def test_an_undecodable_held_message_is_dead_lettered_at_once(queue_redis):
    clock = FakeClock()
    queue_redis.lpush(keys.RESULTS_PROCESSING, b'{"taskId": 5')
    report = janitor.sweep(queue_redis, TIMEOUT, clock)
    assert report.results.dead_lettered == 1
    (dead,) = json_list(queue_redis, keys.RESULTS_DEADLETTER)
    assert dead["reason"].startswith("undecodable: CrawlResponse: not JSON")
    assert dead["payload"] == '{"taskId": 5'
    assert queue_redis.llen(keys.RESULTS_PROCESSING) == 0


def test_recovery_on_start_returns_every_held_result_in_its_order(queue_redis):
    clock = FakeClock()
    results = _fill(queue_redis, "results", clock, count=3)
    for _ in range(3):
        results.take()
    report = results.recover()  # no time has passed: recovery does not wait for the timeout
    assert report.requeued == 3
    again = [results.take() for _ in range(3)]
    assert [d.task_id for d in again] == ["task-1", "task-2", "task-3"]
    assert all(d.message.retry_count == 1 for d in again)


def test_recovery_dead_letters_a_result_that_keeps_killing_its_processor(queue_redis):
    results = _fill(queue_redis, "results", FakeClock())
    for _ in range(MAX_RETRIES):
        results.take()
        results.recover()
    results.take()
    assert results.recover().dead_lettered == 1
    assert queue_redis.llen(keys.RESULTS_DEADLETTER) == 1


def test_sweeps_racing_acks_never_lose_or_duplicate_a_message(queue_redis):
    clock = FakeClock()
    tasks = _fill(queue_redis, "tasks", clock, count=400)
    deliveries = [tasks.take() for _ in range(400)]
    clock.advance(TIMEOUT)
    acked: list[str] = []
    start = threading.Barrier(2)

    def ack_all() -> None:
        own = TaskQueue(redis.Redis.from_url(REDIS_URL), clock)
        start.wait()
        acked.extend(d.task_id for d in deliveries if own.ack(d))

    def sweep_repeatedly() -> None:
        client = redis.Redis.from_url(REDIS_URL)
        start.wait()
        for _ in range(20):
            janitor.sweep(client, TIMEOUT, clock)

    threads = [threading.Thread(target=ack_all), threading.Thread(target=sweep_repeatedly)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    requeued = [json.loads(m)["taskId"] for m in lrange(queue_redis, keys.TASKS)]
    assert 0 < len(acked) < 400, "the race did not happen: make the sweeps start earlier"
    assert sorted(acked + requeued) == sorted(d.task_id for d in deliveries)
    assert queue_redis.llen(keys.TASKS_PROCESSING) == 0
    # A task acked is no longer pending; one returned to the queue still is.
    assert queue_redis.smembers(keys.TASKS_PENDING) == {f"ip:{t.split('-')[1]}".encode() for t in requeued}


def test_the_pending_set_is_repaired_to_match_the_tasks(queue_redis):
    tasks = _fill(queue_redis, "tasks", FakeClock(), count=2)
    tasks.take()
    queue_redis.sadd(keys.TASKS_PENDING, "ip:99")  # a mark with no task
    queue_redis.srem(keys.TASKS_PENDING, "ip:2")  # a task with no mark
    report = janitor.sweep(queue_redis, TIMEOUT, FakeClock())
    assert (report.pending_marks_added, report.pending_marks_removed) == (("ip:2",), ("ip:99",))
    assert queue_redis.smembers(keys.TASKS_PENDING) == {b"ip:1", b"ip:2"}


def test_start_times_nobody_holds_are_forgotten_after_the_timeout(queue_redis):
    clock = FakeClock()
    queue_redis.hset(keys.TASKS_STARTED, mapping={"old": int(clock.now) - TIMEOUT, "recent": int(clock.now) - 5})
    assert janitor.sweep(queue_redis, TIMEOUT, clock).tasks.forgotten_start_times == 1
    assert queue_redis.hkeys(keys.TASKS_STARTED) == [b"recent"]
