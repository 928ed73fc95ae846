"""API benchmark: cached leaderboard and liquidity against a floor, and the uncached leaderboard.

    .venv/bin/python bench/api.py [--requests N] [--concurrency C] [--ips K] [--days D] [--json]

Creates a fresh MySQL database on 127.0.0.1 (root, no password; --server-url) and uses Redis
database 7 of 127.0.0.1 (--redis-url; flushed), fills ip_stats_hourly with D days of hourly rows
for K IPs (computed figures written through ``storage.db.upsert`` with the columns
``storage.stats`` writes), serves the API with uvicorn in a child process, and drives it with an
async httpx client at a fixed concurrency from this process.

- cached: ``GET /api/v1/leaderboard?type=hot&hours=3&limit=20`` and
  ``GET /api/v1/ips/{id}/liquidity`` (ids round-robin) with a warm cache.
- floor: a bare ASGI route in the same uvicorn process (outside FastAPI, no middleware) that
  GETs the same Redis key with the same async client and answers its bytes as they are.
- uncached: the leaderboard with its key deleted before each request (the DEL is not timed),
  one request at a time: hours=23 (the largest hourly window) and hours=1.

Goal: cached p50 within 1.5× of the floor's.
"""

from __future__ import annotations

import os
import sys

# bench/queue.py would shadow the standard library's queue (which redis-py imports).
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse
import asyncio
import json
import multiprocessing
import random
import socket
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import redis
import sqlalchemy as sa

DEFAULT_SERVER_URL = "mysql+pymysql://root@127.0.0.1:3306"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/7"
NOW = datetime(2026, 12, 2, 3, 10, tzinfo=UTC)  # 12:10 JST


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

    async def app(scope, receive, send):
        path = scope.get("path", "")
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


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def load(base: str, paths: list[str], requests: int, concurrency: int) -> dict:
    latencies: list[float] = []
    counter = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits) as client:
        async def worker():
            for n in counter:
                started = time.perf_counter()
                response = await client.get(paths[n % len(paths)])
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise RuntimeError(f"{paths[n % len(paths)]}: {response.status_code} {response.text[:200]}")
        for path in paths[: max(1, min(len(paths), 200))]:  # warm every key
            await client.get(path)
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {"requests": requests, "p50_ms": round(percentile(latencies, 0.5) * 1000, 3),
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 3), "rps": round(requests / elapsed, 1)}


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
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server-url", default=DEFAULT_SERVER_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--ips", type=int, default=500)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--uncached-requests", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

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
        liquidity = [f"/api/v1/ips/{ip}/liquidity" for ip in ids]
        run = lambda paths: asyncio.run(load(base, paths, args.requests, args.concurrency))  # noqa: E731
        figures = {"concurrency": args.concurrency, "ips": len(ids), "hourly_rows": len(ids) * args.days * 24}
        log("cached leaderboard …")
        figures["leaderboard_cached"] = run([board])
        figures["leaderboard_floor"] = run(["/floor/animetop:leaderboard:hot:3"])
        log("cached liquidity …")
        figures["liquidity_cached"] = run(liquidity)
        figures["liquidity_floor"] = run([f"/floor/animetop:ip:{ip}:liquidity" for ip in ids])
        for name_, cached in (("leaderboard", "leaderboard_cached"), ("liquidity", "liquidity_cached")):
            figures[f"{name_}_ratio_p50"] = round(figures[cached]["p50_ms"] / figures[f"{name_}_floor"]["p50_ms"], 2)
            figures[f"{name_}_ratio_rps"] = round(figures[f"{name_}_floor"]["rps"] / figures[cached]["rps"], 2)
        log("uncached leaderboard …")
        for hours in (23, 1):
            figures[f"leaderboard_uncached_{hours}h"] = asyncio.run(uncached(
                base, f"/api/v1/leaderboard?type=hot&hours={hours}&limit=100",
                f"animetop:leaderboard:hot:{hours}", client, args.uncached_requests))
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
