"""API benchmark: the server's throughput and latency under `wrk`, each route against a bare route
in the same server, and the uncached leaderboard.

    .venv/bin/python -m bench.api [--duration S] [--concurrency C] [--threads T] [--ips K] [--days D] [--json]

Creates a fresh MySQL database on 127.0.0.1 (root, no password; --server-url) and uses Redis
database 7 of 127.0.0.1 (--redis-url; flushed), fills ip_stats_hourly with D days of hourly rows
for K IPs (computed figures written through ``storage.db.upsert`` with the columns
``storage.stats`` writes), serves the API with uvicorn (one process, as ``animehot api``) in a
child process, and loads it with ``wrk`` (Debian package wrk): C connections on T threads for S
seconds per measurement. wrk is a C event loop that sends tens of thousands of requests a second
on one core, so what is measured is the server; the project's Python load generator topped out
near 200 req/s (issue 17). The CPU the server and wrk used in each measurement is reported with
it: the server near one core, wrk far below, is a measurement of the server.

- cached: ``GET /api/v1/leaderboard?type=hot&hours=3&limit=20`` and
  ``GET /api/v1/ips/{id}/liquidity`` (ids round-robin) with a warm cache. Floor: a bare ASGI
  route in the same uvicorn process (outside FastAPI, no middleware) that GETs the same Redis
  key with the same async client and answers its bytes as they are.
- health: ``GET /health``. Floor: a bare ASGI route answering the same bytes, no Redis.
- uncached: the leaderboard with its key deleted before each request (the DEL is not timed),
  one request at a time (a latency, not a load): hours=23 (the largest hourly window) and hours=1.

Goal: cached p50 within 1.5x of the floor's. Every figure and its floor come from the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import redis
import sqlalchemy as sa

from animehot_dagster.queue import keys

DEFAULT_SERVER_URL = "mysql+pymysql://root@127.0.0.1:3306"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/7"
NOW = datetime(2026, 12, 2, 3, 10, tzinfo=UTC)  # 12:10 JST
BARE_BODY = b'{"status":"ok","time":"2026-12-02T12:10:00+09:00"}'  # what /health answers at NOW

# wrk's Lua: optional paths round-robin (``-- TEMPLATE ID…``: ``{}`` in TEMPLATE replaced by each
# id), and at the end one JSON line of the figures (latencies in microseconds).
WRK_SCRIPT = r"""
local paths = {}
local counter = 0

init = function(args)
  if #args > 1 then
    for i = 2, #args do paths[#paths + 1] = (string.gsub(args[1], "{}", args[i])) end
  end
end

