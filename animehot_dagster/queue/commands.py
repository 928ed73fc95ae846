"""Operations commands for the queues, the schedule and the janitor.

Registered on the ``animehot`` group; each reads the settings from ``ctx.obj["settings"]``.
Output is JSON, so it can be piped to jq; the manual's redis-cli commands show the same numbers.
"""

from __future__ import annotations

import json
import logging
import time

import click
import redis

from animehot_dagster.domain.timebuckets import from_unix, rfc3339_jst
from animehot_dagster.queue import janitor
from animehot_dagster.queue.deadletter import clear_dead_letters, dead_letters, requeue_dead_letters
from animehot_dagster.queue.dispatcher import DispatchConfig, dispatch
from animehot_dagster.queue.processor import ResultProcessor
from animehot_dagster.queue.reliable import ReliableQueue, ResultQueue, TaskQueue, open_redis
from animehot_dagster.queue.schedule import ScheduleStore
from animehot_dagster.queue.stats import queue_lengths
from animehot_dagster.settings import Settings
from animehot_dagster.storage import open_engine
from animehot_dagster.storage.ingest import IngestConfig

log = logging.getLogger(__name__)

INGEST_BATCH = 100
INGEST_BLOCK_SECONDS = 5.0
DISPATCH_IDLE_SECONDS = 30.0  # longest sleep between dispatches when nothing is due sooner


def _settings(ctx: click.Context) -> Settings:
    return ctx.obj["settings"]


def _redis(ctx: click.Context) -> redis.Redis:
    settings = _settings(ctx)
    return open_redis(settings.redis_url, settings.redis_pool_size)


def _echo_json(value: object) -> None:
    click.echo(json.dumps(value, ensure_ascii=False))


@click.command("ingest")
@click.option("--drain", is_flag=True, help="Process what is queued now, then exit.")
@click.option("--max", "max_results", type=click.IntRange(min=1), help="Stop after N results.")
@click.pass_context
def ingest_command(ctx: click.Context, drain: bool, max_results: int | None) -> None:
    """Apply crawl results from the result queue (first returning those a previous run held)."""
    settings = _settings(ctx)
    processor = ResultProcessor(_redis(ctx), open_engine(settings), IngestConfig.from_settings(settings))
    summary = {"recovered": processor.recover().as_dict()}
    if drain:
        report = processor.process_batch(max_results)
        summary.update((k, v) for k, v in report.as_dict().items() if k != "applied_task_ids")
        _echo_json(summary)
        return
    taken = 0
    while max_results is None or taken < max_results:
        batch = INGEST_BATCH if max_results is None else min(INGEST_BATCH, max_results - taken)
        taken += processor.process_batch(batch, block_seconds=INGEST_BLOCK_SECONDS).taken


@click.group("queue")
def queue_group() -> None:
    """The Redis queues."""


@queue_group.command("stats")
@click.pass_context
def queue_stats_command(ctx: click.Context) -> None:
    """Length of every queue list, set, hash and of the schedule ZSET, as JSON."""
    click.echo(json.dumps(queue_lengths(_redis(ctx)), indent=2))


def _which_queue(command):
    command = click.option("--results", "which", flag_value="results", help="The result dead-letter list.")(command)
    return click.option("--tasks", "which", flag_value="tasks", help="The task dead-letter list.")(command)


def _queue(ctx: click.Context, which: str | None) -> ReliableQueue:
    if which is None:
        raise click.UsageError("say which dead-letter list: --tasks or --results")
    return (TaskQueue if which == "tasks" else ResultQueue)(_redis(ctx))


@click.group("dlq")
def dlq_group() -> None:
    """The dead-letter lists."""


@dlq_group.command("list")
@_which_queue
@click.pass_context
def dlq_list_command(ctx: click.Context, which: str | None) -> None:
    """One JSON line per entry, oldest first: reason, dead_at, payload."""
    for letter in dead_letters(_queue(ctx, which)):
        _echo_json({
            "reason": letter.reason,
            "dead_at": letter.dead_at,
            "payload": letter.payload.decode("utf-8", "replace"),
        })


@dlq_group.command("requeue")
@_which_queue
@click.pass_context
def dlq_requeue_command(ctx: click.Context, which: str | None) -> None:
    """Put the messages back on their queue with retryCount reset (undecodable ones stay)."""
    report = requeue_dead_letters(_queue(ctx, which))
    _echo_json({"requeued": report.requeued, "left": [
        {"reason": why, "payload": letter.payload.decode("utf-8", "replace")} for letter, why in report.left
    ]})


@dlq_group.command("clear")
@_which_queue
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def dlq_clear_command(ctx: click.Context, which: str | None, yes: bool) -> None:
    """Delete every entry of the dead-letter list."""
    queue = _queue(ctx, which)
    if not yes:
        count = queue.client.llen(queue.keys.deadletter)
        click.confirm(f"Delete the {count} entries of {queue.keys.deadletter}?", abort=True)
    _echo_json({"cleared": clear_dead_letters(queue)})


@click.command("janitor")
@click.option("--once", is_flag=True, help="One sweep, then exit.")
@click.pass_context
def janitor_command(ctx: click.Context, once: bool) -> None:
    """Return messages held past JANITOR_TIMEOUT to their queue, every JANITOR_INTERVAL."""
    settings = _settings(ctx)
    timeout = settings.janitor_timeout.total_seconds()
    if once:
        _echo_json(janitor.sweep(_redis(ctx), timeout).as_dict())
        return
    janitor.run_forever(_redis(ctx), timeout, settings.janitor_interval.total_seconds())


@click.group("schedule")
def schedule_group() -> None:
    """The crawl schedule (ZSET animetop:schedule:pending)."""


@schedule_group.command("rebuild")
@click.option("--replace", is_flag=True, help="Rebuild even when the schedule is not empty.")
@click.pass_context
def schedule_rebuild_command(ctx: click.Context, replace: bool) -> None:
    """Fill the schedule from the active IPs of the catalog (only when empty, unless --replace)."""
    settings = _settings(ctx)
    written = ScheduleStore(_redis(ctx)).rebuild(open_engine(settings), settings.cadence, replace)
    _echo_json({"written": written})


@schedule_group.command("show")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.pass_context
def schedule_show_command(ctx: click.Context, limit: int) -> None:
    """The next IPs to crawl, earliest first, one JSON line each."""
    now = time.time()
    for ip_id, at in ScheduleStore(_redis(ctx)).entries(0, limit - 1):
        _echo_json({"ip_id": ip_id, "at": at, "at_jst": rfc3339_jst(from_unix(at)), "in_seconds": int(at - now)})


@click.command("dispatch")
@click.option("--once", is_flag=True, help="Dispatch what is due now, then exit.")
@click.pass_context
def dispatch_command(ctx: click.Context, once: bool) -> None:
    """Enqueue crawl tasks for the due IPs (rebuilding an empty schedule first)."""
    settings = _settings(ctx)
    client, engine = _redis(ctx), open_engine(settings)
    store = ScheduleStore(client)
    store.rebuild(engine, settings.cadence)
    config = DispatchConfig.from_settings(settings)
    while True:
        report = dispatch(client, engine, config)
        if once:
            _echo_json(report.as_dict())
            return
        upcoming = store.next_due()
        wait = DISPATCH_IDLE_SECONDS if upcoming is None else upcoming[1] - time.time()
        time.sleep(min(max(wait, 1.0), DISPATCH_IDLE_SECONDS))


# What ``animehot_dagster.cli`` registers on its group.
COMMANDS = (ingest_command, queue_group, dlq_group, janitor_command, schedule_group, dispatch_command)
