"""The benchmarks the suite runs: each one's module, arguments per size, summarizer, timeout, and
what it needs to run (Chromium, wrk)."""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable

from bench.suite.summaries import (
    Summary,
    summarize_accuracy,
    summarize_api,
    summarize_crawl,
    summarize_dagster_loop,
    summarize_ingest,
    summarize_queue,
)


@dataclasses.dataclass
class Bench:
    name: str
    title: str
    module: str  # run as ``python -m module`` from the repository's root
    args: Callable[[argparse.Namespace], list[str]]
    summarize: Callable[[dict, dict], Summary]
    timeout: float
    reference: str = "floor"  # or "truth"
    about: str = ""
    precheck: Callable[[], str | None] = lambda: None  # what is missing for it to run, if anything


def chromium_missing() -> str | None:
    try:
        from animehot_dagster.crawler.browser import CHROMIUM_PATH
    except Exception as exc:  # noqa: BLE001
        return f"the browser crawler cannot be imported: {exc}"
    if not os.access(CHROMIUM_PATH, os.X_OK):
        return f"Chromium is not installed at {CHROMIUM_PATH}, which browser mode launches"
    return None


def wrk_missing() -> str | None:
    import shutil

    if shutil.which("wrk") is None:
        return "wrk is not installed, which the API benchmark loads the server with (Debian package wrk: " \
               "scripts/install_system_packages.sh bench)"
    return None


def _sized(default: list[str], tiny: list[str]) -> Callable[[argparse.Namespace], list[str]]:
    return lambda args: list(tiny if args.size == "tiny" else default)


def benchmarks(args: argparse.Namespace) -> list[Bench]:
    mysql = ["--server-url", args.server_url]
    redis_ = ["--redis-url", args.redis_url]
    crawl_tiny = ["--pages-on-sale", "1", "--pages-sold", "1"]
    return [
        Bench("ingest", "Ingest: 1,200-item crawl results into MariaDB", "bench.ingest",
              lambda a: [*_sized([], ["--results", "3", "--ips", "1"])(a), *mysql, "--json"], summarize_ingest, 900,
              about="Each result is applied through `storage.ingest.apply` (one transaction, commit included). "
                    "Floor: one transaction that SELECTs the same 1,200 item_snapshots keys and upserts the same "
                    "1,200 rows on a shadow IP, right after each result. Goal: p50 within 3× the floor."),
        Bench("queue", "Reliable queue: enqueue + take + ack round trips", "bench.reliable_queue",
              lambda a: [*_sized(["--tasks", "10000", "--consumers", "1,4"], ["--tasks", "300", "--consumers", "1"])(a),
                         *redis_, "--json"], summarize_queue, 600,
              about="One producer enqueues, N consumer processes take and ack until drained. Floor: plain "
                    "LPUSH / RPOP of the same payloads on the same Redis with the same client: what reliability "
                    "(dedup mark, processing list, ack) costs."),
        Bench("crawl-api", "Crawl, API mode: a 5+5 page crawl against the local simulator", "bench.crawl",
              lambda a: ["--modes", "api", *_sized([], crawl_tiny)(a), *redis_, "--json"], summarize_crawl, 300,
              about="A fresh node process (the crawler's own code, DPoP-signed API calls) after a one-page warm-up. "
                    "Floor: the pages divided by APP_RATE_LIMIT, the best the shared token bucket allows."),
        Bench("crawl-browser", "Crawl, browser mode: a 5+5 page crawl on Chromium", "bench.crawl",
              lambda a: ["--modes", "browser", *_sized([], crawl_tiny)(a), *redis_, "--json"], summarize_crawl, 300,
              about="As crawl-api, in Chromium through Playwright (the warm-up starts the browser). Floors: the "
                    "rate limit for the wall time; the API mode's figures of the same run for CPU and memory.",
              precheck=chromium_missing),
        Bench("api", "HTTP API under wrk: cached reads and /health against bare routes", "bench.api",
              lambda a: [*_sized([], ["--duration", "1", "--concurrency", "4", "--ips", "5", "--days", "1",
                                      "--uncached-requests", "3"])(a),
                         *mysql, *redis_, "--json"], summarize_api, 900,
              about="uvicorn serving the API in a child process (one process, as `animehot api`), loaded by "
                    "`wrk` (32 connections, 10 s per measurement). Floors: bare ASGI routes in the same server, "
                    "one that GETs the same Redis key with the same client (for the cached reads), one that "
                    "answers the same bytes as /health. Goal: cached p50 within 1.5× the floor.",
              precheck=wrk_missing),
        Bench("accuracy", "Accuracy on the short scenario, against the simulator's truth", args.accuracy_module,
              lambda a: ["--scenario", "bench/scenarios/short.yaml", *mysql, "--no-plots", "--json"],
              summarize_accuracy, 900,
              reference="truth",
              about="The real crawler, ingest and cadence rules (no Dagster, queue or rate limit) crawl the "
                    "simulated market on a simulated clock through `bench/scenarios/short.yaml`; the hourly inflow "
                    "and outflow ingest wrote are compared with the market's ground truth. The reference here is "
                    "the truth, not a timing floor."),
        Bench("dagster-loop", "Dagster in the loop: results → runs → materializations (short)", "bench.dagster_loop",
              lambda a: ["--sizes", "50", "--window", "60", "--settle", "60", "--rates", "12", "--step", "30",
                         "--drain", "30", "--graphql-repeats", "3", *mysql, *redis_, "--json"],
              summarize_dagster_loop, 900,
              about="A real code server, daemon and webserver on a MySQL-backed instance; synthetic 1,200-item "
                    "results pushed onto the results queue until their partitions are materialized. Short sizes "
                    "(50 IPs, 60 s of pushing at 12/min, one 30 s rate step) to fit the suite; `python -m bench.dagster_loop` alone runs the full "
                    "sizes (about 12 minutes). Floor: applying the same first crawl directly, measured by the "
                    "ingest benchmark of this run."),
    ]
