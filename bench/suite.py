"""The benchmark suite: every benchmark of bench/ in one run, written to bench/results.json and
docs/benchmarks.md.

    .venv/bin/python -m bench.suite [--size default|tiny] [--only NAMES] [--skip NAMES]
        [--server-url URL] [--redis-url URL] [--results PATH] [--markdown PATH]
    .venv/bin/python -m bench.suite --render bench/results.json   # rewrite the doc from the data
    .venv/bin/python -m bench.suite --only api --keep-others      # run one, keep the others' last figures

``make bench`` runs it with the defaults. Each benchmark runs as its own process with ``--json``
(its progress goes to this process's stderr, prefixed with its name); the suite turns the JSON it
prints into figures, each with the floor (or, for accuracy, the truth) it is compared with,
measured in the same run, and the ratio figure / floor. results.json holds every entry (its
command, wall time, load average before and after, figures, and the benchmark's whole output)
and the machine; the markdown is written from results.json alone, so the two cannot disagree.

A benchmark that fails (its module is missing, it exits non-zero, it prints no JSON, it times
out) is recorded as failed with the reason and the end of its stderr; the others still run and
the files are still written; the suite then exits 1. A benchmark left out with --only/--skip is
recorded as skipped; with --keep-others it keeps instead the entry the results file already holds
for it, marked with the time of the run that measured it. The suite may create and drop scratch
databases on --server-url and flush the --redis-url database (default db 12).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import importlib.util
import json
import math
import os
import platform
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from animehot_dagster.stack.processes import terminate

REPO = Path(__file__).resolve().parents[1]
DEFAULT_RESULTS = REPO / "bench" / "results.json"
DEFAULT_MARKDOWN = REPO / "docs" / "benchmarks.md"
DEFAULT_SERVER_URL = "mysql+pymysql://root@127.0.0.1:3306"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/12"
STDERR_TAIL = 25
SIZES = ("default", "tiny")


# -- figures ----------------------------------------------------------------------------------


def ratio(figure: float | None, floor: float | None) -> float | None:
    if figure is None or floor is None or floor == 0:
        return None
    return figure / floor


def row(name: str, figure, unit: str, floor=None, floor_name: str = "", better: str = "lower",
        goal: float | None = None, note: str = "") -> dict:
    """One figure against its floor. ``ratio`` is always figure / floor; ``better`` says which
    way is good (for a rate, a ratio under 1 means slower than the floor). ``goal`` is the
    largest (better=lower) or smallest (better=higher) acceptable ratio."""
    value = {"name": name, "figure": figure, "unit": unit, "floor": floor, "floor_name": floor_name,
             "ratio": ratio(figure, floor), "better": better}
    if goal is not None:
        value["goal_ratio"] = goal
        r = value["ratio"]
        value["within_goal"] = None if r is None else (r <= goal if better == "lower" else r >= goal)
    if note:
        value["note"] = note
    return value


def context(name: str, figure, unit: str = "", note: str = "") -> dict:
    """A figure reported beside the others, with no floor of its own."""
    value = {"name": name, "figure": figure, "unit": unit}
    if note:
        value["note"] = note
    return value


@dataclasses.dataclass
class Summary:
    figures: list[dict]
    context: list[dict] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)


def _ok(entries: dict, name: str) -> dict | None:
    entry = entries.get(name)
    return entry["output"] if entry and entry["status"] == "ok" else None


def summarize_ingest(out: dict, entries: dict) -> Summary:
    i, f, w = out["ingest"], out["floor"], out["workload"]
    floor_name = "floor: SELECT 1,200 keys + one 1,200-row upsert"
    return Summary(
        figures=[
            row("ingest.apply per result, p50", i["p50_ms"], "ms", f["p50_ms"], f"{floor_name}, p50",
                goal=out.get("goal_ratio", 3.0)),
            row("ingest.apply per result, p95", i["p95_ms"], "ms", f["p95_ms"], f"{floor_name}, p95"),
            row("items applied per second", i["items_per_s"], "items/s", f["items_per_s"], floor_name, better="higher"),
        ],
        context=[
            context("first (baseline) crawl of an IP, mean", w["baseline_ms_mean"], "ms"),
            context("workload", f"{w['results']} results × {w['items_per_result']} items over {w['ips']} IPs, "
                                f"mean inflow {w['mean_inflow']:.0f} / outflow {w['mean_outflow']:.0f} per result"),
            context("database", f"{out['machine']['database']} {out['machine']['server_version']}"),
        ],
    )


def summarize_queue(out: dict, entries: dict) -> Summary:
    figures = [
        row(f"enqueue + take + ack, {r['consumers']} consumer{'s' if r['consumers'] != 1 else ''}",
            r["reliable_per_second"], "round trips/s", r["floor_per_second"], "floor: plain LPUSH / RPOP",
            better="higher")
        for r in out["runs"]
    ]
    return Summary(figures, [context("tasks per measurement", out["tasks"])])


def summarize_crawl(out: dict, entries: dict) -> Summary:
    (r,) = out["results"]
    figures = [row(f"{r['pages']}-page crawl, wall", r["wall_seconds"], "s", r["floor_seconds"],
                   f"floor: pages / APP_RATE_LIMIT ({out['rate']:g}/s)")]
    ctx = [context("items crawled", r["items"]), context("items per second", r["items_per_second"], "items/s")]
    api = _ok(entries, "crawl-api")
    if r["mode"] == "browser":
        api_result = api["results"][0] if api else None
        floor_name = "api mode, same run" if api_result else "api mode (did not run)"
        figures.append(row("CPU per page (node's process tree)", r["cpu_seconds_per_page"], "CPU s",
                           api_result and api_result["cpu_seconds_per_page"], floor_name))
        figures.append(row("peak PSS of the node's process tree", r["peak_pss_mb"], "MB",
                           api_result and api_result["peak_pss_mb"], floor_name))
        ctx.append(context("peak RSS (summed over the tree)", r["peak_rss_mb"], "MB"))
    else:
        ctx += [context("CPU per page (node's process tree)", r["cpu_seconds_per_page"], "CPU s"),
                context("peak PSS of the node's process tree", r["peak_pss_mb"], "MB"),
                context("peak RSS (summed over the tree)", r["peak_rss_mb"], "MB")]
    return Summary(figures, ctx)


def summarize_api(out: dict, entries: dict) -> Summary:
    """Req/s and latency from wrk; each route against the bare route of the same server, same run."""
    redis_floor = "floor: bare ASGI route, same Redis GET"
    bare_floor = "floor: bare ASGI route, same bytes"
    figures = []
    for what, label, floor in (("leaderboard", "leaderboard (hot, 3 h), cached", redis_floor),
                               ("liquidity", "IP liquidity, cached", redis_floor),
                               ("health", "/health", bare_floor)):
        cached = out[what if what == "health" else f"{what}_cached"]
        base = out[f"{what}_floor"]
        figures += [
            row(f"{label}, throughput", cached["rps"], "req/s", base["rps"], floor, better="higher"),
            row(f"{label}, p50", cached["p50_ms"], "ms", base["p50_ms"], f"{floor}, p50",
                goal=1.5 if what != "health" else None),
            row(f"{label}, p99", cached["p99_ms"], "ms", base["p99_ms"], f"{floor}, p99"),
        ]
    for hours in (23, 1):
        key = f"leaderboard_uncached_{hours}h"
        if key in out:
            figures.append(row(f"leaderboard ({hours} h, limit 100), cache miss, p50 (one at a time)",
                               out[key]["p50_ms"], "ms", out["leaderboard_floor"]["p50_ms"],
                               f"{redis_floor}, p50 under load"))
    generator = out.get("generator", "wrk")
    ctx = [
        context("load", f"{generator}: {out['concurrency']} connections on {out.get('threads', 1)} thread(s), "
                        f"{out.get('duration_seconds')} s per measurement; {out['ips']} IPs, "
                        f"{out['hourly_rows']:,} hourly rows; one uvicorn process"),
    ]
    for key, label in (("leaderboard_cached", "cached leaderboard"), ("health", "/health"),
                       ("health_floor", "bare route")):
        if key in out and "server_cpu_cores" in out[key]:
            ctx.append(context(f"CPU during {label}: server / wrk",
                               f"{out[key]['server_cpu_cores']} / {out[key]['wrk_cpu_cores']}", "cores"))
    notes = [("Load from wrk, a C event loop (one thread): it sends far more than the API answers, so the "
             "figures are the server's (one uvicorn process); the CPU lines above show the server's share of a "
             "core and wrk's during a measurement. The bare routes are the ceiling of uvicorn's HTTP layer on "
             "this machine; the ratio is what FastAPI, the middleware and the route add. The project's earlier "
             "Python load generator topped out near 200 req/s (issue 17).")]
    return Summary(figures, ctx, notes)


_ACCURACY_FIGURES = {  # overall key → (label, unit, truth's value)
    "{flow}_24h_rel_error": ("{flow}: relative error of the 24 h total, all IPs", "fraction", 0.0),
    "{flow}_24h_abs_rel_error_median": ("{flow}: |relative error| of the 24 h total, median over IPs", "fraction", 0.0),
    "{flow}_hourly_mae": ("{flow}: hourly mean absolute error, mean over IPs", "items/h", 0.0),
    "{flow}_hourly_nmae_median": ("{flow}: hourly MAE / mean hourly truth, median over IPs", "", 0.0),
    "{flow}_hourly_correlation_median": ("{flow}: hourly correlation with the truth, median over IPs", "", 1.0),
    "{flow}_first_day_rel_error": ("{flow}: relative error on day 1 (holds the baseline crawl)", "fraction", 0.0),
}
_ACCURACY_CONTEXT = {
    "saturation_rate": ("crawls whose page window was full of items new since the last crawl (a lower bound)", "fraction"),
    "saturation_rate_on_sale": ("… of them on the on-sale pages", "fraction"),
    "saturation_rate_sold": ("… of them on the sold pages", "fraction"),
    "crawls": ("crawls", ""),
    "pages": ("pages crawled", ""),
    "ips": ("IPs", ""),
    "wall_seconds": ("harness wall time", "s"),
}


def summarize_accuracy(out: dict, entries: dict) -> Summary:
    """Accuracy has no timing floor: its reference is the simulator's ground truth, in the same
    run. Totals are compared with the true totals (ratio measured / truth); an error's truth is
    0 (no ratio) and a correlation's is 1."""
    overall, ips = out["overall"], out.get("ips") or []
    days = str(out.get("steady_days", ""))
    first, _, last = days.partition("-")
    days = f"day {first}" if not last or first == last else f"days {days}"
    figures, ctx, seen = [], [], set()
    for flow in ("inflow", "outflow"):
        if ips and all(isinstance(ip.get(flow), dict) and "truth_total" in ip[flow] for ip in ips):
            figures.append(row(f"{flow}: total over {days}, all IPs", sum(ip[flow]["measured_total"] for ip in ips),
                               "items", sum(ip[flow]["truth_total"] for ip in ips), "truth", better="exact"))
        for pattern, (label, unit, truth) in _ACCURACY_FIGURES.items():
            key = pattern.format(flow=flow)
            if key in overall:
                seen.add(key)
                figures.append(row(label.format(flow=flow), overall[key], unit, truth,
                                   "truth: exact" if truth == 0 else "truth: perfect", better="exact"))
    for key, value in overall.items():
        if key in seen:
            continue
        label, unit = _ACCURACY_CONTEXT.get(key, (key, ""))
        if not isinstance(value, int | float | str | None):
            value = json.dumps(value, ensure_ascii=False)
        ctx.append(context(label, value, unit))
    if not figures:
        raise ValueError(f"no known figure in the accuracy output's 'overall': {sorted(overall)}")
    notes = [(f"Scenario `{out.get('scenario')}` in {out.get('mode')} mode over {out.get('days')} day(s); the "
             f"figures are over {days} (day 1 holds the baseline crawl). The reference is the simulator's "
             "ground truth, not a timing floor: a total is compared with the true total (measured / truth, 1× "
             "is exact), an error with 0 and a correlation with 1.")]
    return Summary(figures, ctx, notes)


