"""The dispatcher (SPEC §5): due IPs become CrawlRequests, in batches, with backpressure."""

from __future__ import annotations

import dataclasses
import enum
import logging
import time
from collections.abc import Callable, Sequence

import redis
from sqlalchemy.engine import Engine

from animehot_dagster.domain.messages import CrawlRequest
from animehot_dagster.queue.reliable import Clock, TaskQueue
from animehot_dagster.queue.schedule import ScheduleStore
from animehot_dagster.settings import Settings
from animehot_dagster.storage.ip_queries import ip_statuses

log = logging.getLogger(__name__)


def lease_seconds(settings: Settings) -> float:
    """SCHEDULER_MAX_INTERVAL, or the janitor's longest recovery (JANITOR_TIMEOUT +
    JANITOR_INTERVAL: a held task is returned at the first sweep past the timeout) if longer."""
    recovery = settings.janitor_timeout + settings.janitor_interval
    return max(settings.scheduler_max_interval, recovery).total_seconds()


@dataclasses.dataclass(frozen=True)
class DispatchConfig:
    batch_size: int = Settings.scheduler_batch_size
    backpressure_threshold: int = Settings.scheduler_backpressure_threshold
    # A dispatched IP's score moves to now + lease, so an IP whose task is lost still comes
    # back; the processed result replaces it with the real next crawl time. Never shorter than
    # the janitor's recovery (JANITOR_TIMEOUT + JANITOR_INTERVAL): a task held by a node that
    # died must come back through the janitor, not be doubled by a new dispatch (issue 17 #11).
    lease_seconds: float = lease_seconds(Settings())
    pages_on_sale: int = Settings.scheduler_pages_on_sale
    pages_sold: int = Settings.scheduler_pages_sold
    max_backpressure_wait_seconds: float = 600
    # A sensor tick must end in time: with this set, the wait bound holds for the whole call
    # and the batches not sent by then stay due in the schedule for the next call, instead of
    # each batch waiting its own bound and going out regardless.
    defer_when_full: bool = False
    backpressure_poll_seconds: float = 1.0
    retry_delay_seconds: float = 60

    @classmethod
    def from_settings(cls, settings: Settings) -> DispatchConfig:
        return cls(
            batch_size=settings.scheduler_batch_size,
            backpressure_threshold=settings.scheduler_backpressure_threshold,
            lease_seconds=lease_seconds(settings),
            pages_on_sale=settings.scheduler_pages_on_sale,
            pages_sold=settings.scheduler_pages_sold,
        )


class Dispatched(enum.Enum):
    ENQUEUED = "enqueued"
    ALREADY_PENDING = "already_pending"
    FAILED = "failed"


@dataclasses.dataclass
class DispatchReport:
    due: int = 0
    enqueued: list[int] = dataclasses.field(default_factory=list)
    already_pending: list[int] = dataclasses.field(default_factory=list)
    dropped: list[int] = dataclasses.field(default_factory=list)  # paused, deleted or unknown
    failed: list[int] = dataclasses.field(default_factory=list)  # re-scheduled a minute later
    deferred: list[int] = dataclasses.field(default_factory=list)  # still due: the queue stayed full
    batches: int = 0
    waited_seconds: float = 0.0
    backpressure_timeouts: int = 0

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def dispatch(
    client: redis.Redis,
    engine: Engine,
    config: DispatchConfig,
    clock: Clock = time.time,
    sleep: Callable[[float], None] = time.sleep,
    limit: int | None = None,
) -> DispatchReport:
    """Enqueue a task for every due active IP (at most ``limit``), ``batch_size`` at a time;
    before each batch after the first, wait until the task queue has room."""
    schedule, tasks = ScheduleStore(client, clock), TaskQueue(client, clock)
    report = DispatchReport()
    due = schedule.due(limit)
    report.due = len(due)
    statuses = ip_statuses(engine, due) if due else {}
    dispatchable = []
    for ip_id in due:
        status = statuses.get(ip_id)
        if status is None or not status.active:
            schedule.remove(ip_id)
            report.dropped.append(ip_id)
        else:
            dispatchable.append((ip_id, status.keyword))
    batches = _batches(dispatchable, config.batch_size)
    deadline = clock() + config.max_backpressure_wait_seconds if config.defer_when_full else None
    for number, batch in enumerate(batches):
        if number:
            waited, timed_out = _wait_for_room(tasks, config, clock, sleep, deadline)
            report.waited_seconds += waited
            report.backpressure_timeouts += timed_out
            if timed_out and config.defer_when_full:
                report.deferred = [ip_id for rest in batches[number:] for ip_id, _ in rest]
                break
        report.batches += 1
        for ip_id, keyword in batch:
            outcome = _dispatch_one(schedule, tasks, config, ip_id, keyword, clock())
            getattr(report, outcome.value).append(ip_id)
    if report.due:
        log.info("tasks dispatched", extra={
            "due": report.due, "enqueued": len(report.enqueued), "already_pending": len(report.already_pending),
            "dropped": len(report.dropped), "failed": len(report.failed), "deferred": len(report.deferred),
            "batches": report.batches,
            "waited_seconds": report.waited_seconds,
        })
    return report


def _batches(items: Sequence, size: int) -> list[Sequence]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def _dispatch_one(
    schedule: ScheduleStore, tasks: TaskQueue, config: DispatchConfig, ip_id: int, keyword: str, now: float
) -> Dispatched:
    request = CrawlRequest.new_task(ip_id, keyword, config, now)
    try:
        # The lease goes in before the task: a result processed at once then overwrites it,
        # never the other way round.
        schedule.schedule(ip_id, now + config.lease_seconds)
        added = tasks.enqueue(request)
    except redis.RedisError:
        log.warning("enqueue failed, retrying in a minute", exc_info=True, extra={"ip_id": ip_id})
        try:
            schedule.schedule(ip_id, now + config.retry_delay_seconds)
        except redis.RedisError:
            log.exception("re-scheduling failed", extra={"ip_id": ip_id})
        return Dispatched.FAILED
    return Dispatched.ENQUEUED if added else Dispatched.ALREADY_PENDING


def _wait_for_room(
    tasks: TaskQueue, config: DispatchConfig, clock: Clock, sleep: Callable[[float], None], deadline: float | None
) -> tuple[float, bool]:
    """Sleep until queued + held tasks ≤ the threshold; give up at ``deadline`` (default: the
    maximum wait from now). Returns (seconds waited, whether it gave up)."""
    started = clock()
    deadline = started + config.max_backpressure_wait_seconds if deadline is None else deadline
    while tasks.depth() > config.backpressure_threshold:
        if clock() >= deadline:
            waited = clock() - started
            log.warning("backpressure wait timed out", extra={"waited_seconds": waited, "depth": tasks.depth()})
            return waited, True
        sleep(min(config.backpressure_poll_seconds, deadline - clock()))
    return clock() - started, False
