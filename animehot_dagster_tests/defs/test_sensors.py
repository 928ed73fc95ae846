"""The sensors, evaluated tick by tick as the daemon evaluates them, on the real MySQL, Redis and a
persistent Dagster instance."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._core.storage.tags import RUN_KEY_TAG, SENSOR_NAME_TAG

from animehot_dagster.defs import crawl as crawl_defs
from animehot_dagster.defs.partitions import HOUR_DIMENSION, IP_DIMENSION
from animehot_dagster.defs.resources import AnalyzerResource, ClockResource
from animehot_dagster.domain.messages import encode_response
from animehot_dagster.domain.timebuckets import from_unix
from animehot_dagster.queue import janitor, keys
from animehot_dagster.queue.reliable import ResultQueue, TaskQueue
from animehot_dagster.queue.routing import PER_PARTITION_LIMIT
from animehot_dagster.queue.schedule import ScheduleStore
from animehot_dagster.settings import load_settings
from animehot_dagster.storage.schema import crawl_log, ip_metadata
from animehot_dagster_tests.defs import (
    add_ip_partitions,
    apply_partition_requests,
    current_hour,
    materialized_partitions,
    partition_key,
    past_hour,
    push,
    tick,
)
from animehot_dagster_tests.factories import make_ips, on_sale, response

NAMES = ("鬼滅の刃", "ちいかわ", "初音ミク", "呪術廻戦", "葬送のフリーレン")

# Batches of two, each waiting until the task queue is empty.
SMALL_BATCHES = load_settings({"SCHEDULER_BATCH_SIZE": "2", "SCHEDULER_BACKPRESSURE_THRESHOLD": "0"})


def _set_status(engine, ip_id: int, status: str) -> None:
    values = {"status": status}
    if status == "deleted":
        values["deleted_at"] = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(ip_metadata.update().where(ip_metadata.c.id == ip_id).values(**values))


def _queued_requests(client) -> list:
    """CrawlRequests waiting in the task queue, oldest (next to be taken) first."""
    return [TaskQueue.decode(raw) for raw in reversed(client.lrange(keys.TASKS, 0, -1))]


# -- ip_catalog_sensor -------------------------------------------------------------------------


def test_ip_catalog_sensor_keeps_ip_partitions_equal_to_active_ips(definitions, instance, resources, mysql_engine, queue_redis):
    ids = make_ips(mysql_engine, *NAMES[:4])
    kept, new_a, paused, deleted = ids
    _set_status(mysql_engine, paused, "paused")
    _set_status(mysql_engine, deleted, "deleted")
    # The instance knows a still-active IP and both IPs that have since left; one is scheduled already.
    add_ip_partitions(instance, [kept, paused, deleted])
    scheduled_at = int(time.time()) + 3_600
    queue_redis.zadd(keys.SCHEDULE, {str(kept): scheduled_at})
    new_b = make_ips(mysql_engine, NAMES[4])[0]

    before = time.time()
    data = tick(definitions, "ip_catalog_sensor", instance, resources)
    adds = [r for r in data.dynamic_partitions_requests if isinstance(r, dg.AddDynamicPartitionsRequest)]
    deletes = [r for r in data.dynamic_partitions_requests if isinstance(r, dg.DeleteDynamicPartitionsRequest)]
    assert sorted(k for r in adds for k in r.partition_keys) == sorted([str(new_a), str(new_b)])
    assert sorted(k for r in deletes for k in r.partition_keys) == sorted([str(paused), str(deleted)])
    assert all(r.partitions_def_name == IP_DIMENSION for r in data.dynamic_partitions_requests)
    assert not data.run_requests
    assert json.loads(data.cursor) == {"active": 3}

    # New IPs are scheduled at once (10 s apart); the entry already there does not move.
    schedule = dict(ScheduleStore(queue_redis).entries())
    assert schedule[kept] == scheduled_at
    assert set(schedule) == {kept, new_a, new_b}
    assert before - 1 <= schedule[new_a] <= time.time() + 1
    assert schedule[new_b] - schedule[new_a] == 10

    apply_partition_requests(instance, data.dynamic_partitions_requests)
    assert sorted(instance.get_dynamic_partitions(IP_DIMENSION), key=int) == [str(kept), str(new_a), str(new_b)]

    again = tick(definitions, "ip_catalog_sensor", instance, resources, cursor=data.cursor)
    assert again.skip_message and "up to date" in again.skip_message
    assert not again.dynamic_partitions_requests
    assert dict(ScheduleStore(queue_redis).entries()) == schedule


def test_ip_catalog_sensor_gives_a_reactivated_ip_its_partition_back(definitions, instance, resources, mysql_engine, queue_redis):
    [ip] = make_ips(mysql_engine, NAMES[0])
    apply_partition_requests(instance, tick(definitions, "ip_catalog_sensor", instance, resources).dynamic_partitions_requests)
    _set_status(mysql_engine, ip, "paused")
    apply_partition_requests(instance, tick(definitions, "ip_catalog_sensor", instance, resources).dynamic_partitions_requests)
    assert instance.get_dynamic_partitions(IP_DIMENSION) == []
    queue_redis.delete(keys.SCHEDULE)  # the dispatcher dropped the paused IP
    _set_status(mysql_engine, ip, "active")
    apply_partition_requests(instance, tick(definitions, "ip_catalog_sensor", instance, resources).dynamic_partitions_requests)
    assert instance.get_dynamic_partitions(IP_DIMENSION) == [str(ip)]
    assert [member for member, _ in ScheduleStore(queue_redis).entries()] == [ip]


def test_ip_catalog_sensor_seeds_a_crawled_ip_at_its_next_crawl_time(definitions, instance, resources, mysql_engine, queue_redis):
    [ip] = make_ips(mysql_engine, NAMES[0])  # weight 1: interval 2 h
    crawled = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    with mysql_engine.begin() as connection:
        connection.execute(ip_metadata.update().where(ip_metadata.c.id == ip).values(last_crawled_at=crawled))
    tick(definitions, "ip_catalog_sensor", instance, resources)
    scheduled = dict(ScheduleStore(queue_redis).entries())[ip]
    assert scheduled == int((crawled + timedelta(hours=2)).timestamp()), "as the cadence sensor's rebuild would"


# -- crawl_cadence_sensor ----------------------------------------------------------------------


def test_cadence_sensor_dispatches_due_ips_and_drops_paused_ones(definitions, instance, resources, mysql_engine, queue_redis):
    due_a, due_b, later, paused = make_ips(mysql_engine, *NAMES[:4])
    _set_status(mysql_engine, paused, "paused")
    now = int(time.time())
    queue_redis.zadd(keys.SCHEDULE, {str(due_a): now - 600, str(due_b): now - 60, str(later): now + 3_600, str(paused): now - 300})

    data = tick(definitions, "crawl_cadence_sensor", instance, resources, cursor=None)
    assert not data.run_requests

    requests = _queued_requests(queue_redis)
    assert [(r.ip_id, r.keyword) for r in requests] == [(due_a, NAMES[0]), (due_b, NAMES[1])]
    assert all((r.pages_on_sale, r.pages_sold, r.retry_count) == (5, 5, 0) for r in requests)
    assert len({r.task_id for r in requests}) == 2
    assert TaskQueue(queue_redis).is_pending(due_a) and TaskQueue(queue_redis).is_pending(due_b)

    schedule = dict(ScheduleStore(queue_redis).entries())
    assert paused not in schedule  # paused IPs leave the schedule
    assert schedule[later] == now + 3_600
    # A dispatched IP is leased for the longest interval, so that a lost task still comes back.
    for ip in (due_a, due_b):
        assert now + 7_200 - 5 <= schedule[ip] <= time.time() + 7_200 + 5

    cursor = json.loads(data.cursor)
    assert {k: cursor[k] for k in ("due", "enqueued", "dropped", "already_pending", "batches", "rebuilt")} == {
        "due": 3, "enqueued": 2, "dropped": 1, "already_pending": 0, "batches": 1, "rebuilt": 0,
    }
    assert abs(cursor["at"] - time.time()) < 30
    assert json.loads(data.skip_message)["enqueued"] == 2

    # Next tick: nothing due any more, and the cursor says so.
    again = tick(definitions, "crawl_cadence_sensor", instance, resources, cursor=data.cursor)
    assert json.loads(again.cursor)["due"] == 0
    assert len(_queued_requests(queue_redis)) == 2


def test_cadence_sensor_rebuilds_an_empty_schedule_from_the_catalog(definitions, instance, resources, mysql_engine, queue_redis):
    ids = make_ips(mysql_engine, *NAMES[:3])
    data = tick(definitions, "crawl_cadence_sensor", instance, resources)
    cursor = json.loads(data.cursor)
    assert cursor["rebuilt"] == 3
    # Never crawled: staggered from now, so the first is due at once.
    assert [r.ip_id for r in _queued_requests(queue_redis)] == ids[:1]
    assert {ip for ip, _ in ScheduleStore(queue_redis).entries()} == set(ids)


def _take_all_after(client, delay: float, stop: threading.Event, taken: list) -> None:
    """A crawler node that starts after ``delay`` and then takes (and acks) every task."""
    time.sleep(delay)
    tasks = TaskQueue(client)
    while not stop.is_set():
        delivery = tasks.take(block_seconds=0.2)
        if delivery is not None:
            taken.append((time.monotonic(), delivery.message.ip_id))
            tasks.ack(delivery)


def test_cadence_sensor_waits_for_room_before_the_next_batch(definitions, instance, resources, mysql_engine, queue_redis):
    ids = make_ips(mysql_engine, *NAMES[:4])
    now = int(time.time())
    queue_redis.zadd(keys.SCHEDULE, {str(ip): now - 100 + i for i, ip in enumerate(ids)})
    resources["analyzer"] = AnalyzerResource.from_settings(SMALL_BATCHES)

    stop, taken = threading.Event(), []
    crawler = threading.Thread(target=_take_all_after, args=(queue_redis, 1.5, stop, taken))
    started = time.monotonic()
    crawler.start()
    try:
        data = tick(definitions, "crawl_cadence_sensor", instance, resources)
        elapsed = time.monotonic() - started
    finally:
        time.sleep(0.5)
        stop.set()
        crawler.join()
    cursor = json.loads(data.cursor)
    assert (cursor["due"], cursor["enqueued"], cursor["batches"]) == (4, 4, 2)
    # The second batch waited until the crawler had emptied the queue, well inside the bound.
    assert 1.0 <= cursor["waited_seconds"] < crawl_defs.DISPATCH_MAX_WAIT_SECONDS
    assert 1.5 <= elapsed < crawl_defs.DISPATCH_MAX_WAIT_SECONDS
    assert sorted(ip for _, ip in taken) == sorted(ids)
    assert [ip for _, ip in taken[:2]] == ids[:2]  # the first batch went first


def test_cadence_sensor_stops_within_its_bounded_wait_under_backpressure(
    definitions, instance, resources, mysql_engine, queue_redis, monkeypatch
):
    # The bound is a module constant (20 s); a shorter one keeps this test quick, the logic is the same.
    monkeypatch.setattr(crawl_defs, "DISPATCH_MAX_WAIT_SECONDS", 1.0)
    ids = make_ips(mysql_engine, *[f"IP {n}" for n in range(8)])
    now = int(time.time())
    queue_redis.zadd(keys.SCHEDULE, {str(ip): now - 100 + i for i, ip in enumerate(ids)})
    resources["analyzer"] = AnalyzerResource.from_settings(SMALL_BATCHES)

    started = time.monotonic()
    data = tick(definitions, "crawl_cadence_sensor", instance, resources)
    elapsed = time.monotonic() - started

    # Nobody takes tasks: the queue stays over the threshold after the first batch.
    queued = [r.ip_id for r in _queued_requests(queue_redis)]
    due_left = ScheduleStore(queue_redis).due()
    assert elapsed < 1.0 + 1.0, f"the tick took {elapsed:.1f} s"
    assert queued == ids[:2], "only the first batch may go while the queue is over the threshold"
    assert sorted(due_left) == sorted(ids[2:]), "the rest stays due for the next tick"
    assert json.loads(data.cursor)["enqueued"] == 2


# -- crawl_results_sensor ----------------------------------------------------------------------


def test_results_sensor_skips_when_nothing_waits(definitions, instance, resources):
    data = tick(definitions, "crawl_results_sensor", instance, resources)
    assert data.skip_message == "no results waiting"
    assert not data.run_requests


def test_results_sensor_requests_one_crawl_chain_run_per_ip_and_hour(definitions, instance, resources, mysql_engine, queue_redis):
    a, b = make_ips(mysql_engine, *NAMES[:2])
    add_ip_partitions(instance, [a, b])
    a1 = response(a, past_hour(3, 5), [on_sale("m1")], task_id="a-early")
    b1 = response(b, past_hour(3, 7), [on_sale("m2")], task_id="b-early")
    a2 = response(a, past_hour(3, 40), [on_sale("m1")], task_id="a-same-hour")
    a3 = response(a, past_hour(1, 10), [on_sale("m1")], task_id="a-later")
    push(queue_redis, a1, b1, a2, a3)

    data = tick(definitions, "crawl_results_sensor", instance, resources)
    requests = {str(r.partition_key): r for r in data.run_requests}
    assert list(requests) == [partition_key(a, past_hour(3)), partition_key(b, past_hour(3)), partition_key(a, past_hour(1))]
    for request in data.run_requests:
        assert request.job_name == "crawl_chain_job"
        assert isinstance(request.partition_key, dg.MultiPartitionKey)
    first = requests[partition_key(a, past_hour(3))]
    assert first.partition_key.keys_by_dimension == {
        IP_DIMENSION: str(a),
        HOUR_DIMENSION: partition_key(a, past_hour(3)).split("|")[0],
    }
    assert first.run_config == {"ops": {"mercari_crawl": {"config": {"task_ids": ["a-early", "a-same-hour"]}}}}
    assert first.run_key == "crawl:a-early:0,a-same-hour:0"
    assert first.tags["ip_id"] == str(a)
    assert requests[partition_key(b, past_hour(3))].run_config["ops"]["mercari_crawl"]["config"]["task_ids"] == ["b-early"]
    assert requests[partition_key(a, past_hour(1))].run_key == "crawl:a-later:0"
    # Looking does not take: every result still waits for its run.
    assert queue_redis.llen(keys.RESULTS) == 4 and queue_redis.llen(keys.RESULTS_PROCESSING) == 0

    # The same results give the same run keys next tick (the daemon does not launch them twice).
    again = tick(definitions, "crawl_results_sensor", instance, resources, cursor=data.cursor)
    assert [r.run_key for r in again.run_requests] == [r.run_key for r in data.run_requests]


def test_results_sensor_run_key_changes_when_the_janitor_returns_a_result(definitions, instance, resources, mysql_engine, queue_redis):
    [ip] = make_ips(mysql_engine, NAMES[0])
    add_ip_partitions(instance, [ip])
    push(queue_redis, response(ip, past_hour(2), [on_sale("m1")], task_id="t-1"))
    first = tick(definitions, "crawl_results_sensor", instance, resources).run_requests
    assert [r.run_key for r in first] == ["crawl:t-1:0"]

    # A run claimed the result and died: the result sits in processing, taken a minute ago.
    held = ResultQueue(queue_redis, clock=lambda: time.time() - 60).claim(["t-1"], scan=10)
    assert [d.task_id for d in held] == ["t-1"]
    assert tick(definitions, "crawl_results_sensor", instance, resources).skip_message == "no results waiting"
    report = janitor.sweep(queue_redis, timeout_seconds=30)
    assert report.results.requeued == 1

    second = tick(definitions, "crawl_results_sensor", instance, resources).run_requests
    assert [r.run_key for r in second] == ["crawl:t-1:1"]
    assert second[0].partition_key == first[0].partition_key
    assert second[0].run_config == first[0].run_config


def test_results_sensor_batches_when_many_results_wait(definitions, instance, resources, mysql_engine, queue_redis):
    a, b = make_ips(mysql_engine, *NAMES[:2])
    add_ip_partitions(instance, [a, b])
    count = PER_PARTITION_LIMIT + 3
    results = [response((a, b)[i % 2], past_hour(4 - i // 4, 1 + i), [on_sale(f"m{i}")], task_id=f"t-{i:02d}") for i in range(count)]
    push(queue_redis, *results)

    data = tick(definitions, "crawl_results_sensor", instance, resources)
    assert len(data.run_requests) == 1
    [request] = data.run_requests
    assert request.job_name == "ingest_results_job"
    assert request.partition_key is None
    assert request.run_config == {"ops": {"ingest_waiting_results": {"config": {"max_results": crawl_defs.BATCH_SIZE}}}}
    assert request.run_key.startswith("batch:")
    assert request.tags["results_waiting"] == str(count)

    # The same queue gives the same key (the daemon launches the batch once) ...
    assert tick(definitions, "crawl_results_sensor", instance, resources).run_requests[0].run_key == request.run_key
    # ... once a batch has taken the oldest result, the next batch has a new key ...
    ResultQueue(queue_redis, clock=lambda: time.time() - 60).claim(["t-00"], scan=50)
    following = tick(definitions, "crawl_results_sensor", instance, resources).run_requests[0].run_key
    assert following.startswith("batch:") and following != request.run_key
    # ... and when that batch died and the janitor returned the result (retryCount 1), a new one again.
    assert janitor.sweep(queue_redis, timeout_seconds=30).results.requeued == 1
    assert ResultQueue(queue_redis).waiting(1)[0].message.retry_count == 1
    retried = tick(definitions, "crawl_results_sensor", instance, resources).run_requests[0].run_key
    assert retried.startswith("batch:") and retried not in (request.run_key, following)


def test_results_sensor_sends_an_undecodable_result_to_a_batch(definitions, instance, resources, mysql_engine, queue_redis):
    [ip] = make_ips(mysql_engine, NAMES[0])
    add_ip_partitions(instance, [ip])
    queue_redis.lpush(keys.RESULTS, b"{not json")
    push(queue_redis, response(ip, past_hour(2), [on_sale("m1")], task_id="t-1"))
    [request] = tick(definitions, "crawl_results_sensor", instance, resources).run_requests
    assert request.job_name == "ingest_results_job"


def _launch_as_daemon(definitions, instance, request) -> None:
    """Run ``request`` in process, tagged as the sensor daemon tags the runs it launches."""
    tags = {**request.tags, RUN_KEY_TAG: request.run_key, SENSOR_NAME_TAG: "crawl_results_sensor"}
    job = definitions.resolve_job_def(request.job_name)
    result = job.execute_in_process(
        partition_key=request.partition_key, run_config=request.run_config, instance=instance, tags=tags
    )
    assert result.success


def _launchable(instance, requests) -> list:
    """The requests the sensor daemon would launch: it skips a run key for which this sensor
    already has a run (dagster/_daemon/sensor.py, fetch_existing_runs / _get_or_create_sensor_run)."""
    return [
        r for r in requests
        if not instance.get_runs(filters=dg.RunsFilter(tags={RUN_KEY_TAG: r.run_key, SENSOR_NAME_TAG: "crawl_results_sensor"}))
    ]


@pytest.mark.parametrize("batch", [False, True], ids=["per_partition", "batch"])
def test_results_sensor_does_not_stall_on_a_duplicate_delivery(definitions, instance, resources, mysql_engine, queue_redis, batch):
    [ip] = make_ips(mysql_engine, NAMES[0])
    add_ip_partitions(instance, [ip])
    duplicate = response(ip, past_hour(3), [on_sale("m1")], task_id="dup")
    def filler(tag):
        return [response(ip, past_hour(2, i), [on_sale("m1")], task_id=f"{tag}-{i}") for i in range(10)]

    push(queue_redis, duplicate, *(filler("first") if batch else []))
    for request in tick(definitions, "crawl_results_sensor", instance, resources).run_requests:
        _launch_as_daemon(definitions, instance, request)
    assert queue_redis.llen(keys.RESULTS) == 0

    push(queue_redis, duplicate, *(filler("second") if batch else []))  # the same result again, then more
    requests = tick(definitions, "crawl_results_sensor", instance, resources).run_requests
    # The sensor acks the redelivered result itself (it was applied); what else waits gets a run
    # the daemon will launch.
    assert queue_redis.lpos(keys.RESULTS, encode_response(duplicate).encode()) is None
    if batch:
        assert _launchable(instance, requests), "every run the sensor asks for was already used: nothing moves"
    else:
        assert not requests and queue_redis.llen(keys.RESULTS) == 0


def _current_hour_result(engine, instance):
    [ip] = make_ips(engine, NAMES[0])
    add_ip_partitions(instance, [ip])
    return ip, response(ip, current_hour() + timedelta(seconds=1), [on_sale("m1")], task_id="t-now")


def _removed_ip_result(engine, instance):
    [ip] = make_ips(engine, NAMES[0])  # paused after its task was dispatched: its partition is gone
    return ip, response(ip, past_hour(2), [on_sale("m1")], task_id="t-removed")


def _before_the_window_result(engine, instance):
    [ip] = make_ips(engine, NAMES[0])
    add_ip_partitions(instance, [ip])
    return ip, response(ip, datetime.now(UTC) - timedelta(days=20), [on_sale("m1")], task_id="t-old")


@pytest.mark.parametrize(
    ("make_result", "has_partition"),
    [(_current_hour_result, True), (_removed_ip_result, False), (_before_the_window_result, False)],
    ids=["current_hour", "ip_partition_removed", "before_window"],
)
def test_results_sensor_tick_survives_a_result_without_a_partition(
    definitions, instance, resources, mysql_engine, queue_redis, make_result, has_partition
):
    other = make_ips(mysql_engine, NAMES[1])[0]
    add_ip_partitions(instance, [other])
    ip, odd = make_result(mysql_engine, instance)
    push(queue_redis, odd, response(other, past_hour(2), [on_sale("m9")], task_id="t-other"))

    data = tick(definitions, "crawl_results_sensor", instance, resources)  # does not raise
    for request in data.run_requests:
        _launch_as_daemon(definitions, instance, request)
    # The runs it asked for ingest every result, the odd one too: none is left waiting, ...
    with mysql_engine.connect() as connection:
        logged = set(connection.execute(sa.select(crawl_log.c.task_id)).scalars())
    assert logged == {odd.task_id, "t-other"}
    assert queue_redis.llen(keys.RESULTS) == 0 and queue_redis.llen(keys.RESULTS_PROCESSING) == 0
    # ... the other IP's hour is materialized, and the odd result's only where its partition exists.
    shown = {partition_key(other, past_hour(2))} | (
        {partition_key(ip, from_unix(odd.crawled_at))} if has_partition else set()
    )
    assert materialized_partitions(instance, "mercari_crawl") == shown


# -- a fake clock --------------------------------------------------------------------------------


def test_the_cadence_sensor_goes_by_its_clock(definitions, instance, resources, mysql_engine, queue_redis):
    """Shift the sensors' clock to chosen moments: an IP is dispatched exactly when its time has
    come on that clock, and the cursor records the clock's time."""
    [ip] = make_ips(mysql_engine, NAMES[0])
    due_at = int(time.time()) + 7_200
    queue_redis.zadd(keys.SCHEDULE, {str(ip): due_at})

    resources["clock"] = ClockResource(shift_seconds=due_at - 1 - time.time())  # a second early
    early = tick(definitions, "crawl_cadence_sensor", instance, resources)
    assert json.loads(early.cursor)["due"] == 0 and not _queued_requests(queue_redis)

    resources["clock"] = ClockResource(shift_seconds=due_at + 1 - time.time())  # a second late
    late = tick(definitions, "crawl_cadence_sensor", instance, resources)
    assert json.loads(late.cursor)["enqueued"] == 1
    assert [r.ip_id for r in _queued_requests(queue_redis)] == [ip]
    assert abs(json.loads(late.cursor)["at"] - (due_at + 1)) <= 5
    # The lease moved it a max interval ahead of the clock's now, not of the wall's.
    assert ScheduleStore(queue_redis).entries()[0][1] >= due_at + 7_200


def test_the_catalog_sensor_seeds_new_ips_at_its_clocks_now(definitions, instance, resources, mysql_engine, queue_redis):
    [ip] = make_ips(mysql_engine, NAMES[0])  # never crawled: due at the clock's now
    shifted = 3 * 86_400
    resources["clock"] = ClockResource(shift_seconds=shifted)
    tick(definitions, "ip_catalog_sensor", instance, resources)
    [(member, at)] = ScheduleStore(queue_redis).entries()
    assert member == ip and abs(at - (time.time() + shifted)) <= 5
