"""Task and result queues on the real Redis: enqueue with dedup, take, ack, dead letter."""

from __future__ import annotations

import json
import threading

import pytest
import redis

from animehot_dagster.domain.messages import ItemStatus
from animehot_dagster.queue import keys
from animehot_dagster.queue.reliable import ResultQueue, TaskQueue
from animehot_dagster_tests.conftest import REDIS_URL
from animehot_dagster_tests.factories import T0, on_sale, response
from animehot_dagster_tests.queue import FakeClock, lrange, request

# A task and a result exactly as a crawler node of the original system writes them: 64-bit
# integers as strings, zero values (retryCount, an item's on-sale status) omitted.
ORIGINAL_TASK = b'{"ipId":"42","keyword":"\xe5\x88\x9d\xe9\x9f\xb3\xe3\x83\x9f\xe3\x82\xaf","taskId":"6f1c","createdAt":"1762041600","pagesOnSale":5,"pagesSold":5}'
ORIGINAL_RESULT = (
    b'{"ipId":"42","taskId":"6f1c","crawledAt":"1762041600","totalFound":2,"pagesCrawled":10,'
    b'"items":[{"sourceId":"m1","title":"a","price":1200},'
    b'{"sourceId":"m2","title":"b","price":800,"status":"ITEM_STATUS_SOLD"}]}'
)


def test_enqueue_dedups_per_ip(queue_redis):
    tasks = TaskQueue(queue_redis)
    assert tasks.enqueue(request(1, "a"))
    assert not tasks.enqueue(request(1, "b"))
    assert tasks.enqueue(request(2, "c"))
    assert [json.loads(m)["taskId"] for m in lrange(queue_redis, keys.TASKS)] == ["c", "a"]
    assert queue_redis.smembers(keys.TASKS_PENDING) == {b"ip:1", b"ip:2"}


