"""The operations commands, and the manual's redis-cli commands (§7.3, §8.2, §8.4) beside them."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from urllib.parse import urlparse

import click
import pytest
from click.testing import CliRunner

from animehot_dagster.queue import keys
from animehot_dagster.queue.commands import COMMANDS
from animehot_dagster.queue.reliable import MAX_RETRIES, ResultQueue, TaskQueue
from animehot_dagster.queue.schedule import ScheduleStore
from animehot_dagster.settings import Settings
from animehot_dagster_tests.conftest import REDIS_URL
from animehot_dagster_tests.factories import T0, make_ips, on_sale, response
from animehot_dagster_tests.queue import FakeClock, lrange, request


@click.group()
def animehot() -> None:
    """The commands as ``animehot_dagster.cli`` registers them; the settings come in ``obj``."""


for _command in COMMANDS:
    animehot.add_command(_command)


@pytest.fixture
def settings(mysql_url) -> Settings:
    return Settings(redis_url_override=REDIS_URL, database_url_override=mysql_url, auto_migrate=False,
                    janitor_timeout=timedelta(seconds=30))


def run(settings: Settings, *args: str, input: str | None = None, exit_code: int = 0):
    result = CliRunner().invoke(animehot, list(args), obj={"settings": settings}, input=input)
    assert result.exit_code == exit_code, result.output + repr(result.exception)
    return result


def run_json(settings: Settings, *args: str):
    return json.loads(run(settings, *args).output)


def json_lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def redis_cli(*args: str) -> str:
    url = urlparse(REDIS_URL)
    command = ["redis-cli", "-h", url.hostname, "-p", str(url.port or 6379), "-n", url.path.lstrip("/") or "0", *args]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def busy_queues(client) -> None:
    """Some of everything: queued, held and dead tasks and results, a schedule, processed ids."""
    clock = FakeClock()
    tasks, results = TaskQueue(client, clock), ResultQueue(client, clock)
    for ip_id in range(1, 6):
        tasks.enqueue(request(ip_id))
    held = [tasks.take() for _ in range(3)]
    tasks.dead_letter(held[0], "a reason")
    for ip_id in range(1, 4):
        results.push(response(ip_id, T0, [on_sale("m1")]))
    results.take()
    client.sadd(keys.PROCESSED, "a", "b")
    store = ScheduleStore(client, clock)
    for ip_id in range(1, 9):
        store.schedule(ip_id, clock.now + 100 * (9 - ip_id))


def test_the_manual_redis_cli_commands_show_the_numbers_queue_stats_shows(settings, queue_redis):
    busy_queues(queue_redis)
    stats = run_json(settings, "queue", "stats")
    assert stats == {
        keys.SCHEDULE: 8, keys.TASKS: 2, keys.TASKS_PROCESSING: 2, keys.TASKS_PENDING: 4, keys.TASKS_STARTED: 2,
        keys.TASKS_DEADLETTER: 1, keys.RESULTS: 2, keys.RESULTS_PROCESSING: 1, keys.RESULTS_STARTED: 1,
        keys.RESULTS_DEADLETTER: 0, keys.PROCESSED: 2,
    }
    # §7.3 and §8.2, command for command.
    for command, key in [("LLEN", keys.TASKS), ("LLEN", keys.RESULTS), ("LLEN", keys.TASKS_PROCESSING),
                         ("LLEN", keys.TASKS_DEADLETTER), ("ZCARD", keys.SCHEDULE), ("SCARD", keys.TASKS_PENDING)]:
        assert int(redis_cli(command, key)) == stats[key], (command, key)
    assert "used_memory:" in redis_cli("INFO", "memory")
    zrange = redis_cli("ZRANGE", keys.SCHEDULE, "0", "5", "WITHSCORES").split()
    shown = json_lines(run(settings, "schedule", "show", "--limit", "6").output)
    assert [(int(zrange[i]), int(zrange[i + 1])) for i in range(0, len(zrange), 2)] == [
        (entry["ip_id"], entry["at"]) for entry in shown]
    assert len(shown) == 6 and shown[0]["ip_id"] == 8


def test_the_manual_dead_letter_commands_see_what_dlq_list_sees(settings, queue_redis):
    busy_queues(queue_redis)
    listed = json_lines(run(settings, "dlq", "list", "--tasks").output)
    lranged = [json.loads(line) for line in redis_cli("LRANGE", keys.TASKS_DEADLETTER, "0", "-1").splitlines()]
    assert [(e["reason"], e["dead_at"], e["payload"]) for e in lranged] == [
        (e["reason"], e["dead_at"], e["payload"]) for e in listed]
    assert listed[0]["reason"] == "a reason" and json.loads(listed[0]["payload"])["taskId"] == "task-1"
    assert redis_cli("DEL", keys.TASKS_DEADLETTER).strip() == "1"
    assert run_json(settings, "queue", "stats")[keys.TASKS_DEADLETTER] == 0
    assert run(settings, "dlq", "list", "--tasks").output == ""


def test_dlq_requeue_puts_messages_back_with_retry_count_reset(settings, queue_redis):
    clock = FakeClock()
    tasks = TaskQueue(queue_redis, clock)
    tasks.enqueue(request(1))
    for _ in range(MAX_RETRIES + 1):  # the janitor dead-letters it on the fourth timeout
        tasks.take()
        clock.advance(600)
        tasks.release_stale(600)
    queue_redis.lpush(keys.TASKS, b"not a task")
    tasks.dead_letter(tasks.take(), "undecodable")
    assert queue_redis.llen(keys.TASKS_DEADLETTER) == 2 and not tasks.is_pending(1)

    report = run_json(settings, "dlq", "requeue", "--tasks")

    assert report == {"requeued": 1, "left": [
        {"reason": "CrawlRequest: not JSON (Expecting value: line 1 column 1 (char 0))", "payload": "not a task"}]}
    (requeued,) = lrange(queue_redis, keys.TASKS)
    assert json.loads(requeued)["taskId"] == "task-1" and "retryCount" not in json.loads(requeued)
    assert tasks.is_pending(1)
    assert queue_redis.llen(keys.TASKS_DEADLETTER) == 1


def test_dlq_clear_asks_first(settings, queue_redis):
    queue_redis.rpush(keys.RESULTS_DEADLETTER, b"one", b"two")
    aborted = run(settings, "dlq", "clear", "--results", input="n\n", exit_code=1)
    assert "Delete the 2 entries of animetop:queue:results:deadletter?" in aborted.output
    assert queue_redis.llen(keys.RESULTS_DEADLETTER) == 2
    assert json.loads(run(settings, "dlq", "clear", "--results", input="y\n").output.splitlines()[-1]) == {"cleared": 2}
    queue_redis.rpush(keys.TASKS_DEADLETTER, b"three")
    assert run_json(settings, "dlq", "clear", "--tasks", "--yes") == {"cleared": 1}
    assert not queue_redis.exists(keys.TASKS_DEADLETTER, keys.RESULTS_DEADLETTER)


def test_dlq_commands_need_to_know_which_list(settings, queue_redis):
    assert "--tasks or --results" in run(settings, "dlq", "list", exit_code=2).output


def test_ingest_drain_processes_what_is_queued_and_exits(settings, queue_redis, mysql_engine):
    ip_ids = make_ips(mysql_engine, "a", "b", "c")
    results = ResultQueue(queue_redis)
    for ip_id in ip_ids:
        results.push(response(ip_id, T0, [on_sale("m1")]))
    queue_redis.lpush(keys.RESULTS, b"{}")
    results.take()  # held by a processor that died: recovered at start

    first = run_json(settings, "ingest", "--drain", "--max", "2")
    assert first == {"recovered": {"requeued": 1, "dead_lettered": 0, "stamped": 0, "held": 0, "gone": 0,
                                   "forgotten_start_times": 0},
                     "taken": 2, "applied": 2, "already_applied": 0, "dead_lettered": 0, "failed": 0}
    second = run_json(settings, "ingest", "--drain")
    assert (second["taken"], second["applied"], second["dead_lettered"]) == (2, 1, 1)
    assert queue_redis.llen(keys.RESULTS) == 0 and queue_redis.llen(keys.RESULTS_DEADLETTER) == 1


def test_janitor_once_sweeps_with_the_configured_timeout(settings, queue_redis):
    tasks = TaskQueue(queue_redis)
    tasks.enqueue(request(1))
    tasks.enqueue(request(2))
    old, recent = tasks.take(), tasks.take()
    queue_redis.hset(keys.TASKS_STARTED, old.task_id, 1000)  # taken long ago; `recent` just now
    report = run_json(settings, "janitor", "--once")
    assert (report["tasks"]["requeued"], report["tasks"]["held"]) == (1, 1)
    assert lrange(queue_redis, keys.TASKS_PROCESSING) == [recent.raw]


def test_schedule_rebuild_then_dispatch(settings, queue_redis, mysql_engine):
    first, second = make_ips(mysql_engine, "first", "second")
    assert run_json(settings, "schedule", "rebuild") == {"written": 2}
    assert run_json(settings, "schedule", "rebuild") == {"written": 0}
    assert run_json(settings, "schedule", "rebuild", "--replace") == {"written": 2}
    shown = json_lines(run(settings, "schedule", "show").output)
    assert [entry["ip_id"] for entry in shown] == [first, second]
    assert shown[1]["at"] - shown[0]["at"] == 10  # staggered
    report = run_json(settings, "dispatch", "--once")  # `first` is due now, `second` in 10 s
    assert (report["enqueued"], report["batches"]) == ([first], 1)
    assert queue_redis.smembers(keys.TASKS_PENDING) == {f"ip:{first}".encode()}
