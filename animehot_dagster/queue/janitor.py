"""The janitor (SPEC §6): returns messages whose holder went quiet, dead-letters the hopeless."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

import redis

from animehot_dagster.queue.reliable import Clock, ResultQueue, SweepReport, TaskQueue

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class JanitorReport:
    tasks: SweepReport
    results: SweepReport
    pending_marks_added: tuple[str, ...]
    pending_marks_removed: tuple[str, ...]

    def as_dict(self) -> dict:
        return {
            "tasks": self.tasks.as_dict(),
            "results": self.results.as_dict(),
            "pending_marks_added": list(self.pending_marks_added),
            "pending_marks_removed": list(self.pending_marks_removed),
        }


def sweep(client: redis.Redis, timeout_seconds: float, clock: Clock = time.time) -> JanitorReport:
    """One pass over both processing lists, then the pending set."""
    tasks = TaskQueue(client, clock)
    task_sweep = tasks.release_stale(timeout_seconds)
    result_sweep = ResultQueue(client, clock).release_stale(timeout_seconds)
    added, removed = tasks.reconcile_pending()
    if added or removed:
        log.warning("pending set repaired", extra={"added": added, "removed": removed})
    return JanitorReport(task_sweep, result_sweep, tuple(added), tuple(removed))


def run_forever(
    client: redis.Redis,
    timeout_seconds: float,
    interval_seconds: float,
    clock: Clock = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    while True:
        try:
            report = sweep(client, timeout_seconds, clock)
            log.info("janitor sweep", extra=report.as_dict())
        except redis.RedisError:
            # Redis away for a moment must not end the janitor; the next sweep catches up.
            log.exception("janitor sweep failed")
        sleep(interval_seconds)
