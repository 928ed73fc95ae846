"""The chaos harness (bench.chaos, issue 17 #3).

The slow test is a short run for real: the local system on a private mariadbd, a few faults of
several kinds with a fixed seed, then the invariants: every crawl the node pushed applied exactly
once or dead-lettered, the hourly rows equal ``animehot replay`` of the applied crawls, no message
left in flight, every fault recovered from. Then it breaks the data on purpose — one crawl applied
a second time under another task id, one crawl the node pushed that never arrived — and checks
that the audit catches both. The fast tests check the classification on made-up records.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from animehot_dagster.crawler.node import CrawlerNode
from animehot_dagster.domain.messages import CrawlRequest, CrawlResponse, Item, decode_response
from animehot_dagster.domain.timebuckets import from_unix
from animehot_dagster.queue import keys
from animehot_dagster.queue.reliable import ResultQueue, TaskQueue
from animehot_dagster.settings import load_settings
from animehot_dagster.storage.db import create_engine
from animehot_dagster.storage.ingest import IngestConfig, apply
from animehot_dagster_tests.conftest import REDIS_URL
from bench import chaos

SERVER_URL = os.environ.get("TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306")


def push(task_id: str, at: float, confirmed: bool = True, ip_id: int = 1) -> chaos.Push:
    return chaos.Push(task_id, ip_id, int(at), "", at, confirmed=confirmed, confirmed_at=at + 0.01 if confirmed else None)


def crawl(task_id: str, at: float, ip_id: int = 1, items: int = 10) -> dict:
    return {"task_id": task_id, "ip_id": ip_id, "crawled_at": datetime.fromtimestamp(int(at), UTC),
            "items_count": items, "error_message": ""}


class Letter:
    def __init__(self, task_id: str, reason: str) -> None:
        self.payload = json.dumps({"taskId": task_id}).encode()
        self.reason = reason


def test_every_pushed_task_is_applied_dead_lettered_lost_to_a_redis_kill_or_lost():
    pushes = [push("a", 100), push("b", 200), push("c", 299), push("d", 400), push("e", 500, confirmed=False),
              push("f", 600), push("f", 700)]
    crawls = [crawl("a", 100), crawl("f", 700)]
    letters = [Letter("b", "out of bounds: price -1")]
    out = chaos.classify(pushes, crawls, letters, redis_kills=[300.5])
    assert (out["applied"], out["dead_lettered"], out["lost_to_redis_kill"], out["never_confirmed_pushed"],
            out["lost"]) == (2, 1, 1, 1, 1)
    assert out["lost_tasks"] == ["d"] and out["lost_to_redis_kill_tasks"] == ["c"]
    assert out["pushed_more_than_once"] == 1 and out["applied_twice"] == 0
    assert len(out["violations"]) == 1 and "neither applied nor dead-lettered" in out["violations"][0]


def test_a_crawl_applied_twice_or_applied_without_a_push_is_a_violation():
    pushes = [push("a", 100), push("b", 200)]
    crawls = [crawl("a", 100), crawl("b", 200), crawl("a-again", 100)]
    out = chaos.classify(pushes, crawls, [], redis_kills=[])
    assert out["applied_twice"] == 1 and out["applied_not_pushed"] == 1
    assert any("applied twice" in v for v in out["violations"])
    assert any("no node pushed" in v for v in out["violations"])


def test_a_result_pushed_long_before_a_redis_kill_is_lost_not_excused():
    out = chaos.classify([push("a", 100)], [], [], redis_kills=[100 + chaos.REDIS_LOSS_WINDOW + 1])
    assert out["lost"] == 1 and out["lost_to_redis_kill"] == 0


class OneCrawl:
    """A crawler that answers every task with the same two items."""

    async def crawl(self, request: CrawlRequest) -> CrawlResponse:
        return CrawlResponse(ip_id=request.ip_id, task_id=request.task_id, crawled_at=request.created_at,
                             items=(Item(source_id="m1", title="one", price=500),), total_found=1, pages_crawled=2)


def test_the_node_logs_each_result_before_and_after_its_push(redis_client, tmp_path: Path):
    """What the harness audits against: the node's own record of what it pushed."""
    client = redis.Redis.from_url(REDIS_URL)
    tasks, results = TaskQueue(client), ResultQueue(client)
    request = CrawlRequest(ip_id=3, keyword="k", task_id="t-1", created_at=1_790_000_000, pages_on_sale=1, pages_sold=1)
    assert tasks.enqueue(request)
    log = tmp_path / "results.jsonl"
    node = CrawlerNode(OneCrawl(), tasks, results, results_log=log)
    asyncio.run(node._handle(tasks.take()))
    (raw,) = client.lrange(keys.RESULTS, 0, -1)
    pushing, pushed = (json.loads(line) for line in log.read_text().splitlines())
    assert pushing["event"] == "pushing" and pushing["result"].encode() == raw
    assert pushed["event"] == "pushed" and pushed["at"] >= pushing["at"]
    assert {k: pushed[k] for k in ("task_id", "ip_id", "crawled_at", "error")} == {
        "task_id": "t-1", "ip_id": 3, "crawled_at": 1_790_000_000, "error": ""}
    (parsed,) = chaos.read_results_log(log)
    assert parsed.confirmed and parsed.raw.encode() == raw
    assert not client.exists(keys.TASKS_PROCESSING)  # acked after the push
    client.close()


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_a_short_chaos_run_keeps_every_invariant_and_the_audit_catches_bad_data(tmp_path: Path):
    config = chaos.ChaosConfig(minutes=2.5, seed=7, faults=("crawler", "redis", "db_hang", "daemon", "api"),
                               server_url=SERVER_URL, workdir=tmp_path / "run", pause=(3.0, 8.0), outage=(6.0, 10.0),
                               recovery_timeout=240)
    run = chaos.ChaosRun(config)
    try:
        result = run.run_and_audit()
        print("\n" + chaos.render(result))
        assert result["ok"], result["violations"]
        assert len(result["faults"]) >= 3, result["faults"]
        assert all(f["recovery_seconds"] is not None for f in result["faults"])
        crawls = result["crawls"]
        assert crawls["applied"] >= run.ip_count and crawls["lost"] == crawls["applied_twice"] == 0
        assert result["replay"]["equal"] and result["replay"]["inflow"] + result["replay"]["outflow"] > 0
        assert not any(result["queues"]["in_flight"].values())

        # Bad data 1: one applied crawl applied a second time, under a new task id.
        pushes = chaos.read_results_log(run.results_log)
        applied = next(p for p in reversed(pushes) if p.confirmed and p.successful and p.raw)
        twin = dataclasses.replace(decode_response(applied.raw), task_id=str(uuid.uuid4()))
        engine = create_engine(run.database_url)
        try:
            apply(engine, twin, IngestConfig.from_settings(load_settings(run.system.env)),
                  now=from_unix(twin.crawled_at))
        finally:
            engine.dispose()
        # Bad data 2: a crawl the node pushed (long after any Redis kill) that never arrived.
        late = max(p.confirmed_at or p.at for p in pushes) + 60
        with run.results_log.open("a", encoding="utf-8") as log:
            for event in ("pushing", "pushed"):
                log.write(json.dumps({"event": event, "at": late, "task_id": "never-arrived", "ip_id": 1,
                                      "crawled_at": int(late), "error": "", "result": applied.raw}) + "\n")
        broken = run.audit()
        assert not broken["ok"]
        assert broken["crawls"]["applied_twice"] == 1 and broken["crawls"]["applied_not_pushed"] == 1
        assert broken["crawls"]["lost"] == 1 and broken["crawls"]["lost_tasks"] == ["never-arrived"]
        assert not broken["replay"]["equal"], "the twin changed the crawl counts: the replay must differ"
    finally:
        run.close()