def test_concurrent_enqueues_of_one_ip_queue_one_task(queue_redis):
    tasks = TaskQueue(queue_redis)
    barrier = threading.Barrier(8)
    results: list[bool] = []

    def enqueue_many(worker: int) -> None:
        barrier.wait()
        results.extend(tasks.enqueue(request(7, f"w{worker}-{n}")) for n in range(50))

    threads = [threading.Thread(target=enqueue_many, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 1
    assert queue_redis.llen(keys.TASKS) == 1


def test_force_enqueue_bypasses_dedup_and_is_taken_next(queue_redis):
    tasks = TaskQueue(queue_redis)
    tasks.enqueue(request(1, "scheduled-1"))
    tasks.enqueue(request(2, "scheduled-2"))
    assert tasks.enqueue(request(1, "manual"), force=True)
    assert queue_redis.llen(keys.TASKS) == 3
    assert tasks.take().task_id == "manual"
    assert tasks.take().task_id == "scheduled-1"
    assert queue_redis.smembers(keys.TASKS_PENDING) == {b"ip:1", b"ip:2"}


def test_failed_enqueue_leaves_no_pending_mark(queue_redis):
    # Redis does not roll a script back: a mark written before a failing push would keep the IP
    # out of the queue for good.
    queue_redis.set(keys.TASKS, "not a list")
    with pytest.raises(redis.ResponseError):
        TaskQueue(queue_redis).enqueue(request(1))
    assert queue_redis.scard(keys.TASKS_PENDING) == 0


def test_take_moves_the_oldest_to_processing_and_records_when(queue_redis):
    clock = FakeClock()
    tasks = TaskQueue(queue_redis, clock)
    tasks.enqueue(request(1, "first"))
    tasks.enqueue(request(2, "second"))
    delivery = tasks.take()
    assert delivery.task_id == "first"
    assert lrange(queue_redis, keys.TASKS_PROCESSING) == [delivery.raw]
    assert queue_redis.llen(keys.TASKS) == 1
    assert queue_redis.hgetall(keys.TASKS_STARTED) == {b"first": str(int(clock.now)).encode()}


def test_take_on_an_empty_queue_returns_none_after_blocking(queue_redis):
    tasks = TaskQueue(queue_redis)
    assert tasks.take() is None
    assert tasks.take(block_seconds=0.2) is None


def test_ack_removes_message_pending_mark_and_start_time(queue_redis):
    tasks = TaskQueue(queue_redis)
    tasks.enqueue(request(1))
    tasks.enqueue(request(2))
    delivery = tasks.take()
    assert tasks.ack(delivery)
    assert queue_redis.llen(keys.TASKS_PROCESSING) == 0
    assert queue_redis.smembers(keys.TASKS_PENDING) == {b"ip:2"}
    assert queue_redis.hlen(keys.TASKS_STARTED) == 0
    assert tasks.enqueue(request(1, "next crawl"))


def test_result_ack_records_the_task_as_processed(queue_redis):
    results = ResultQueue(queue_redis)
    results.push(response(1, T0, [on_sale("m1")], task_id="t-1"))
    delivery = results.take()
    assert not results.is_processed("t-1")
    assert results.ack(delivery)
    assert results.is_processed("t-1")
    assert queue_redis.llen(keys.RESULTS_PROCESSING) == 0
    assert queue_redis.hlen(keys.RESULTS_STARTED) == 0


def test_ack_of_a_message_the_janitor_moved_touches_nothing(queue_redis):
    clock = FakeClock()
    tasks = TaskQueue(queue_redis, clock)
    tasks.enqueue(request(1))
    stale = tasks.take()
    clock.advance(601)
    tasks.release_stale(600)
    again = tasks.take()
    assert again.message.retry_count == 1
    assert not tasks.ack(stale)
    # The copy now held keeps its pending mark and start time.
    assert queue_redis.smembers(keys.TASKS_PENDING) == {b"ip:1"}
    assert queue_redis.hexists(keys.TASKS_STARTED, again.task_id)
    assert tasks.ack(again)
    assert queue_redis.scard(keys.TASKS_PENDING) == 0


def test_ack_refuses_an_undecodable_delivery(queue_redis):
    queue_redis.lpush(keys.TASKS, b"garbage")
    tasks = TaskQueue(queue_redis)
    with pytest.raises(ValueError, match="dead-letter"):
        tasks.ack(tasks.take())


def test_concurrent_consumers_take_each_message_once(queue_redis):
    tasks = TaskQueue(queue_redis)
    for ip_id in range(1, 301):
        tasks.enqueue(request(ip_id))
    seen: list[str] = []
    acks: list[bool] = []

    def consume() -> None:
        queue = TaskQueue(redis.Redis.from_url(REDIS_URL))  # a connection of its own, as a node has
        while (delivery := queue.take(block_seconds=0.2)) is not None:
            seen.append(delivery.task_id)
            acks.append(queue.ack(delivery))

    threads = [threading.Thread(target=consume) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(seen) == sorted(f"task-{ip_id}" for ip_id in range(1, 301))
    assert all(acks)
    for key in (keys.TASKS, keys.TASKS_PROCESSING, keys.TASKS_PENDING, keys.TASKS_STARTED):
        assert not queue_redis.exists(key), key


def test_undecodable_message_goes_to_the_dead_letter_list_wrapped(queue_redis):
    clock = FakeClock()
    queue_redis.lpush(keys.TASKS, b"\xff{not json")
    tasks = TaskQueue(queue_redis, clock)
    delivery = tasks.take()
    assert delivery.message is None and "not JSON" in delivery.error
    assert tasks.dead_letter(delivery, f"undecodable: {delivery.error}")
    (entry,) = lrange(queue_redis, keys.TASKS_DEADLETTER)
    wrapped = json.loads(entry)
    assert wrapped["reason"].startswith("undecodable: CrawlRequest: not JSON")
    assert wrapped["dead_at"] == int(clock.now)
    assert wrapped["payload"] == "\ufffd{not json"
    assert queue_redis.llen(keys.TASKS_PROCESSING) == 0


def test_messages_of_the_original_system_are_accepted(queue_redis):
    queue_redis.lpush(keys.TASKS, ORIGINAL_TASK)
    queue_redis.lpush(keys.RESULTS, ORIGINAL_RESULT)
    task = TaskQueue(queue_redis).take().message
    assert (task.ip_id, task.keyword, task.task_id, task.created_at, task.retry_count) == (
        42, "初音ミク", "6f1c", 1762041600, 0)
    result = ResultQueue(queue_redis).take().message
    assert (result.ip_id, result.crawled_at) == (42, 1762041600)
    assert [item.status for item in result.items] == [ItemStatus.ON_SALE, ItemStatus.SOLD]


def test_a_retry_keeps_the_fields_this_project_does_not_know(queue_redis):
    clock = FakeClock()
    body = json.loads(ORIGINAL_TASK)
    body["nodeHint"] = {"region": "tokyo"}
    queue_redis.lpush(keys.TASKS, json.dumps(body, ensure_ascii=False).encode())
    tasks = TaskQueue(queue_redis, clock)
    tasks.take()
    clock.advance(601)
    tasks.release_stale(600)
    (requeued,) = lrange(queue_redis, keys.TASKS)
    assert json.loads(requeued) == {**body, "retryCount": 1}


def test_the_queues_refuse_a_client_that_decodes_responses(redis_client):
    with pytest.raises(ValueError, match="decode_responses"):
        TaskQueue(redis_client)
