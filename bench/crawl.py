"""Crawl cost: one 5+5 page crawl of a keyword in each mode against a local simulator.

For each mode, a fresh node process (the same Crawler the node runs, drawing from the shared
Redis token bucket) first crawls one page to warm up (in browser mode: to start Chromium), then
the measured crawl. Reported per mode:

- wall time of the crawl, against the rate-limit floor (pages / APP_RATE_LIMIT: what the
  shared bucket allows at best; a fresh bucket's burst lets the first APP_RATE_BURST go at once);
- CPU-seconds per page of the node's whole process tree (Python, Playwright's driver, Chromium);
- items per second;
- peak memory of the node's process tree over its whole run, warm-up included: RSS summed
  over the processes (memory they share counts in each) and PSS (shared memory divided up).

The simulator runs in its own process, frozen at one moment, so its work is not counted.

    .venv/bin/python -m bench.crawl [--modes api,browser] [--keyword 初音ミク] [--pages-on-sale 5]
                                    [--pages-sold 5] [--rate 3] [--burst 3] [--redis-url …] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Self

import httpx
import redis.asyncio as aioredis

from animehot_dagster.crawler.crawl import Crawler, CrawlerConfig
from animehot_dagster.crawler.metrics import CrawlerMetrics
from animehot_dagster.crawler.ratelimit import RedisRateLimiter
from animehot_dagster.crawler.resilience import Mode
from animehot_dagster.domain.messages import CrawlRequest
from animehot_dagster.queue import keys
from animehot_dagster.settings import load_settings

REPO = Path(__file__).resolve().parents[1]  # where ``-m bench.crawl`` finds the package
MARKET_MOMENT = "2026-01-14T00:25:00+09:00"  # frozen: every run crawls the same listings
WARM_UP_KEYWORD = "葬送のフリーレン"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SIMULATOR = (
    "import sys\n"
    "from animehot_dagster.simulator.commands import simulator_command\n"
    "simulator_command.main(sys.argv[1:], prog_name='simulator')\n"
)


# --- the process tree, from /proc ---------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # fields from the 3rd on (the name may hold spaces)


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat_fields(int(entry.name))):
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, pending = [], [root]
    while pending:
        pid = pending.pop()
        tree.append(pid)
        pending.extend(children.get(pid, []))
    return tree


def tree_cpu_seconds(root: int) -> float:
    """User + system time of the tree, including its children that already exited (reaped)."""
    total = 0
    for pid in process_tree(root):
        if fields := _stat_fields(pid):
            total += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    return total / CLOCK_TICKS


def tree_memory_bytes(root: int) -> tuple[int, int]:
    """(RSS, PSS) summed over the tree. PSS divides each shared page among the processes
    sharing it, so its sum is the tree's real footprint; the RSS sum counts shared pages in
    every process that maps them."""
    rss = pss = 0
    for pid in process_tree(root):
        with contextlib.suppress(OSError, ValueError):  # the process may have just exited
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                name, _, value = line.partition(":")
                if name == "Rss":
                    rss += int(value.split()[0]) * 1024
                elif name == "Pss":
                    pss += int(value.split()[0]) * 1024
    return rss, pss


class PeakMemory:
    """Samples the memory of a process tree from this (other) process, so the sampling costs
    the measured node no CPU."""

    def __init__(self, root: int, interval: float = 0.05) -> None:
        self.peak_rss = self.peak_pss = 0
        self._root = root
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self._interval):
            rss, pss = tree_memory_bytes(self._root)
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


# --- one mode, in its own process -----------------------------------------------------------


@dataclasses.dataclass
class Measurement:
    mode: str
    pages: int
    items: int
    wall_seconds: float
    floor_seconds: float
    cpu_seconds: float

    def as_dict(self) -> dict:
        return dataclasses.asdict(self) | {
            "wall_vs_floor": round(self.wall_seconds / self.floor_seconds, 3),
            "cpu_seconds_per_page": round(self.cpu_seconds / self.pages, 4),
            "items_per_second": round(self.items / self.wall_seconds, 1),
        }


async def measure_mode(args: argparse.Namespace, simulator_url: str) -> Measurement:
    settings = load_settings(os.environ | {"MERCARI_WEB_URL": simulator_url, "MERCARI_API_URL": simulator_url})
    client = aioredis.Redis.from_url(args.redis_url or settings.redis_url)
    bucket = f"{keys.RATE_LIMIT}:bench-{uuid.uuid4().hex}"
    crawler = Crawler(
        CrawlerConfig.from_settings(settings, pinned_mode=Mode(args.child)),
        RedisRateLimiter(client, args.rate, args.burst, key=bucket),
        CrawlerMetrics(),
    )
    try:
        await crawler.crawl(CrawlRequest(ip_id=1, keyword=WARM_UP_KEYWORD, task_id="warm-up", pages_on_sale=1))
        await asyncio.sleep(args.burst / args.rate)  # the bucket full again, as a node between tasks finds it
        request = CrawlRequest(ip_id=2, keyword=args.keyword, task_id="bench",
                               pages_on_sale=args.pages_on_sale, pages_sold=args.pages_sold)
        cpu_before = tree_cpu_seconds(os.getpid())
        started = time.monotonic()
        response = await crawler.crawl(request)
        wall = time.monotonic() - started
        cpu = tree_cpu_seconds(os.getpid()) - cpu_before
    finally:
        await crawler.close()
        await client.delete(bucket)
        await client.aclose()
    if response.failed:
        raise SystemExit(f"{args.child} crawl failed: {response.error_message}")
    return Measurement(
        mode=args.child,
        pages=response.pages_crawled,
        items=len(response.items),
        wall_seconds=round(wall, 3),
        floor_seconds=round(response.pages_crawled / args.rate, 3),
        cpu_seconds=round(cpu, 3),
    )


# --- the driver ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_simulator() -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", SIMULATOR, "--port", str(port), "--time-scale", "0", "--start", MARKET_MOMENT],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the simulator did not start")


def run_mode(args: argparse.Namespace, mode: str, simulator_url: str) -> dict:
    command = [sys.executable, "-m", "bench.crawl", "--child", mode, "--simulator-url", simulator_url, "--keyword", args.keyword,
               "--pages-on-sale", str(args.pages_on_sale), "--pages-sold", str(args.pages_sold),
               "--rate", str(args.rate), "--burst", str(args.burst)]
    if args.redis_url:
        command += ["--redis-url", args.redis_url]
    child = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)
    with PeakMemory(child.pid) as memory:
        output, _ = child.communicate()
    if child.returncode:
        raise SystemExit(f"the {mode} crawl exited with {child.returncode}")
    peaks = {"peak_rss_mb": round(memory.peak_rss / 2**20, 1), "peak_pss_mb": round(memory.peak_pss / 2**20, 1)}
    return json.loads(output.strip().splitlines()[-1]) | peaks


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.crawl", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", default="api,browser")
    parser.add_argument("--keyword", default="初音ミク")
    parser.add_argument("--pages-on-sale", type=int, default=5)
    parser.add_argument("--pages-sold", type=int, default=5)
    parser.add_argument("--rate", type=float, default=3.0, help="APP_RATE_LIMIT (requests/s)")
    parser.add_argument("--burst", type=int, default=3, help="APP_RATE_BURST")
    parser.add_argument("--redis-url", help="default: REDIS_URL / REDIS_* from the environment")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    parser.add_argument("--child", choices=[m.value for m in Mode], help=argparse.SUPPRESS)
    parser.add_argument("--simulator-url", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        print(json.dumps(asyncio.run(measure_mode(args, args.simulator_url)).as_dict()))
        return

    simulator, url = start_simulator()
    try:
        results = [run_mode(args, mode, url) for mode in args.modes.split(",")]
    finally:
        simulator.terminate()
        simulator.wait(10)
    if args.json:
        print(json.dumps({"rate": args.rate, "burst": args.burst, "keyword": args.keyword, "results": results}))
        return
    print(f"{args.pages_on_sale}+{args.pages_sold} pages of {args.keyword!r}, APP_RATE_LIMIT={args.rate:g}/s, "
          f"APP_RATE_BURST={args.burst}")
    print(f"{'mode':8} {'pages':>5} {'items':>6} {'wall s':>7} {'floor s':>7} {'×floor':>6} "
          f"{'CPU s/page':>10} {'items/s':>8} {'peak RSS MB':>11} {'peak PSS MB':>11}")
    for r in results:
        print(f"{r['mode']:8} {r['pages']:>5} {r['items']:>6} {r['wall_seconds']:>7.2f} {r['floor_seconds']:>7.2f} "
              f"{r['wall_vs_floor']:>6.2f} {r['cpu_seconds_per_page']:>10.3f} {r['items_per_second']:>8.1f} "
              f"{r['peak_rss_mb']:>11.1f} {r['peak_pss_mb']:>11.1f}")


if __name__ == "__main__":
    main()
