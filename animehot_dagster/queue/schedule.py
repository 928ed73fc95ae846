"""The schedule (SPEC §5): ZSET ``animetop:schedule:pending``, member = IP id, score = unix
seconds of its next crawl."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import redis
from sqlalchemy.engine import Engine

from animehot_dagster.domain.cadence import CadencePolicy, rebuild_schedule
from animehot_dagster.domain.timebuckets import to_unix
from animehot_dagster.queue.keys import SCHEDULE
from animehot_dagster.queue.reliable import Clock
from animehot_dagster.storage.ip_queries import ActiveIp, active_ips

log = logging.getLogger(__name__)


class ScheduleStore:
    def __init__(self, client: redis.Redis, clock: Clock = time.time) -> None:
        self.client = client
        self.clock = clock

    def schedule(self, ip_id: int, at: float) -> None:
        self.client.zadd(SCHEDULE, {str(ip_id): int(at)})

    def seed(self, ips: list[ActiveIp], policy: CadencePolicy) -> int:
        """Schedule IPs as a rebuild would (last crawl + interval, or staggered from now),
        leaving any that already have a time alone; returns how many were added."""
        planned = self._plan(ips, policy)
        return self.client.zadd(SCHEDULE, planned, nx=True) if planned else 0

    def _plan(self, ips: list[ActiveIp], policy: CadencePolicy) -> dict[str, int]:
        now = datetime.fromtimestamp(self.clock(), UTC)
        intervals = [(ip.id, policy.current_interval(ip.weight, ip.crawl_interval_minutes), ip.last_crawled_at) for ip in ips]
        return {str(ip_id): to_unix(at) for ip_id, at in rebuild_schedule(intervals, now)}

    def remove(self, ip_id: int) -> None:
        self.client.zrem(SCHEDULE, str(ip_id))

    def count(self) -> int:
        return self.client.zcard(SCHEDULE)

    def due(self, limit: int | None = None) -> list[int]:
        """IPs whose time has come as of the clock, earliest first."""
        members = self.client.zrangebyscore(
            SCHEDULE, "-inf", self.clock(), start=0 if limit else None, num=limit or None
        )
        return [int(member) for member in members]

    def next_due(self) -> tuple[int, int] | None:
        """(IP id, unix seconds) of the earliest entry, due or not."""
        first = self.client.zrange(SCHEDULE, 0, 0, withscores=True)
        return (int(first[0][0]), int(first[0][1])) if first else None

    def entries(self, start: int = 0, stop: int = -1) -> list[tuple[int, int]]:
        """(IP id, unix seconds) by time, ranks ``start``..``stop`` inclusive as ZRANGE counts."""
        return [(int(m), int(s)) for m, s in self.client.zrange(SCHEDULE, start, stop, withscores=True)]

    def rebuild(self, engine: Engine, policy: CadencePolicy, replace: bool = False) -> int:
        """Fill the schedule from the catalog's active IPs (last crawl + interval, or staggered
        from now); only when it is empty unless ``replace``. Returns the entries written."""
        if not replace and self.count():
            return 0
        mapping = self._plan(active_ips(engine), policy)
        with self.client.pipeline(transaction=True) as pipe:
            if replace:
                pipe.delete(SCHEDULE)
            if mapping:
                # NX: an entry written since the emptiness check (a processed result) is newer.
                pipe.zadd(SCHEDULE, mapping, nx=not replace)
            pipe.execute()
        log.info("schedule rebuilt", extra={"entries": len(mapping), "replaced": replace})
        return len(mapping)