def summarize_dagster_loop(out: dict, entries: dict) -> Summary:
    ingest = _ok(entries, "ingest")
    baseline_s = ingest["workload"]["baseline_ms_mean"] / 1000 if ingest else None
    floor_name = ("ingest.apply of a 1,200-item first crawl, direct (ingest bench, same run)" if ingest
                  else "ingest.apply direct (unavailable: the ingest benchmark did not run)")
    latency = out["latency_seconds_all_sizes"]
    throughput = out["throughput"]
    figures = [
        row("pushed → materialized latency, p50", latency["p50"], "s", baseline_s, floor_name),
        row("pushed → materialized latency, p95", latency["p95"], "s", baseline_s, floor_name),
    ]
    ctx = []
    for size in out.get("sizes", []):
        for sensor, ticks in size.get("sensor_ticks", {}).items():
            ctx.append(context(f"{size['ips']} IPs: {sensor} tick, p50", ticks["duration_seconds"]["p50"], "s",
                               f"{ticks['failed']} failed" if ticks.get("failed") else ""))
        graphql = size.get("graphql_asset_page") or {}
        rest = graphql.get("rest") or {}
        ctx.append(context(f"{size['ips']} IPs: asset page GraphQL query, first / then p50",
                           f"{graphql.get('first_seconds')} / {rest.get('p50')}", "s"))
        ctx.append(context(f"{size['ips']} IPs: ip partitions registered after", size.get("registration_seconds"), "s"))
    step_seconds = float((out.get("settings") or {}).get("step") or 0)
    for step in throughput["steps"]:
        ctx.append(context(f"step {step['rate_per_minute']:g}/min: materialized per minute",
                           step["throughput_per_minute"], "results/min",
                           f"{step['pushed']} pushed in {step_seconds:g} s, backlog {step['backlog_start']}→{step['backlog_end']}"))
    drain = out.get("drain") or {}
    if drain:
        ctx.append(context("drain at the end", f"{drain.get('drained')} of {drain.get('backlog')} in {drain.get('seconds')} s",
                           note=f"{drain['per_minute']}/min" if drain.get("per_minute") else ""))
    results = out.get("all_results", {})
    ctx.append(context("results materialized / pushed", f"{results.get('materialized')} / {results.get('pushed')}"))
    notes = [("The latency is mostly waiting: for a tick of crawl_results_sensor (every 10 s at least), for the "
             "run to be launched and its process to start. The throughput figures of this short run are "
             "indicative only (one short step); `python -m bench.dagster_loop` alone measures throughput at 1,000 IPs.")]
    if out.get("failed_sensor_ticks"):
        notes.append(f"FAILED sensor ticks: {out['failed_sensor_ticks']} (first error: {out.get('first_sensor_error')})")
    return Summary(figures, ctx, notes)


