"""The results sensor's policy (queue/routing.py), without Redis or Dagster: which runs the
waiting results get, their run keys, and the backoff while the database cannot be reached."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from animehot_dagster.domain.messages import MessageError, encode_response
from animehot_dagster.queue.reliable import Delivery
from animehot_dagster.queue.routing import (
    BATCH_SIZE,
    DATABASE_BACKOFF_FIRST_SECONDS,
    DATABASE_BACKOFF_MAX_SECONDS,
    PER_PARTITION_LIMIT,
    BatchRun,
    DatabaseBackoff,
    PartitionRun,
    backoff_seconds,
    recovered_cursor,
    route,
    run_key,
)
from animehot_dagster_tests.factories import T0, on_sale, response

MINUTE, HOUR = timedelta(minutes=1), timedelta(hours=1)


def waiting(ip_id, at, task_id, retry_count=0) -> Delivery:
    message = response(ip_id, at, [on_sale("m1")], task_id=task_id, retry_count=retry_count)
    return Delivery(raw=encode_response(message).encode(), message=message)


def anywhere(_ip_id, _hour) -> bool:
    return True


def test_few_results_get_a_run_per_ip_and_hour_in_the_order_they_wait():
    results = [waiting(1, T0 + 10 * MINUTE, "a"), waiting(2, T0, "b", retry_count=1),
               waiting(1, T0 + 50 * MINUTE, "c"), waiting(1, T0 + HOUR, "d")]
    assert route(results, anywhere) == [
        PartitionRun(1, T0, ("a", "c"), "crawl:a:0,c:0"),
        PartitionRun(2, T0, ("b",), "crawl:b:1"),  # retried by the janitor: a key of its own
        PartitionRun(1, T0 + HOUR, ("d",), "crawl:d:0"),
    ]


def test_many_results_go_in_a_batch_named_by_the_oldest():
    results = [waiting(1, T0, f"t-{n}") for n in range(PER_PARTITION_LIMIT + 1)]
    batch = route(results, anywhere)
    assert isinstance(batch, BatchRun) and batch.max_results == BATCH_SIZE
    assert batch == route(results[:1] + [waiting(2, T0, "other")] * PER_PARTITION_LIMIT, anywhere)
    assert batch != route(results[1:] + results[:1] * 2, anywhere)
    assert route(results[:PER_PARTITION_LIMIT], anywhere) != batch  # up to the limit: per partition


def test_a_result_without_a_partition_or_undecodable_goes_in_a_batch():
    known = waiting(1, T0, "a")
    assert isinstance(route([known, waiting(9, T0, "b")], lambda ip_id, _hour: ip_id == 1), BatchRun)
    assert isinstance(route([known, Delivery.rejected(b"{", MessageError("not JSON"))], anywhere), BatchRun)
    assert route([known], lambda ip_id, _hour: ip_id == 1) == [PartitionRun(1, T0, ("a",), "crawl:a:0")]


def test_the_run_key_repeats_until_a_run_for_the_results_has_finished():
    assert run_key("crawl:a:0", 0) == "crawl:a:0"
    assert run_key("crawl:a:0", 1) == "crawl:a:0#1"
    assert run_key("crawl:a:0", 2) == "crawl:a:0#2"


def test_the_backoff_doubles_up_to_the_most():
    waits = [backoff_seconds(n) for n in range(1, 7)]
    assert waits == [10, 20, 40, 60, 60, 60]
    assert (waits[0], waits[-1]) == (DATABASE_BACKOFF_FIRST_SECONDS, DATABASE_BACKOFF_MAX_SECONDS)


def test_failed_probes_keep_the_outage_start_and_hold_until_the_wait_ends():
    at = 1_790_000_000.0
    first = DatabaseBackoff.from_cursor(None).failed(at)
    assert json.loads(first.cursor()) == {"failures": 1, "since": int(at), "retry_at": int(at) + 10}
    read = DatabaseBackoff.from_cursor(first.cursor())
    assert read.holds(at + 9.5) and not read.holds(at + 10)
    second = read.failed(at + 10)
    assert (second.failures, second.since, second.retry_at, second.delay) == (2, at, at + 30, 20)
    assert second.down_seconds(at + 25) == 25


@pytest.mark.parametrize("cursor", [None, "", "not json", "[1]", recovered_cursor(1_790_000_000)])
def test_a_cursor_without_failures_is_a_database_that_answered(cursor):
    state = DatabaseBackoff.from_cursor(cursor)
    assert state.failures == 0 and not state.holds(0)
    assert state.failed(100).cursor() == json.dumps({"failures": 1, "since": 100, "retry_at": 110})
