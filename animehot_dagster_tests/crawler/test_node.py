"""The crawler node as a real process on the real Redis and the simulator: it answers queued
tasks, serves its metrics and health, and on SIGTERM loses nothing — the crawl under way either
finishes (result pushed, task acked) or its task goes back to the queue."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from animehot_dagster.domain.messages import (
    CrawlRequest,
    decode_request,
    decode_response,
)
from animehot_dagster.queue import keys
from animehot_dagster.queue.reliable import TaskQueue
from animehot_dagster.simulator.faults import FaultKind, Surface
from animehot_dagster_tests.conftest import REDIS_URL
from animehot_dagster_tests.crawler import (
    KEYWORD,
    SMALL,
)

NODE = (
    "import sys\n"
    "from animehot_dagster.crawler.commands import crawler_command\n"
    "from animehot_dagster.settings import load_settings\n"
    "crawler_command.main(sys.argv[1:], obj={'settings': load_settings()}, prog_name='animehot crawler')\n"
)
CRAWLER_METRICS = {
    "animetop_crawler_requests_total",
    "animetop_crawler_request_duration_seconds",
    "animetop_crawler_errors_total",
    "animetop_crawler_browser_active",
    "animetop_crawler_proxy_mode",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition: Callable[[], bool], timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class NodeProcess:
    def __init__(self, simulator_url: str, log_path: Path, *args: str) -> None:
        self.metrics_url = f"http://127.0.0.1:{free_port()}"
        environment = os.environ | {
            "REDIS_URL": REDIS_URL,
            "MERCARI_WEB_URL": simulator_url,
            "MERCARI_API_URL": simulator_url,
            "METRICS_PORT": self.metrics_url.rsplit(":", 1)[1],
            "APP_RATE_LIMIT": "100",
            "APP_RATE_BURST": "10",
        }
        self.log_path = log_path
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-c", NODE, *args], env=environment, stdout=self._log, stderr=subprocess.STDOUT
        )

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.metrics_url + path, timeout=5)

    def answers(self) -> bool:
        try:
            return self.get("/health").status_code == 200
        except httpx.TransportError:
            return False

    def stop(self, timeout: float = 30) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        self._log.close()
        return code

    def log_lines(self) -> list[dict]:
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.startswith("{")]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log.close()


@pytest.fixture
def node_redis(redis_client) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def start_node(market, tmp_path) -> Iterator[Callable[..., NodeProcess]]:
    started: list[NodeProcess] = []

    def start(*args: str) -> NodeProcess:
        node = NodeProcess(market.url, tmp_path / f"node-{len(started)}.log", *args)
        started.append(node)
        wait_until(node.answers, what="the node's health endpoint")
        return node

    yield start
    for node in started:
        node.kill()


def task(task_id: str, keyword: str, on_sale: int, sold: int, ip_id: int) -> CrawlRequest:
    return CrawlRequest(ip_id=ip_id, keyword=keyword, task_id=task_id, created_at=int(time.time()),
                        pages_on_sale=on_sale, pages_sold=sold)


def results(client: redis.Redis) -> dict[str, object]:
    return {r.task_id: r for r in map(decode_response, client.lrange(keys.RESULTS, 0, -1))}


def test_the_node_answers_queued_tasks_and_serves_metrics_health_and_readiness(node_redis, start_node):
    tasks = TaskQueue(node_redis)
    tasks.enqueue(task("small", SMALL, 1, 1, ip_id=1))
    tasks.enqueue(task("big", KEYWORD, 2, 2, ip_id=2))
    node = start_node()
    wait_until(lambda: node_redis.llen(keys.RESULTS) == 2, what="two results")
    answered = results(node_redis)
    assert answered["small"].pages_crawled == 2 and answered["big"].pages_crawled == 4
    assert len(answered["big"].items) == 480 and answered["big"].error_message == ""
    wait_until(lambda: node_redis.llen(keys.TASKS_PROCESSING) == 0, what="the acks")
    assert node_redis.llen(keys.TASKS) == 0 and node_redis.scard(keys.TASKS_PENDING) == 0

    assert node.get("/ready").status_code == 200
    exposition = node.get("/metrics").text
    assert {line.split()[2] for line in exposition.splitlines() if line.startswith("# TYPE")} == CRAWLER_METRICS
    assert 'animetop_crawler_requests_total{status="success"} 6.0' in exposition
    assert 'animetop_crawler_errors_total{type="blocked"} 0.0' in exposition

    assert node.stop() == 0
    lines = node.log_lines()
    assert {line["service"] for line in lines} == {"crawler"}
    assert [line["msg"] for line in lines if line["msg"] in ("shutdown signal received", "crawler node stopped")] == [
        "shutdown signal received", "crawler node stopped"
    ]


def test_sigterm_mid_crawl_lets_the_crawl_finish_and_answers_the_task(node_redis, market, start_node):
    market.fail(FaultKind.SLOW, surface=Surface.API, delay_seconds=0.5)
    node = start_node()
    TaskQueue(node_redis).enqueue(task("slow", KEYWORD, 3, 3, ip_id=3))
    wait_until(lambda: len(market.requests(Surface.API)) >= 2, what="the crawl to be under way")
    assert node_redis.llen(keys.TASKS_PROCESSING) == 1
    assert node.stop() == 0
    answered = results(node_redis)
    assert answered["slow"].pages_crawled == 6 and answered["slow"].error_message == ""
    assert node_redis.llen(keys.TASKS_PROCESSING) == 0 and node_redis.llen(keys.TASKS) == 0


def test_sigterm_when_the_crawl_cannot_finish_in_the_grace_period_returns_the_task(node_redis, market, start_node):
    market.fail(FaultKind.SLOW, surface=Surface.API, delay_seconds=5)
    node = start_node("--shutdown-grace", "2s")
    TaskQueue(node_redis).enqueue(task("stuck", KEYWORD, 5, 5, ip_id=4))
    wait_until(lambda: len(market.requests(Surface.API)) >= 1, what="the crawl to be under way")
    stopped = time.monotonic()
    assert node.stop() == 0
    assert time.monotonic() - stopped < 10
    assert node_redis.llen(keys.RESULTS) == 0
    assert node_redis.llen(keys.TASKS_PROCESSING) == 0
    (returned,) = [decode_request(raw) for raw in node_redis.lrange(keys.TASKS, 0, -1)]
    assert returned.task_id == "stuck"
    assert node_redis.sismember(keys.TASKS_PENDING, "ip:4")  # still deduplicated while queued
