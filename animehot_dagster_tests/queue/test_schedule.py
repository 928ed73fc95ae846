"""The schedule ZSET: due and next with a fake clock, rebuild from MySQL."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from animehot_dagster.domain.cadence import CadencePolicy
from animehot_dagster.queue import keys
from animehot_dagster.queue.schedule import ScheduleStore
from animehot_dagster.storage.schema import ip_metadata
from animehot_dagster_tests.factories import T0, make_ips
from animehot_dagster_tests.queue import FakeClock


def set_ip(engine: sa.Engine, ip_id: int, **values) -> None:
    with engine.begin() as connection:
        connection.execute(ip_metadata.update().where(ip_metadata.c.id == ip_id).values(**values))


def test_due_and_next_follow_the_clock(queue_redis):
    clock = FakeClock()
    store = ScheduleStore(queue_redis, clock)
    now = clock.now
    store.schedule(3, now + 120)
    store.schedule(1, now - 60)
    store.schedule(2, now)
    assert store.count() == 3
    assert store.due() == [1, 2]
    assert store.due(limit=1) == [1]
    assert store.next_due() == (1, int(now - 60))
    clock.advance(120)
    assert store.due() == [1, 2, 3]
    store.remove(1)
    store.remove(2)
    assert store.next_due() == (3, int(now + 120))
    store.remove(3)
    assert store.next_due() is None and store.due() == []


def test_rescheduling_moves_an_ip_instead_of_adding_it(queue_redis):
    clock = FakeClock()
    store = ScheduleStore(queue_redis, clock)
    store.schedule(1, clock.now)
    store.schedule(1, clock.now + 3600)
    assert store.entries() == [(1, int(clock.now + 3600))]
    assert queue_redis.zscore(keys.SCHEDULE, "1") == int(clock.now + 3600)


def test_an_empty_schedule_is_rebuilt_from_the_active_ips(queue_redis, mysql_engine):
    clock = FakeClock()
    now = T0.replace(microsecond=0) + timedelta(hours=5)
    clock.now = now.timestamp()
    recent, never, paused, stale = make_ips(mysql_engine, "recent", "never", "paused", "stale")
    set_ip(mysql_engine, recent, last_crawled_at=now - timedelta(minutes=30))
    set_ip(mysql_engine, paused, status="paused")
    set_ip(mysql_engine, stale, last_crawled_at=now - timedelta(hours=3))
    store = ScheduleStore(queue_redis, clock)

    assert store.rebuild(mysql_engine, CadencePolicy()) == 3
    base = int(clock.now)
    assert sorted(store.entries()) == [
        (recent, base + 90 * 60),  # last crawl + the 2 h interval of weight 1
        (never, base),  # staggered: now + 0 × 10 s
        (stale, base + 10),  # its time is past: now + 1 × 10 s
    ]

    store.schedule(never, base + 999)
    assert store.rebuild(mysql_engine, CadencePolicy()) == 0  # not empty: left alone
    assert dict(store.entries())[never] == base + 999
    assert store.rebuild(mysql_engine, CadencePolicy(), replace=True) == 3
    assert dict(store.entries())[never] == base