# -- the benchmarks --------------------------------------------------------------------------


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


# -- running ----------------------------------------------------------------------------------


class Progress:
    def __init__(self) -> None:
        self.started = time.monotonic()

    def __call__(self, message: str) -> None:
        elapsed = int(time.monotonic() - self.started)
        print(f"[suite +{elapsed // 60:02d}:{elapsed % 60:02d}] {message}", file=sys.stderr, flush=True)


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def display_command(argv: list[str]) -> str:
    words = list(argv)
    with contextlib.suppress(ValueError):
        words[0] = os.path.relpath(words[0], REPO) if words[0].startswith(str(REPO)) else words[0]
    return shlex.join(words)


def parse_output(stdout: str) -> dict:
    text = stdout.strip()
    if not text:
        raise ValueError("it printed nothing on stdout")
    with contextlib.suppress(json.JSONDecodeError):
        value = json.loads(text)
        if isinstance(value, dict):
            return value
    for line in reversed(text.splitlines()):  # one JSON object on the last line, after other output
        with contextlib.suppress(json.JSONDecodeError):
            value = json.loads(line)
            if isinstance(value, dict):
                return value
    raise ValueError(f"its stdout is not one JSON object: {text[:200]!r}")


def run_process(argv: list[str], name: str, timeout: float, env: dict) -> tuple[int | None, str, list[str]]:
    """Runs ``argv`` in its own session; its stderr goes to ours line by line, prefixed. Returns
    (exit code or None on timeout, stdout, the last lines of stderr)."""
    process = subprocess.Popen(argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, errors="replace", start_new_session=True)
    tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL)
    chunks: list[str] = []

    def relay() -> None:
        for line in process.stderr:
            tail.append(line.rstrip("\n"))
            print(f"    {name} | {line.rstrip()}", file=sys.stderr, flush=True)

    def collect() -> None:
        chunks.append(process.stdout.read())

    threads = [threading.Thread(target=relay, daemon=True), threading.Thread(target=collect, daemon=True)]
    for thread in threads:
        thread.start()
    try:
        code = process.wait(timeout)
    except subprocess.TimeoutExpired:
        code = None
        # SIGINT first: the benchmarks clean up (databases, child processes) on KeyboardInterrupt.
        terminate(process, 60, first_signal=signal.SIGINT)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(60)
        raise
    for thread in threads:
        thread.join(10)
    return code, "".join(chunks), list(tail)