request = function()
  if #paths == 0 then return wrk.request() end
  counter = counter + 1
  return wrk.format(nil, paths[(counter % #paths) + 1])
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_JSON {\"requests\":%d,\"duration_us\":%d,\"bytes\":%d,\"p50_us\":%.1f,\"p90_us\":%.1f,"
    .. "\"p99_us\":%.1f,\"max_us\":%.1f,\"mean_us\":%.1f,\"connect_errors\":%d,\"read_errors\":%d,"
    .. "\"write_errors\":%d,\"status_errors\":%d,\"timeouts\":%d}\n",
    summary.requests, summary.duration, summary.bytes, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fill(database_url: str, ips: int, days: int, seed: int) -> list[int]:
    """``ips`` IPs and ``days`` × 24 hourly rows each, from random crawl figures."""
    from animehot_dagster.domain.scores import liquidity_index, price_stats
    from animehot_dagster.domain.timebuckets import hour_bucket
    from animehot_dagster.storage.db import create_engine, upsert
    from animehot_dagster.storage.ip_catalog import import_ips
    from animehot_dagster.storage.migrate import migrate
    from animehot_dagster.storage.schema import ip_stats_hourly
    from animehot_dagster.storage.stats import price_columns

    engine = create_engine(database_url)
    migrate(engine)
    report = import_ips(engine, [{"name": f"bench-ip-{i:04d}"} for i in range(ips)], upsert=False, now=NOW)
    ids = [row["id"] for row in report.created]
    rng = random.Random(seed)
    last = hour_bucket(NOW)
    hours = [last - timedelta(hours=h) for h in range(days * 24)]
    empty_prices = price_columns(price_stats(()))
    update = ["inflow", "outflow", "liquidity_index", "active_count", *empty_prices, "price_stddev", "crawl_count"]
    rows = []
    with engine.begin() as connection:
        for ip_id in ids:
            for hour in hours:
                inflow, outflow = rng.randint(0, 300), rng.randint(0, 60)
                rows.append({"ip_id": ip_id, "hour_bucket": hour, "inflow": inflow, "outflow": outflow,
                             "liquidity_index": liquidity_index(inflow, outflow), "active_count": rng.randint(0, 600),
                             **empty_prices, "price_stddev": None, "crawl_count": 1,
                             "created_at": NOW, "updated_at": NOW})
                if len(rows) >= 5000:
                    upsert(connection, ip_stats_hourly, rows, update, ("ip_id", "hour_bucket"))
                    rows = []
        upsert(connection, ip_stats_hourly, rows, update, ("ip_id", "hour_bucket"))
    engine.dispose()
    return ids


def serve(database_url: str, redis_url: str, port: int, ready) -> None:
    """The child process: the API plus the floor route, in one uvicorn server."""
    import logging

    import uvicorn

    from animehot_dagster.api.app import create_app
    from animehot_dagster.api.cache import ReadCache, async_client_like
    from animehot_dagster.observability.metrics import api_registry
    from animehot_dagster.settings import load_settings
    from animehot_dagster.storage.db import create_engine

    logging.disable(logging.WARNING)
    engine = create_engine(database_url)
    client = redis.Redis.from_url(redis_url)
    _, http_metrics = api_registry(engine, client)
    api = create_app(load_settings({}), engine, client, clock=lambda: NOW, metrics=http_metrics)
    floor_cache: dict[str, ReadCache] = {}
    headers = [(b"content-type", b"application/json")]

    bare_headers = headers + [(b"content-length", str(len(BARE_BODY)).encode())]

    async def app(scope, receive, send):
        path = scope.get("path", "")
        if scope["type"] == "http" and path == "/bare":
            await send({"type": "http.response.start", "status": 200, "headers": bare_headers})
            await send({"type": "http.response.body", "body": BARE_BODY})
            return
        if scope["type"] == "http" and path.startswith("/floor/"):
            if "cache" not in floor_cache:
                floor_cache["cache"] = ReadCache(async_client_like(client))
            body = await floor_cache["cache"].get(path[len("/floor/"):]) or b"{}"
            await send({"type": "http.response.start", "status": 200,
                        "headers": headers + [(b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await api(scope, receive, send)

    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    ready.set()
    server.run()


def wrk_version() -> str:
    """``wrk 4.1.0`` (or the error why it cannot run)."""
    path = shutil.which("wrk")
    if path is None:
        raise RuntimeError("wrk is not installed (Debian package wrk: scripts/install_system_packages.sh bench)")
    text = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout
    found = re.search(r"wrk\s+(?:debian/)?([0-9][\w.+~-]*)", text)
    return f"wrk {found.group(1) if found else 'unknown'}"


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` so far (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def warm(base: str, paths: list[str]) -> None:
    with httpx.Client(base_url=base, timeout=30) as client:
        for path in paths:
            response = client.get(path)
            if response.status_code != 200:
                raise RuntimeError(f"{path}: {response.status_code} {response.text[:200]}")


def wrk(base: str, path: str, args: argparse.Namespace, server_pid: int, script: str,
        ids: list[int] | None = None) -> dict:
    """One wrk measurement of ``path`` (with ``{}``: each of ``ids`` in turn): req/s, latency
    percentiles from wrk, and the CPU the server and wrk used over it."""
    warm(base, [path.replace("{}", str(i)) for i in ids] if ids else [path])  # every key cached
    command = ["wrk", f"-t{args.threads}", f"-c{args.concurrency}", f"-d{args.duration}s", "--timeout", "10s",
               "-s", script, base + (path.replace("{}", str(ids[0])) if ids else path)]
    if ids:
        command += ["--", path, *map(str, ids)]
    server_before = cpu_seconds(server_pid)
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=args.duration + 60)
    wall = time.perf_counter() - started
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_cpu = cpu_seconds(server_pid) - server_before
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("WRK_JSON ")), None)
    if done.returncode or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {(done.stderr or done.stdout)[-500:]}")
    out = json.loads(line[len("WRK_JSON "):])
    errors = {k: out[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")}
    if out["requests"] == 0 or any(errors.values()):
        raise RuntimeError(f"{path}: {out['requests']} requests, errors {errors}")
    seconds = out["duration_us"] / 1e6
    wrk_cpu = (children_after.ru_utime + children_after.ru_stime) - (children_before.ru_utime + children_before.ru_stime)
    return {"requests": out["requests"], "seconds": round(seconds, 2), "rps": round(out["requests"] / seconds, 1),
            "p50_ms": round(out["p50_us"] / 1000, 3), "p90_ms": round(out["p90_us"] / 1000, 3),
            "p99_ms": round(out["p99_us"] / 1000, 3), "max_ms": round(out["max_us"] / 1000, 3),
            "mean_ms": round(out["mean_us"] / 1000, 3),
            "server_cpu_cores": round(server_cpu / wall, 2), "wrk_cpu_cores": round(wrk_cpu / wall, 2)}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def uncached(base: str, path: str, key: str, client: redis.Redis, requests: int) -> dict:
    latencies = []
    async with httpx.AsyncClient(base_url=base) as http:
        for _ in range(requests):
            client.delete(key)
            started = time.perf_counter()
            response = await http.get(path)
            latencies.append(time.perf_counter() - started)
            assert response.status_code == 200 and response.json()["data"]["from_cache"] is False
    return {"requests": requests, "p50_ms": round(percentile(latencies, 0.5) * 1000, 2),
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
            "mean_ms": round(statistics.fmean(latencies) * 1000, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__.split("\n\n")[0])
    parser.add_argument("--server-url", default=DEFAULT_SERVER_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--duration", type=int, default=10, help="seconds of wrk per measurement")
    parser.add_argument("--concurrency", type=int, default=32, help="wrk connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (one leaves the other core to the server)")
    parser.add_argument("--ips", type=int, default=500)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--uncached-requests", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    generator = wrk_version()  # before anything is created: no wrk, no benchmark
    name = f"animehot_bench_api_{uuid.uuid4().hex[:8]}"
    server = sa.create_engine(args.server_url)
    with server.begin() as connection:
        connection.execute(sa.text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
    database_url = f"{args.server_url}/{name}?charset=utf8mb4"
    client = redis.Redis.from_url(args.redis_url)
    client.flushdb()
    process = None
    try:
        started = time.perf_counter()
        ids = fill(database_url, args.ips, args.days, args.seed)
        log(f"filled {len(ids)} IPs × {args.days * 24} hours in {time.perf_counter() - started:.1f}s")
        port = free_port()
        ready = multiprocessing.get_context("fork").Event()
        process = multiprocessing.get_context("fork").Process(
            target=serve, args=(database_url, args.redis_url, port, ready), daemon=True)
        process.start()
        ready.wait(30)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
        board = "/api/v1/leaderboard?type=hot&hours=3&limit=20"
        figures = {"concurrency": args.concurrency, "threads": args.threads, "duration_seconds": args.duration,
                   "generator": generator, "ips": len(ids), "hourly_rows": len(ids) * args.days * 24}
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script_file:
            script_file.write(WRK_SCRIPT)
        try:
            def measure(key: str, path: str, ids_: list[int] | None = None) -> None:
                log(f"{key}: wrk {path} …")
                figures[key] = wrk(base, path, args, process.pid, script_file.name, ids_)
                log(f"{key}: {figures[key]['rps']} req/s, p50 {figures[key]['p50_ms']} ms, "
                    f"p99 {figures[key]['p99_ms']} ms")

            measure("leaderboard_cached", board)
            measure("leaderboard_floor", f"/floor/{keys.leaderboard_key('hot', 3)}")
            measure("liquidity_cached", "/api/v1/ips/{}/liquidity", ids)
            measure("liquidity_floor", f"/floor/{keys.liquidity_key('{}')}", ids)  # {}: wrk's id placeholder
            measure("health", "/health")
            measure("health_floor", "/bare")
        finally:
            os.unlink(script_file.name)
        for name_ in ("leaderboard", "liquidity", "health"):
            cached, floor = figures[name_ if name_ == "health" else f"{name_}_cached"], figures[f"{name_}_floor"]
            figures[f"{name_}_ratio_p50"] = round(cached["p50_ms"] / floor["p50_ms"], 2)
            figures[f"{name_}_ratio_p99"] = round(cached["p99_ms"] / floor["p99_ms"], 2)
            figures[f"{name_}_ratio_rps"] = round(cached["rps"] / floor["rps"], 2)
        log("uncached leaderboard …")
        for hours in (23, 1):
            figures[f"leaderboard_uncached_{hours}h"] = asyncio.run(uncached(
                base, f"/api/v1/leaderboard?type=hot&hours={hours}&limit=100",
                keys.leaderboard_key("hot", hours), client, args.uncached_requests))
    finally:
        if process is not None:
            process.terminate()
            process.join(10)
        client.flushdb()
        with server.begin() as connection:
            connection.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:28} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
