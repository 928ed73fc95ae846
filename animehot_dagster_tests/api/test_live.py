"""Over a real socket: uvicorn serving the API, Prometheus scraping the metrics port, and the
``animehot api`` command's start-up checks and log events."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import httpx

from animehot_dagster.api.app import create_app
from animehot_dagster.observability.metrics import MetricsServer, api_registry, sidecar_registry
from animehot_dagster.queue import keys
from animehot_dagster_tests.api.conftest import NOW, LiveServer, free_port


def sample(text: str, metric: str, **labels) -> float | None:
    """The value of one series in Prometheus text, None when absent."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(metric):
            continue
        series, value = line.rsplit(" ", 1)
        found = dict(re.findall(r'(\w+)="([^"]*)"', series))
        base = series.split("{", 1)[0]
        if base == metric and found == {k: str(v) for k, v in labels.items()}:
            return float(value)
    return None


def test_api_over_a_socket_and_metrics_on_their_port(settings, mysql_engine, queue_redis, market):
    registry, http_metrics = api_registry(mysql_engine, queue_redis)
    app = create_app(settings, mysql_engine, queue_redis, clock=lambda: NOW, metrics=http_metrics)
    metrics = MetricsServer(registry, free_port(), "127.0.0.1")
    try:
        with LiveServer(app) as server, httpx.Client(base_url=server.url) as client:
            before = httpx.get(f"http://127.0.0.1:{metrics.port}/metrics").text
            assert sample(before, "crawler_queue_depth", name="tasks") == 0
            assert sample(before, "animetop_tasks_processed_total", status="success") == 6
            assert sample(before, "animetop_tasks_processed_total", status="failed") == 0
            assert sample(before, "animetop_task_processing_duration_seconds_count") == 6

            assert client.get("/health").json()["status"] == "ok"
            for _ in range(3):
                assert client.get(f"/api/v1/ips/{market['busy']}/liquidity").status_code == 200
            assert client.get("/api/v1/ips/9999").status_code == 404
            assert client.get("/api/v1/leaderboard", params={"hours": 3}).json()["data"]["items"]
            assert client.post(f"/api/v1/ips/{market['calm']}/trigger").status_code == 200
            queue_redis.incr(keys.FAILED_RUNS)
            queue_redis.rpush(keys.RESULTS_DEADLETTER, b"{}")
            assert client.get("/api/v1/nowhere").status_code == 404  # unknown API paths (others load the dashboard)

            after = httpx.get(f"http://127.0.0.1:{metrics.port}/metrics").text
    finally:
        metrics.close()
    route = "/api/v1/ips/{ip_id}/liquidity"
    assert sample(after, "animetop_http_requests_total", method="GET", route=route, status="200") == 3
    assert sample(after, "animetop_http_requests_total", method="GET", route="/api/v1/ips/{ip_id}", status="404") == 1
    assert sample(after, "animetop_http_requests_total", method="POST", route="/api/v1/ips/{ip_id}/trigger",
                  status="200") == 1
    # the dashboard's catch-all matches every other path; an unknown API path is its 404
    assert sample(after, "animetop_http_requests_total", method="GET", route="/{path:path}", status="404") == 1
    assert sample(after, "animetop_http_request_duration_seconds_count", route=route) == 3
    assert sample(after, "animetop_db_query_duration_seconds_count") > sample(before, "animetop_db_query_duration_seconds_count")
    assert sample(after, "animetop_db_connections_active") == 0
    assert sample(after, "animetop_db_connections_idle") >= 1
    assert sample(after, "crawler_queue_depth", name="tasks") == 1
    assert sample(after, "crawler_queue_depth", name="results") == 0
    assert sample(after, "animetop_scheduler_tasks_pending_in_queue") == 1
    assert sample(after, "animetop_task_dlq_total") == 1
    assert sample(after, "animetop_tasks_processed_total", status="failed") == 1
    assert "_created" not in after


def test_sidecar_metrics_survive_a_redis_outage(mysql_engine, market):
    import redis
    from prometheus_client import generate_latest
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    dead = redis.Redis(port=free_port(), socket_connect_timeout=0.3, retry=Retry(NoBackoff(), 0))
    text = generate_latest(sidecar_registry(mysql_engine, dead)).decode()
    assert sample(text, "crawler_queue_depth", name="tasks") is None
    assert sample(text, "animetop_tasks_processed_total", status="success") == 6


def _cli(env: dict, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "animehot_dagster.cli", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=timeout)


def test_prod_without_admin_key_refuses_to_start(mysql_url):
    result = _cli({"APP_ENV": "prod", "ADMIN_API_KEY": "", "DATABASE_URL": mysql_url}, "api", "--port", "0")
    assert result.returncode != 0 and "ADMIN_API_KEY" in result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert any(e["msg"] == "failed to load config" and e["level"] == "ERROR" for e in events)


def test_api_command_logs_its_events_and_stops_on_sigterm(mysql_url):
    from animehot_dagster_tests.conftest import REDIS_URL

    port, metrics_port = free_port(), free_port()
    env = {**os.environ, "DATABASE_URL": mysql_url, "REDIS_URL": REDIS_URL, "ADMIN_API_KEY": "k"}
    process = subprocess.Popen([sys.executable, "-m", "animehot_dagster.cli", "api", "--host", "127.0.0.1",
                                "--port", str(port), "--metrics-port", str(metrics_port)],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and process.poll() is None, process.stderr.read()
            time.sleep(0.1)
        assert "animetop_http_requests_total" in httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=40)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    # uvicorn re-raises the signal it caught once shutdown is complete: "killed by SIGTERM".
    assert process.returncode in (0, -signal.SIGTERM)
    messages = [json.loads(line)["msg"] for line in out.splitlines() if line.startswith("{")]
    for event in ("starting IP liquidity analyzer service", "MySQL connected", "shutdown signal received"):
        assert event in messages, messages