def module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def run_bench(bench: Bench, args: argparse.Namespace, entries: dict, progress: Progress) -> dict:
    argv = [sys.executable, "-m", bench.module, *bench.args(args)]
    entry = {"name": bench.name, "title": bench.title, "reference": bench.reference, "about": bench.about,
             "command": display_command(argv), "status": "failed", "error": None, "wall_seconds": None,
             "load_average": {"start": load_average(), "end": None}, "figures": [], "context": [], "notes": [],
             "output": None}
    missing = (f"{bench.module} does not exist: this benchmark is not built yet" if not module_exists(bench.module)
               else bench.precheck())
    if missing:
        entry["error"] = missing
        entry["load_average"]["end"] = load_average()
        progress(f"{bench.name}: FAILED: {entry['error']}")
        return entry
    progress(f"{bench.name}: running {entry['command']}")
    env = os.environ | {"REDIS_URL": args.redis_url, "PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    code, stdout, tail = run_process(argv, bench.name, bench.timeout, env)
    entry["wall_seconds"] = round(time.monotonic() - started, 2)
    entry["load_average"]["end"] = load_average()
    try:
        if code is None:
            raise RuntimeError(f"timed out after {bench.timeout:.0f} s (stopped)")
        if code:
            last = next((line.strip() for line in reversed(tail) if line.strip()), "")
            raise RuntimeError(f"exited with {code}" + (f": {last}" if last else ""))
        entry["output"] = parse_output(stdout)
        summary = bench.summarize(entry["output"], entries)
        entry.update(figures=summary.figures, context=summary.context, notes=summary.notes, status="ok")
    except Exception as exc:  # noqa: BLE001 - any failure is this entry's, the suite goes on
        entry["error"] = f"{type(exc).__name__}: {exc}" if not isinstance(exc, RuntimeError) else str(exc)
        entry["stderr_tail"] = tail
        progress(f"{bench.name}: FAILED after {entry['wall_seconds']:.1f} s: {entry['error']}")
        return entry
    progress(f"{bench.name}: ok in {entry['wall_seconds']:.1f} s")
    return entry


# -- the machine ------------------------------------------------------------------------------


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def machine(args: argparse.Namespace) -> dict:
    cpuinfo = _read("/proc/cpuinfo")
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
                 platform.processor() or platform.machine())
    mem_kb = next((int(line.split()[1]) for line in _read("/proc/meminfo").splitlines() if line.startswith("MemTotal")),
                  None)
    os_name = next((line.split("=", 1)[1].strip().strip('"') for line in _read("/etc/os-release").splitlines()
                    if line.startswith("PRETTY_NAME=")), platform.system())
    info = {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "ram_gib": round(mem_kb / 2**20, 1) if mem_kb else None,
        "kernel": platform.release(),
        "os": os_name,
        "python": platform.python_version(),
        "mariadb": None,
        "redis": None,
    }
    try:
        import sqlalchemy as sa

        engine = sa.create_engine(args.server_url)
        with engine.connect() as connection:
            info["mariadb"] = str(connection.execute(sa.text("SELECT VERSION()")).scalar_one())
        engine.dispose()
    except Exception as exc:  # noqa: BLE001
        info["mariadb"] = f"unreachable: {exc}"
    try:
        import redis

        client = redis.Redis.from_url(args.redis_url, socket_connect_timeout=5)
        info["redis"] = client.info("server")["redis_version"]
        client.close()
    except Exception as exc:  # noqa: BLE001
        info["redis"] = f"unreachable: {exc}"
    with contextlib.suppress(Exception):
        from importlib.metadata import version

        info["dagster"] = version("dagster")
    return info


