"""Issue 17 #11: a task recovered by the janitor was followed seconds later by a second crawl of
the same IP: the dispatcher's schedule lease (SCHEDULER_MAX_INTERVAL) was shorter than
JANITOR_TIMEOUT, so the lease ran out while the recovered task was being crawled, and the next
dispatch — the recovered task acknowledged, its result not yet applied — queued another.

On the real Redis and MySQL, with the cadence sensor (dispatch every 10 s), the janitor (a sweep a
minute) and a crawler node (takes a task, dies, later crawls the recovered one) on a fake clock,
with the compressed cadence of ``animehot up`` and the janitor of the probe (3m/1m).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis

from animehot_dagster.queue import janitor, keys
from animehot_dagster.queue.dispatcher import DispatchConfig, dispatch
from animehot_dagster.queue.reliable import TaskQueue
from animehot_dagster.queue.schedule import ScheduleStore
from animehot_dagster.settings import load_settings
from animehot_dagster_tests.factories import make_ips
from animehot_dagster_tests.private_servers import PrivateRedis
from animehot_dagster_tests.queue import FakeClock, request

PROBE = {"SCHEDULER_BASE_INTERVAL": "2m", "SCHEDULER_MIN_INTERVAL": "1m", "SCHEDULER_MAX_INTERVAL": "2m",
         "JANITOR_TIMEOUT": "3m", "JANITOR_INTERVAL": "1m"}
SENSOR_TICK = 10


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def queue_redis(private_redis: PrivateRedis) -> Iterator[redis.Redis]:
    """A Redis of this module alone: the shared test database may be flushed by another run."""
    client = redis.Redis.from_url(private_redis.url)
    client.flushdb()
    yield client
    client.close()


def test_the_lease_is_never_shorter_than_the_janitors_recovery():
    settings = load_settings(PROBE)
    recovery = (settings.janitor_timeout + settings.janitor_interval).total_seconds()
    assert DispatchConfig.from_settings(settings).lease_seconds >= recovery
    # The production cadence's lease (2 h) is already longer: it stays SCHEDULER_MAX_INTERVAL.
    assert DispatchConfig.from_settings(load_settings({})).lease_seconds == timedelta(hours=2).total_seconds()


def test_a_task_recovered_by_the_janitor_is_not_followed_by_a_second_crawl(queue_redis, mysql_engine):
    settings = load_settings(PROBE)
    timeout = settings.janitor_timeout.total_seconds()
    config = DispatchConfig.from_settings(settings)
    clock = FakeClock()
    (ip_id,) = make_ips(mysql_engine, "recovered")
    ScheduleStore(queue_redis, clock).schedule(ip_id, clock.now)
    tasks = TaskQueue(queue_redis, clock)

    assert dispatch(queue_redis, mysql_engine, config, clock, clock.sleep).enqueued == [ip_id]
    assert tasks.take() is not None  # the node takes it and is killed mid-crawl: never acked
    started = clock.now

    recovered_at = None
    dispatched_again = []
    while clock.now < started + 30 * 60:
        clock.advance(SENSOR_TICK)
        if int(clock.now - started) % int(settings.janitor_interval.total_seconds()) == 0:
            if janitor.sweep(queue_redis, timeout, clock).tasks.requeued:
                # A node (restarted) takes the recovered task at once, crawls it and acks it;
                # its result waits for the results sensor (not applied within this test).
                delivery = tasks.take()
                assert delivery is not None and delivery.message.retry_count == 1
                assert tasks.ack(delivery)
                recovered_at = clock.now
        report = dispatch(queue_redis, mysql_engine, config, clock, clock.sleep)
        if report.enqueued:
            dispatched_again.append(clock.now - started)
            break
    assert recovered_at is not None, "the janitor never recovered the task"
    # Not before a full janitor timeout after the recovery: the result has long been applied
    # by then (and would have set the real next crawl time).
    assert not dispatched_again or dispatched_again[0] >= recovered_at - started + timeout, (
        f"recovered {recovered_at - started:.0f} s after the first take, "
        f"dispatched again {dispatched_again[0]:.0f} s after it")
    assert dispatched_again or queue_redis.llen(keys.TASKS) == 0


def test_the_janitor_pushes_the_lease_of_a_recovered_task_but_never_pulls_one_in(queue_redis):
    clock = FakeClock()
    tasks, schedule = TaskQueue(queue_redis, clock), ScheduleStore(queue_redis, clock)
    for ip_id in (1, 2, 3):
        tasks.enqueue(request(ip_id))
        tasks.take()
    schedule.schedule(1, clock.now + 60)  # a lease about to run out
    schedule.schedule(2, clock.now + 86400)  # a later time (a result applied meanwhile): kept
    # IP 3 has no schedule entry (paused or deleted since): the janitor must not add one.
    clock.advance(600)
    assert janitor.sweep(queue_redis, 600, clock).tasks.requeued == 3
    assert dict(schedule.entries()) == {1: int(clock.now) + 600, 2: int(clock.now - 600) + 86400}

