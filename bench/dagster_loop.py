"""Dagster in the loop: latency and throughput of the results → runs → materializations path, sensor
tick durations and the asset page's GraphQL query, with 50, 200 and 1,000 IPs' partitions.

    .venv/bin/python -m bench.dagster_loop [--json] [--sizes 50,200,1000] [--window 60]
        [--latency-rate 12] [--rates 10,20,40,80] [--step 90] [--items 1200] [--drain 120]
        [--history-hours 6]

What runs, all on this machine and all real: the code location as a gRPC code server
(``dagster api grpc``), ``dagster-daemon`` and ``dagster-webserver`` connected to it through
deploy/workspace.grpc.yaml, on a Dagster instance stored in a fresh MySQL database (the project's
dagster.yaml, ``dagster instance migrate``); the project's tables in another fresh MySQL
database; the queues in Redis (``--redis-url``, default db 8, flushed at the start and the end).
No crawler: the script plays the crawler nodes and LPUSHes synthetic CrawlResponses
(``encode_response``, ``--items`` items each, crawledAt = now) onto animetop:queue:results.

1. For each size (IPs in the catalog): import IPs up to the size, wait until ip_catalog_sensor has
   registered them as ``ip`` partitions, give each new IP ``--history-hours`` past hours of
   runless materializations (history for the asset page and the status cache to go through),
   then push results at ``--latency-rate`` per minute for ``--window`` seconds, each for an IP
   that had none yet, and wait for them. Latency = the timestamp of the first ``mercari_crawl``
   materialization of the result's (ip, hour) partition that ingested it (metadata
   ingested_now ≥ 1) minus the moment it was pushed. The sensor ticks recorded by the instance in
   that span give the tick durations (end − start); the asset page's query (partition keys by
   dimension, partition stats, partition statuses of mercari_crawl) is sent to the webserver
   ``--graphql-repeats`` times.
2. At the largest size, push at each rate of ``--rates`` per minute for ``--step`` seconds. The
   backlog is the number of pushed results not yet materialized, sampled every second. A rate is
   kept up with when the backlog's mean over the second half of the step exceeds its mean over
   the first half by at most max(2, 10 % of the results pushed in the second half) — means,
   because batch runs drain the backlog in a sawtooth. The sustained rate is the highest rate
   kept up with below the first that is not.
3. The backlog left drains for at most ``--drain`` seconds (the drain rate), then the runs still
   queued finish (at most ``--drain`` seconds more).

The whole run takes about 12 minutes with the defaults on a 2-core machine. Everything it
started is stopped (SIGTERM, then SIGKILL) and both databases dropped, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import httpx
import redis
import sqlalchemy as sa
from dagster._core.instance.ref import InstanceRef
from dagster._core.scheduler.instigation import InstigatorType, TickStatus

from animehot_dagster.defs.partitions import IP_DIMENSION, crawl_partition_key
from animehot_dagster.domain.messages import CrawlResponse, Item, ItemStatus, encode_response
from animehot_dagster.domain.timebuckets import from_unix, hour_bucket
from animehot_dagster.queue import keys
from animehot_dagster.stack.processes import Stack, free_port
from animehot_dagster.storage.db import create_engine
from animehot_dagster.storage.ip_catalog import import_ips
from animehot_dagster.storage.migrate import migrate

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DEFAULT_SERVER_URL = "mysql+pymysql://root@127.0.0.1:3306"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/8"
SENSORS = ("crawl_results_sensor", "crawl_cadence_sensor", "ip_catalog_sensor")
POLL_SECONDS = 1.0
HISTORY = "bench_history"

ASSET_PAGE_QUERY = """
query AssetPage($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    __typename
    ... on AssetNode {
      id
      partitionKeysByDimension { name type partitionKeys }
      partitionStats { numMaterialized numPartitions numFailed numMaterializing }
      assetPartitionStatuses {
        __typename
        ... on MultiPartitionStatuses {
          primaryDimensionName
          ranges {
            primaryDimStartKey
            primaryDimEndKey
            secondaryDim {
              __typename
              ... on DefaultPartitionStatuses {
                materializedPartitions failedPartitions unmaterializedPartitions materializingPartitions
              }
              ... on TimePartitionStatuses { ranges { status startKey endKey } }
            }
          }
        }
      }
    }
  }
}
"""


def log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))]


def summary(values: list[float]) -> dict:
    return {
        "n": len(values),
        "p50": _round(percentile(values, 0.5)),
        "p95": _round(percentile(values, 0.95)),
        "max": _round(max(values) if values else None),
    }


def _round(value: float | None, places: int = 2) -> float | None:
    return None if value is None else round(value, places)


def wait_for(predicate, timeout: float, what: str, stack: Stack, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while True:
        stack.check_alive()
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(every)


# -- the loop ----------------------------------------------------------------------------------


@dataclasses.dataclass
class Pushed:
    ip_id: int
    task_id: str
    partition: str
    at: float  # unix seconds
    done_at: float | None = None

    @property
    def latency(self) -> float | None:
        return None if self.done_at is None else self.done_at - self.at


class Loop:
    """Pushes results and follows their materializations in the instance."""

    def __init__(self, client: redis.Redis, instance: dg.DagsterInstance, items: int, seed: int) -> None:
        self.client, self.instance, self.items = client, instance, items
        self.random = random.Random(seed)
        self.pending: dict[str, collections.deque[Pushed]] = collections.defaultdict(collections.deque)
        self.all: list[Pushed] = []
        self.cursor: str | None = None
        self.ip_pool: list[int] = []
        self.next_ip = 0
        self.zero_ingest_materializations = 0
        self.unmatched_materializations = 0

    def add_ips(self, ip_ids: list[int]) -> None:
        self.ip_pool.extend(ip_ids)

    def _next_ip(self) -> int:
        # Each result goes to an IP that has had none yet while there are such IPs, so that its
        # (ip, hour) partition is materialized for it alone.
        ip_id = self.ip_pool[self.next_ip % len(self.ip_pool)]
        self.next_ip += 1
        return ip_id

    def push(self) -> Pushed:
        ip_id, now = self._next_ip(), time.time()
        task_id = str(uuid.uuid4())
        response = CrawlResponse(
            ip_id=ip_id,
            task_id=task_id,
            crawled_at=int(now),
            items=tuple(self._items(ip_id)),
            total_found=self.items * 3,
            pages_crawled=max(1, -(-self.items // 120)),
            crawler_node="bench-dagster-loop",
        )
        self.client.lpush(keys.RESULTS, encode_response(response))
        partition = str(crawl_partition_key(ip_id, hour_bucket(from_unix(int(now)))))
        pushed = Pushed(ip_id, task_id, partition, now)
        self.pending[partition].append(pushed)
        self.all.append(pushed)
        return pushed

    def _items(self, ip_id: int):
        sold = self.items * 3 // 10  # 7 pages on sale, 3 sold, as the crawler asks by default
        for serial in range(self.items):
            source = f"m{ip_id:05d}{self.random.getrandbits(40):012d}"
            yield Item(
                source_id=source,
                title=f"bench {ip_id} item {serial}",
                price=self.random.randint(300, 30_000),
                item_url=f"https://jp.mercari.com/item/{source}",
                image_url=f"https://static.mercdn.net/thumb/photos/{source}_1.jpg",
                status=ItemStatus.SOLD if serial < sold else ItemStatus.ON_SALE,
            )

    def poll(self) -> None:
        """Match new mercari_crawl materializations to the results they ingested (oldest first)."""
        while True:
            result = self.instance.fetch_materializations(
                dg.AssetKey("mercari_crawl"), limit=500, cursor=self.cursor, ascending=True
            )
            for record in result.records:
                materialization = record.asset_materialization
                metadata = materialization.metadata
                if HISTORY in metadata:
                    continue
                ingested = getattr(metadata.get("ingested_now"), "value", 0) or 0
                if not ingested:
                    self.zero_ingest_materializations += 1
                    continue
                queue = self.pending.get(materialization.partition)
                for _ in range(int(ingested)):
                    if not queue:
                        self.unmatched_materializations += 1
                        break
                    queue.popleft().done_at = record.timestamp
            self.cursor = result.cursor
            if not result.has_more:
                return

    def backlog(self) -> int:
        return sum(len(queue) for queue in self.pending.values())

    def queue_depth(self) -> int:
        with self.client.pipeline(transaction=False) as pipe:
            pipe.llen(keys.RESULTS)
            pipe.llen(keys.RESULTS_PROCESSING)
            return sum(pipe.execute())

    def drive(self, rate_per_minute: float, seconds: float, stack: Stack) -> tuple[list[Pushed], list[tuple]]:
        """Push at a steady rate for ``seconds``; returns what was pushed and samples of
        (seconds into the step, backlog, queue depth)."""
        pushed, samples = [], []
        start = time.monotonic()
        next_push, next_sample, interval = start, start, 60.0 / rate_per_minute
        while (now := time.monotonic()) < start + seconds:
            if now >= next_push:
                pushed.append(self.push())
                next_push += interval
            if now >= next_sample:
                self.poll()
                samples.append((round(now - start, 1), self.backlog(), self.queue_depth()))
                next_sample += POLL_SECONDS
                stack.check_alive()
            time.sleep(max(0.0, min(next_push, next_sample) - time.monotonic()))
        self.poll()
        samples.append((round(time.monotonic() - start, 1), self.backlog(), self.queue_depth()))
        return pushed, samples

    def settle(self, batch: list[Pushed], timeout: float, stack: Stack) -> None:
        deadline = time.monotonic() + timeout
        while any(p.done_at is None for p in batch) and time.monotonic() < deadline:
            stack.check_alive()
            time.sleep(POLL_SECONDS)
            self.poll()


# -- the instance and the webserver ----------------------------------------------------------


def sensor_ticks(instance: dg.DagsterInstance, since: float, until: float) -> dict[str, dict]:
    found = {}
    for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
        if state.instigator_name not in SENSORS:
            continue
        ticks = [t for t in instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=5000)
                 if since <= t.timestamp <= until and t.end_timestamp]
        failures = [t for t in ticks if t.status == TickStatus.FAILURE]
        found[state.instigator_name] = {
            "duration_seconds": summary([t.end_timestamp - t.timestamp for t in ticks]),
            "failed": len(failures),
            "first_error": failures[-1].error.message.strip().splitlines()[0] if failures and failures[-1].error else None,
        }
    return found


def graphql_timing(url: str, repeats: int) -> dict:
    timings, shape = [], {}
    with httpx.Client(timeout=120) as client:
        for _ in range(repeats):
            started = time.perf_counter()
            response = client.post(url, json={"query": ASSET_PAGE_QUERY,
                                              "variables": {"assetKey": {"path": ["mercari_crawl"]}}})
            timings.append(time.perf_counter() - started)
            response.raise_for_status()
            body = response.json()
            if body.get("errors"):
                raise RuntimeError(f"GraphQL errors: {body['errors'][:2]}")
            node = body["data"]["assetNodeOrError"]
            shape = {
                "partition_keys": {d["name"]: len(d["partitionKeys"]) for d in node["partitionKeysByDimension"]},
                "partition_stats": node["partitionStats"],
                "status_ranges": len(node["assetPartitionStatuses"].get("ranges", [])),
                "response_bytes": len(response.content),
            }
    return {"first_seconds": _round(timings[0], 3), "rest": summary(timings[1:]) if len(timings) > 1 else None,
            **shape}


# -- the run -----------------------------------------------------------------------------------


def seed_history(instance: dg.DagsterInstance, ip_ids: list[int], hours: int) -> float:
    """Runless mercari_crawl materializations of the last ``hours`` complete hours of each IP, so
    that the asset page and the status cache have history to go through; returns seconds taken."""
    if not hours or not ip_ids:
        return 0.0
    started, current = time.monotonic(), hour_bucket(datetime.now(UTC))
    keys_ = [str(crawl_partition_key(ip_id, current - timedelta(hours=back)))
             for ip_id in ip_ids for back in range(1, hours + 1)]

    def report(key: str) -> None:
        instance.report_runless_asset_event(
            dg.AssetMaterialization("mercari_crawl", partition=key, metadata={HISTORY: True})
        )

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(report, keys_))
    return time.monotonic() - started


def import_bench_ips(engine: sa.Engine, start: int, stop: int) -> list[int]:
    rows = [{"name": f"bench-ip-{n:05d}", "weight": 1.0, "category": "other"} for n in range(start, stop)]
    report = import_ips(engine, rows, upsert=False, now=datetime.now(UTC))
    if report.failed:
        raise RuntimeError(f"import failed: {report.failed[:3]}")
    return [row["id"] for row in report.created]


def run(args: argparse.Namespace, workdir: Path) -> dict:
    figures: dict = {
        "machine": {"cpus": os.cpu_count(), "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
                    "python": platform.python_version(), "dagster": dg.__version__},
        "settings": {k: v for k, v in vars(args).items() if k not in ("json",)},
    }
    bench_started = time.monotonic()
    client = redis.Redis.from_url(args.redis_url)
    client.flushdb()
    server = sa.create_engine(args.server_url)
    suffix = uuid.uuid4().hex[:8]
    app_db, dagster_db = f"bench_loop_{suffix}", f"bench_loop_dagster_{suffix}"
    with contextlib.ExitStack() as cleanup:
        for name in (app_db, dagster_db):
            with server.begin() as connection:
                connection.execute(sa.text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
            cleanup.callback(_drop, server, name)
        cleanup.callback(client.flushdb)
        database_url = f"{args.server_url}/{app_db}?charset=utf8mb4"
        engine = create_engine(database_url)
        cleanup.callback(engine.dispose)
        migrate(engine)

        home = workdir / "dagster_home"
        home.mkdir()
        shutil.copy(args.dagster_yaml, home / "dagster.yaml")
        grpc_port, web_port = free_port(), free_port()
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": args.redis_url,
            "DAGSTER_HOME": str(home),
            "DAGSTER_MYSQL_URL": f"{args.server_url.replace('+pymysql', '+mysqlconnector')}/{dagster_db}",
            "DAGSTER_GRPC_HOST": "localhost",
            "DAGSTER_GRPC_PORT": str(grpc_port),
            "APP_ENV": "local",
        }
        os.environ.update({k: env[k] for k in ("DAGSTER_HOME", "DAGSTER_MYSQL_URL")})
        stack = Stack(workdir, env, cwd=REPO)
        cleanup.callback(stack.stop)
        workspace = str(REPO / "deploy" / "workspace.grpc.yaml")

        log("dagster instance migrate")
        stack.run(str(BIN / "dagster"), "instance", "migrate")
        code_server = stack.start("code_server", str(BIN / "dagster"), "api", "grpc", "-m", "animehot_dagster.definitions",
                               "-a", "defs", "--host", "localhost", "--port", str(grpc_port), "--location-name", "animehot")
        stack.wait_for_log(code_server, "Started Dagster code server", 120)
        stack.start("daemon", str(BIN / "dagster-daemon"), "run", "-w", workspace)
        stack.start("webserver", str(BIN / "dagster-webserver"), "-w", workspace, "-h", "127.0.0.1", "-p", str(web_port))
        graphql_url = f"http://127.0.0.1:{web_port}/graphql"

        def webserver_up() -> bool:
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"http://127.0.0.1:{web_port}/server_info", timeout=5).status_code == 200
            return False

        wait_for(webserver_up, 120, "webserver", stack)
        instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))
        cleanup.callback(instance.dispose)
        loop = Loop(client, instance, args.items, args.seed)
        log(f"stack up in {time.monotonic() - bench_started:.0f} s")

        # 1. Latency, sensor ticks and the asset page at each size.
        sizes, imported = [], 0
        for size in args.sizes:
            new_ips = import_bench_ips(engine, imported, size)
            imported = size
            loop.add_ips(new_ips)
            registered_at = time.time()
            wait_for(lambda size=size: len(instance.get_dynamic_partitions(IP_DIMENSION)) >= size, 180,
                     f"ip_catalog_sensor registering {size} ip partitions", stack)
            registered_seconds = time.time() - registered_at
            history_seconds = seed_history(instance, new_ips, args.history_hours)
            loop.poll()
            log(f"{size} IPs: partitions registered after {registered_seconds:.0f} s; pushing "
                f"{args.latency_rate}/min for {args.window} s")
            window_start = time.time()
            pushed, _ = loop.drive(args.latency_rate, args.window, stack)
            loop.settle(pushed, args.settle, stack)
            window_end = time.time()
            latencies = [p.latency for p in pushed if p.latency is not None]
            graphql = graphql_timing(graphql_url, args.graphql_repeats)
            ticks = sensor_ticks(instance, registered_at - 1, window_end)
            entry = {
                "ips": size,
                "registration_seconds": round(registered_seconds, 1),
                "history_materializations": len(new_ips) * args.history_hours,
                "history_seconds": round(history_seconds, 1),
                "latency_seconds": summary(latencies),
                "pushed": len(pushed),
                "not_materialized": len(pushed) - len(latencies),
                "window_seconds": round(window_end - window_start, 1),
                "sensor_ticks": ticks,
                "graphql_asset_page": graphql,
            }
            sizes.append(entry)
            log(f"{size} IPs: latency {entry['latency_seconds']}, ticks "
                f"{ {k: v['duration_seconds']['p50'] for k, v in ticks.items()} }, graphql {graphql['rest']}")
        figures["sizes"] = sizes
        figures["latency_seconds_all_sizes"] = summary(
            [p.latency for entry_pushed in [loop.all] for p in entry_pushed if p.latency is not None]
        )

        # 2. Throughput: increasing rates at the largest size.
        steps, sustained, first_failing = [], 0.0, None
        for rate in args.rates:
            log(f"rate {rate}/min for {args.step} s (backlog {loop.backlog()})")
            step_start = time.time()
            runs_before = _run_counts(instance)
            backlog_start = loop.backlog()
            pushed, samples = loop.drive(rate, args.step, stack)
            first = [s[1] for s in samples if s[0] < args.step / 2] or [backlog_start]
            second = [s[1] for s in samples if s[0] >= args.step / 2] or [backlog_start]
            mid_backlog, end_backlog = second[0], samples[-1][1]
            pushed_second_half = sum(1 for p in pushed if p.at - step_start >= args.step / 2)
            # Batch runs drain the backlog in steps (a sawtooth): compare the halves' means.
            growth = statistics.fmean(second) - statistics.fmean(first)
            kept_up = growth <= max(2, 0.1 * pushed_second_half)
            materialized_in_step = sum(1 for p in loop.all if p.done_at and step_start <= p.done_at <= time.time())
            runs_after = _run_counts(instance)
            step = {
                "rate_per_minute": rate,
                "pushed": len(pushed),
                "materialized_during_step": materialized_in_step,
                "throughput_per_minute": round(materialized_in_step * 60 / args.step, 1),
                "backlog_start": backlog_start,
                "backlog_mid": mid_backlog,
                "backlog_end": end_backlog,
                "backlog_max": max(s[1] for s in samples),
                "backlog_mean_halves": [round(statistics.fmean(first), 1), round(statistics.fmean(second), 1)],
                "queue_depth_end": samples[-1][2],
                "kept_up": kept_up,
                "latency_seconds": summary([p.latency for p in pushed if p.latency is not None]),
                "runs_launched": {job: runs_after.get(job, 0) - runs_before.get(job, 0) for job in runs_after},
                "sensor_ticks": sensor_ticks(instance, step_start, time.time()),
            }
            steps.append(step)
            log(f"rate {rate}/min: {step['throughput_per_minute']}/min materialized, backlog "
                f"{backlog_start}→{mid_backlog}→{end_backlog}, kept up: {kept_up}")
            if kept_up and first_failing is None:
                sustained = rate
            elif not kept_up and first_failing is None:
                first_failing = rate
        figures["throughput"] = {"steps": steps, "sustained_per_minute": sustained,
                                 "backlog_grows_from_per_minute": first_failing}

        # 3. Drain what is left: the rate the batch path works through a backlog.
        drain_start, backlog = time.time(), loop.backlog()
        log(f"draining {backlog} results for at most {args.drain} s")
        deadline = time.monotonic() + args.drain
        while loop.backlog() and time.monotonic() < deadline:
            stack.check_alive()
            time.sleep(2)
            loop.poll()
        drained_seconds = time.time() - drain_start
        drained = backlog - loop.backlog()
        figures["drain"] = {
            "backlog": backlog,
            "drained": drained,
            "seconds": round(drained_seconds, 1),
            "per_minute": round(drained * 60 / drained_seconds, 1) if drained and drained_seconds else None,
            "left": loop.backlog(),
        }
        # Runs still queued (per-partition runs whose results a batch run took) finish too:
        # they show as materializations that ingested nothing.
        deadline = time.monotonic() + args.drain
        while _runs_in_flight(instance) and time.monotonic() < deadline:
            stack.check_alive()
            time.sleep(2)
        loop.poll()
        figures["all_results"] = {
            "pushed": len(loop.all),
            "materialized": sum(1 for p in loop.all if p.done_at),
            "latency_seconds": summary([p.latency for p in loop.all if p.latency is not None]),
            "materializations_that_ingested_nothing": loop.zero_ingest_materializations,
            "materializations_without_a_pushed_result": loop.unmatched_materializations,
        }
        runs = instance.get_runs()
        figures["runs"] = {
            job: dict(collections.Counter(r.status.value for r in runs if r.job_name == job))
            for job in sorted({r.job_name for r in runs})
        }
        failed_ticks = {name: t["failed"] for name, t in sensor_ticks(instance, 0, time.time()).items() if t["failed"]}
        if failed_ticks:
            figures["failed_sensor_ticks"] = failed_ticks
            figures["first_sensor_error"] = next(
                (t["first_error"] for t in sensor_ticks(instance, 0, time.time()).values() if t["first_error"]), None
            )
        figures["elapsed_seconds"] = round(time.monotonic() - bench_started, 1)
    return figures


def _runs_in_flight(instance: dg.DagsterInstance) -> int:
    return instance.get_runs_count(dg.RunsFilter(statuses=[
        dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
        dg.DagsterRunStatus.STARTED,
    ]))


def _run_counts(instance: dg.DagsterInstance) -> dict[str, int]:
    return dict(collections.Counter(r.job_name for r in instance.get_runs()))


def _drop(server: sa.Engine, name: str) -> None:
    with server.begin() as connection:
        connection.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))


def print_report(figures: dict) -> None:
    machine = figures["machine"]
    print(f"Dagster in the loop — {machine['cpus']} CPUs, load {machine['load_average_at_start']} at start, "
          f"dagster {machine['dagster']}, {figures['settings']['items']} items per result")
    print("\nPer size (latency: pushed → its mercari_crawl partition materialized):")
    for entry in figures["sizes"]:
        latency = entry["latency_seconds"]
        print(f"  {entry['ips']:>5} IPs: latency p50 {latency['p50']} s, p95 {latency['p95']} s, max {latency['max']} s "
              f"({latency['n']}/{entry['pushed']} materialized); ip partitions registered in {entry['registration_seconds']} s; "
              f"{entry['history_materializations']} history materializations in {entry['history_seconds']} s")
        for name, ticks in entry["sensor_ticks"].items():
            d = ticks["duration_seconds"]
            failed = f", {ticks['failed']} FAILED ({ticks['first_error']})" if ticks["failed"] else ""
            print(f"         {name:<22} tick p50 {d['p50']} s, p95 {d['p95']} s, max {d['max']} s (n={d['n']}){failed}")
        g = entry["graphql_asset_page"]
        rest = g["rest"] or {}
        print(f"         GraphQL asset page: first {g['first_seconds']} s, then p50 {rest.get('p50')} s, max {rest.get('max')} s "
              f"(keys {g['partition_keys']}, stats {g['partition_stats']}, {g['response_bytes']} bytes)")
    print(f"\nLatency over all sizes: {figures['latency_seconds_all_sizes']}")
    print("\nThroughput (largest size):")
    for step in figures["throughput"]["steps"]:
        print(f"  {step['rate_per_minute']:>5}/min pushed {step['pushed']:>3}: {step['throughput_per_minute']}/min materialized, "
              f"backlog {step['backlog_start']}→{step['backlog_mid']}→{step['backlog_end']} (max {step['backlog_max']}, "
              f"half means {step['backlog_mean_halves']}), "
              f"latency p50 {step['latency_seconds']['p50']} p95 {step['latency_seconds']['p95']}, "
              f"runs {step['runs_launched']}, kept up: {step['kept_up']}")
    t = figures["throughput"]
    print(f"  sustained: {t['sustained_per_minute']}/min; backlog grows from: {t['backlog_grows_from_per_minute'] or 'none of the rates'}")
    d = figures["drain"]
    print(f"\nDrain: {d['drained']}/{d['backlog']} in {d['seconds']} s ({d['per_minute']}/min), {d['left']} left")
    print(f"All results: {figures['all_results']}")
    print(f"Runs: {figures['runs']}")
    if figures.get("failed_sensor_ticks"):
        print(f"FAILED sensor ticks: {figures['failed_sensor_ticks']}; first error: {figures['first_sensor_error']}")
    print(f"Elapsed: {figures['elapsed_seconds']} s")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.dagster_loop", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="Print the figures as JSON.")
    parser.add_argument("--sizes", default="50,200,1000", help="IPs in the catalog at each measurement (ascending).")
    parser.add_argument("--window", type=float, default=60, help="Seconds of pushing per size.")
    parser.add_argument("--latency-rate", type=float, default=12, help="Results per minute while measuring latency.")
    parser.add_argument("--settle", type=float, default=60, help="Seconds to wait for a size's results after pushing.")
    parser.add_argument("--rates", default="10,20,40,80", help="Results per minute of the throughput steps.")
    parser.add_argument("--step", type=float, default=90, help="Seconds per throughput step.")
    parser.add_argument("--drain", type=float, default=120, help="Seconds to let the backlog drain at the end.")
    parser.add_argument("--history-hours", type=int, default=6,
                        help="Past hours of runless mercari_crawl materializations recorded per IP (0: none).")
    parser.add_argument("--items", type=int, default=1200, help="Items per synthetic result (10 pages × 120).")
    parser.add_argument("--graphql-repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--server-url", default=os.environ.get("TEST_MYSQL_URL", DEFAULT_SERVER_URL),
                        help="MySQL server where two scratch databases are created and dropped.")
    parser.add_argument("--redis-url", default=os.environ.get("TEST_REDIS_URL", DEFAULT_REDIS_URL),
                        help="A Redis database this script may flush.")
    parser.add_argument("--dagster-yaml", default=str(REPO / "dagster.yaml"),
                        help="The instance configuration to run with (to measure a proposed change).")
    parser.add_argument("--keep", action="store_true", help="Keep the working directory (logs, DAGSTER_HOME).")
    args = parser.parse_args()
    args.sizes = sorted(int(s) for s in args.sizes.split(","))
    args.rates = [float(r) for r in args.rates.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="bench_dagster_loop_"))
    log(f"working directory {workdir}")
    try:
        figures = run(args, workdir)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps(figures, indent=2, default=str))
    else:
        print_report(figures)


if __name__ == "__main__":
    main()