# -- the document ------------------------------------------------------------------------------


INTRO = """\
# Benchmarks

Written by `bench/suite.py` from `bench/results.json` (do not edit by hand: run the suite, or
`.venv/bin/python -m bench.suite --render bench/results.json` to rewrite this page from the data).

Every figure is compared with a **floor** measured in the same run, on the same machine and
services: the cheapest way to do the same work (a bare upsert, plain LPUSH/RPOP, the rate limit,
a bare Redis-backed route, applying a crawl without Dagster). The **ratio** is always
figure / floor: for times (lower is better) a ratio of 2× means twice the floor's time; for rates
(higher is better) a ratio under 1× means that fraction of the floor's rate. The accuracy
benchmark has no timing floor: its reference is the simulator's ground truth. Timings depend on
the machine and on its load, recorded below and for each benchmark.
"""


def fmt(value, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        text = str(value)
    elif unit == "fraction":
        return f"{value * 100:.2f} %"
    elif isinstance(value, float) and not math.isfinite(value):
        text = str(value)
    elif isinstance(value, int):
        text = f"{value:,}"
    elif abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    elif abs(value) >= 1 or value == 0:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".strip() if unit and unit != "fraction" else text


def fmt_ratio(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.2f}×" if abs(value) < 10 else f"{value:.1f}×" if abs(value) < 100 else f"{value:,.0f}×"


def fmt_goal(figure: dict) -> str:
    if "goal_ratio" not in figure:
        return ""
    sign = "≤" if figure["better"] == "lower" else "≥"
    verdict = {True: "met", False: "**missed**", None: "—"}[figure.get("within_goal")]
    return f"{sign} {figure['goal_ratio']:g}×: {verdict}"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def figure_row(figure: dict, reference: str) -> str:
    better = "lower" if figure["better"] == "lower" else "higher"
    name = figure["name"] + (f" ({figure['note']})" if figure.get("note") else "")
    cells = [name, fmt(figure["figure"], figure["unit"]), figure["floor_name"], fmt(figure["floor"], figure["unit"]),
             fmt_ratio(figure["ratio"])]
    if reference == "floor":
        cells += [better, fmt_goal(figure)]
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def render_markdown(results: dict) -> str:
    m, suite = results["machine"], results["suite"]
    lines = [INTRO]
    lines += ["## The run", "",
              f"- {suite['started_at']} UTC, {suite['wall_seconds']:.0f} s in all, size `{suite['size']}`; "
              f"result: {'all benchmarks ran' if suite['ok'] else 'FAILED: ' + ', '.join(suite['failed'])}"
              + (f"; skipped: {', '.join(suite['skipped'])}" if suite.get("skipped") else "")
              + (f"; kept from earlier runs (each marked with when and on which CPU it ran; the table below "
                 f"is this run's machine): {', '.join(suite['kept'])}" if suite.get("kept") else ""),
              f"- command: `{suite['command']}`",
              "",
              "| machine | |", "|---|---|",
              f"| CPU | {_cell(m['cpu_model'])}, {m['cores']} cores ({m['usable_cores']} usable) |",
              f"| RAM | {m['ram_gib']} GiB |",
              f"| kernel, OS | {_cell(m['kernel'])}, {_cell(m['os'])} |",
              f"| Python | {m['python']} |",
              f"| MariaDB | {_cell(m['mariadb'])} |",
              f"| Redis | {_cell(m['redis'])} |"]
    if m.get("dagster"):
        lines.append(f"| Dagster | {m['dagster']} |")
    lines += [f"| load average (1, 5, 15 min) | {m['load_average_start']} at start, {m['load_average_end']} at end |", ""]
    lines += ["| benchmark | status | wall | load at start → end |", "|---|---|---|---|"]
    for entry in results["benchmarks"]:
        load = entry.get("load_average") or {}
        status = {"ok": "ok", "skipped": "skipped", "failed": "**FAILED**"}[entry["status"]]
        lines.append(f"| [{entry['name']}](#{entry['name']}) | {status} | {fmt(entry.get('wall_seconds'), 's')} | "
                     f"{(load.get('start') or ['—'])[0]} → {(load.get('end') or ['—'])[0]} |")
    lines.append("")
    for entry in results["benchmarks"]:
        lines += [f"## {entry['name']}", "", f"**{entry['title']}.** {entry['about']}", ""]
        if entry["status"] == "skipped":
            lines += [f"Skipped: {entry['error']}.", ""]
            continue
        when = entry.get("measured_at")
        lines += [(f"`{entry['command']}` — wall {fmt(entry['wall_seconds'], 's')}, load average "
                  f"{entry['load_average']['start']} → {entry['load_average']['end']}"
                  + (f"; measured {when} UTC" if when and when != suite["started_at"] else "")
                  + (f" on {entry['measured_on']}" if entry.get("measured_on") and when != suite["started_at"]
                     and entry["measured_on"] != m.get("cpu_model") else "")), ""]
        if entry["status"] == "failed":
            lines += [f"**FAILED**: {_cell(entry['error'])}", ""]
            if entry.get("stderr_tail"):
                lines += ["```", *entry["stderr_tail"][-10:], "```", ""]
            continue
        if entry["reference"] == "truth":
            lines += ["| figure | measured | reference | truth | measured / truth |", "|---|---|---|---|---|"]
        else:
            lines += ["| figure | value | floor | floor value | ratio | better | goal |", "|---|---|---|---|---|---|---|"]
        lines += [figure_row(f, entry["reference"]) for f in entry["figures"]]
        lines.append("")
        if entry.get("context"):
            lines += ["| also measured (no floor) | |", "|---|---|"]
            lines += [f"| {_cell(c['name'])} | {_cell(fmt(c['figure'], c.get('unit', '')))}"
                      f"{_cell(' (' + c['note'] + ')') if c.get('note') else ''} |" for c in entry["context"]]
            lines.append("")
        lines += [note + "\n" for note in entry.get("notes", [])]
    lines += ["## Reproduce", "",
              "```",
              "make bench                                  # every benchmark, default sizes (about 10-15 min)",
              ".venv/bin/python -m bench.suite --only ingest,queue   # some of them (names as the headings above)",
              ".venv/bin/python -m bench.suite --size tiny           # a smoke run in about a minute",
              "```", "",
              ("Each benchmark also runs alone with the command shown under its heading (without `--json` "
              "it prints a table). MariaDB on `--server-url` (default `mysql+pymysql://root@127.0.0.1:3306`, "
              "where scratch databases are created and dropped) and Redis on `--redis-url` (default "
              "`redis://127.0.0.1:6379/12`, a database the suite may flush) must be running: "
              "`scripts/ensure_services.sh` starts the local ones."), ""]
    return "\n".join(lines)


# -- main --------------------------------------------------------------------------------------


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.suite", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--size", choices=SIZES, default="default",
                        help="default: the sizes of `make bench`; tiny: a smoke run (figures meaningless)")
    parser.add_argument("--only", help="comma-separated benchmark names to run (the others are recorded as skipped)")
    parser.add_argument("--skip", help="comma-separated benchmark names not to run (recorded as skipped)")
    parser.add_argument("--server-url", default=os.environ.get("TEST_MYSQL_URL", DEFAULT_SERVER_URL),
                        help="MySQL/MariaDB server for scratch databases (default: %(default)s)")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="a Redis database the suite may flush "
                                                                       "(default: %(default)s)")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results JSON (default: bench/results.json)")
    parser.add_argument("--markdown", type=Path, default=DEFAULT_MARKDOWN,
                        help="the document (default: docs/benchmarks.md)")
    parser.add_argument("--accuracy-module", default="bench.accuracy", help=argparse.SUPPRESS)
    parser.add_argument("--keep-others", action="store_true",
                        help="benchmarks not run keep their entries from --results (marked with when they ran)")
    parser.add_argument("--render", type=Path, metavar="RESULTS_JSON",
                        help="only rewrite --markdown from this results file")
    args = parser.parse_args(argv)

    if args.render:
        write(args.markdown, render_markdown(json.loads(args.render.read_text())))
        return 0

    all_benches = benchmarks(args)
    names = [b.name for b in all_benches]
    only = set(args.only.split(",")) if args.only else set(names)
    skip = set(args.skip.split(",")) if args.skip else set()
    unknown = (only | skip) - set(names)
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(sorted(unknown))}; the names are {', '.join(names)}")

    progress = Progress()
    started_at = datetime.now(UTC)
    info = machine(args) | {"load_average_start": load_average()}
    progress(f"{info['cpu_model']}, {info['cores']} cores, load {info['load_average_start']}; "
             f"MariaDB {info['mariadb']}, Redis {info['redis']}")
    earlier: dict[str, dict] = {}
    if args.keep_others and args.results.exists():
        kept = json.loads(args.results.read_text())
        for entry in kept.get("benchmarks", []):
            if entry.get("status") != "skipped":
                earlier[entry["name"]] = {**entry, "measured_at": entry.get("measured_at") or kept["suite"]["started_at"],
                                          "measured_on": entry.get("measured_on") or kept["machine"].get("cpu_model")}
    entries: dict[str, dict] = {}
    for bench in all_benches:
        if (bench.name not in only or bench.name in skip) and bench.name in earlier:
            entries[bench.name] = earlier[bench.name]
            continue
        if bench.name not in only or bench.name in skip:
            entries[bench.name] = {"name": bench.name, "title": bench.title, "reference": bench.reference,
                                   "about": bench.about, "status": "skipped",
                                   "error": "not selected (--only/--skip)", "figures": [], "context": []}
            continue
        entries[bench.name] = run_bench(bench, args, entries, progress) | {
            "measured_at": started_at.strftime("%Y-%m-%d %H:%M:%S")}
    info["load_average_end"] = load_average()
    failed = [name for name, e in entries.items() if e["status"] == "failed"]
    results = {
        "suite": {
            "started_at": started_at.strftime("%Y-%m-%d %H:%M:%S"),
            "finished_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            "wall_seconds": round(time.monotonic() - progress.started, 1),
            "command": display_command([sys.executable, "-m", "bench.suite", *(sys.argv[1:] if argv is None else argv)]),
            "size": args.size,
            "ok": not failed,
            "failed": failed,
            "skipped": [name for name, e in entries.items() if e["status"] == "skipped"],
            "kept": [name for name, e in entries.items() if name in earlier and e is earlier[name]],
        },
        "machine": info,
        "benchmarks": list(entries.values()),
    }
    write(args.results, json.dumps(results, indent=2, ensure_ascii=False, default=str) + "\n")
    write(args.markdown, render_markdown(results))
    progress(f"wrote {args.results} and {args.markdown}")
    if failed:
        progress(f"FAILED: {', '.join(failed)}")
        return 1
    progress("all benchmarks ran")
    return 0


if __name__ == "__main__":
    sys.exit(main())
