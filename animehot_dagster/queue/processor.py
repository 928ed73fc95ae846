"""The result processor: results from the queue into the database, each applied once.

``animetop:processed`` answers "already applied?" without touching the database; the crawl
log's task_id (checked inside the ingest transaction) remains the authority, so a result applied
just before its processor died is recognised when it comes round again.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime

import redis
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from animehot_dagster.domain.timebuckets import to_unix
from animehot_dagster.queue.keys import invalidate_after_crawl
from animehot_dagster.queue.reliable import Clock, Delivery, ResultQueue, SweepReport
from animehot_dagster.queue.schedule import ScheduleStore
from animehot_dagster.storage.ingest import IngestConfig, IngestResult, UnknownIpError, apply

log = logging.getLogger(__name__)


class Outcome(enum.Enum):
    APPLIED = "applied"
    ALREADY_APPLIED = "already_applied"
    DEAD_LETTERED = "dead_lettered"
    FAILED = "failed"  # left in processing: the janitor returns it after the timeout


@dataclasses.dataclass
class ProcessReport:
    applied: list[IngestResult] = dataclasses.field(default_factory=list)
    already_applied: int = 0
    dead_lettered: int = 0
    failed: int = 0

    @property
    def taken(self) -> int:
        return len(self.applied) + self.already_applied + self.dead_lettered + self.failed

    def as_dict(self) -> dict:
        return {
            "taken": self.taken,
            "applied": len(self.applied),
            "already_applied": self.already_applied,
            "dead_lettered": self.dead_lettered,
            "failed": self.failed,
            "applied_task_ids": [result.task_id for result in self.applied],
        }


class ResultProcessor:
    def __init__(self, client: redis.Redis, engine: Engine, config: IngestConfig, clock: Clock = time.time) -> None:
        self.results = ResultQueue(client, clock)
        self.schedule = ScheduleStore(client, clock)
        self.engine = engine
        self.config = config
        self.clock = clock

    def recover(self) -> SweepReport:
        """Call once when the processor starts: results a previous run held go back."""
        report = self.results.recover()
        if report.requeued or report.dead_lettered:
            log.warning("results recovered from processing", extra=report.as_dict())
        return report

    def process_batch(self, max_results: int | None = None, block_seconds: float = 0) -> ProcessReport:
        """Process results until the queue is empty (waiting up to ``block_seconds`` for
        each) or ``max_results`` were taken."""
        report = ProcessReport()
        while max_results is None or report.taken < max_results:
            processed = self.process_next(block_seconds)
            if processed is None:
                break
            self._record(report, *processed)
        return report

    @staticmethod
    def _record(report: ProcessReport, outcome: Outcome, result: IngestResult | None) -> None:
        if outcome is Outcome.APPLIED:
            report.applied.append(result)
        else:
            setattr(report, outcome.value, getattr(report, outcome.value) + 1)

    def process_tasks(self, task_ids: Iterable[str], scan: int) -> ProcessReport:
        """Process the results of ``task_ids`` if they are among the oldest ``scan`` waiting
        (how a Dagster run for one (ip, hour) partition takes exactly its own results)."""
        report = ProcessReport()
        for delivery in self.results.claim(task_ids, scan):
            self._record(report, *self._handle(delivery))
        return report

    def process_next(self, block_seconds: float = 0) -> tuple[Outcome, IngestResult | None] | None:
        """Take one result and deal with it; None when there was none."""
        delivery = self.results.take(block_seconds)
        if delivery is None:
            return None
        return self._handle(delivery)

    def _handle(self, delivery: Delivery) -> tuple[Outcome, IngestResult | None]:
        if delivery.message is None:  # undecodable or out of bounds (SPEC §6): at once, never retried
            self.results.dead_letter(delivery, delivery.reason)
            log.warning("result dead-lettered", extra={"reason": delivery.reason})
            return Outcome.DEAD_LETTERED, None
        if self.results.is_processed(delivery.task_id):
            self.results.ack(delivery)
            return Outcome.ALREADY_APPLIED, None
        return self._apply(delivery)

    def _apply(self, delivery: Delivery) -> tuple[Outcome, IngestResult | None]:
        response = delivery.message
        try:
            result = apply(self.engine, response, self.config, now=datetime.fromtimestamp(self.clock(), UTC))
            self._write_next_crawl(result)
            self.results.ack(delivery)
            if result.applied:
                invalidate_after_crawl(self.results.client, result.ip_id)
        except UnknownIpError as exc:
            self.results.dead_letter(delivery, f"unknown ip: {exc}")
            return Outcome.DEAD_LETTERED, None
        except sa.exc.DataError as exc:
            # The database refuses the data itself (too long, out of range): the same result
            # would fail the same way on every retry, so it goes to the dead letters now, its
            # cause with it, instead of failing three runs and ending as "retries exhausted".
            cause = getattr(exc, "orig", None) or exc
            reason = f"data error: {type(cause).__name__}: {cause}"
            log.error("result dead-lettered: the database refuses its data",
                      extra={"task_id": response.task_id, "ip_id": response.ip_id, "reason": reason})
            self.results.dead_letter(delivery, reason[:1000])
            return Outcome.DEAD_LETTERED, None
        except Exception:  # whatever it was, the janitor retries the result later
            log.error("task processing failed", exc_info=True,
                      extra={"task_id": response.task_id, "ip_id": response.ip_id})
            return Outcome.FAILED, None
        return (Outcome.APPLIED if result.applied else Outcome.ALREADY_APPLIED), result

    def _write_next_crawl(self, result: IngestResult) -> None:
        # Also for a result found already applied: one applied just before its processor died
        # comes back that way, and still carries the next crawl time that crawl decided.
        if result.ip_active:
            self.schedule.schedule(result.ip_id, to_unix(result.next_crawl_at))
        else:
            self.schedule.remove(result.ip_id)
