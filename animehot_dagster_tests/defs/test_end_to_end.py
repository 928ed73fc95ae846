"""End to end with the real pieces, as a deployment runs them.

Every piece is its own process: the market simulator (``animehot simulator``), one crawler node
(``animehot crawler``), the code location as a gRPC code server (``dagster api grpc``) and the
real ``dagster-daemon`` connected to it through ``deploy/workspace.grpc.yaml``, on a Dagster
instance stored in a fresh MySQL database (``dagster.yaml`` of the project, copied into a
temporary DAGSTER_HOME, ``dagster instance migrate``). The project's tables are in another fresh
MySQL database and the queues in the test Redis database. The cadence is compressed (minutes
instead of hours) and the simulated market runs an hour a minute.

Three IPs are imported with ``animehot import`` and left to the sensors: the cadence sensor
dispatches them, the crawler crawls the simulator, the results sensor turns each result into a
run of the crawl chain. Once every IP has been crawled three times (the first crawl of an IP is
its baseline), the cadence sensor is stopped (``dagster sensor stop``, as an operator would), the
system drains, and the test checks what the issue asks:

- every crawl in crawl_log became a materialized (ip, hour) partition of ``mercari_crawl`` (and
  of the two assets after it), every run succeeded, and no sensor tick failed;
- ip_stats_hourly equals what ``animehot replay`` gives for the same results (see ``RedisTap``:
  the results are recorded off the wire as the crawler pushed them);
- ip_alerts holds exactly the alerts the thresholds give (``domain.alerts.evaluate``);
- the ZSET holds each IP's next time from the cadence rules, recomputed crawl by crawl;
- no message is left in any queue, processing list or dead-letter list.

Every process is stopped (SIGTERM, then SIGKILL) and both databases dropped, pass or fail.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg
import pytest
import redis
import sqlalchemy as sa
from dagster._core.instance.ref import InstanceRef
from dagster._core.scheduler.instigation import InstigatorType, TickStatus

from animehot_dagster.defs.partitions import crawl_partition_key
from animehot_dagster.domain.alerts import evaluate
from animehot_dagster.domain.cadence import decide
from animehot_dagster.domain.messages import NO_ITEMS, decode_response
from animehot_dagster.domain.timebuckets import rfc3339_jst, to_unix
from animehot_dagster.queue import keys
from animehot_dagster.settings import load_settings
from animehot_dagster.stack.processes import Stack, free_port
from animehot_dagster.storage.db import create_engine
from animehot_dagster.storage.schema import crawl_log, ip_alerts, ip_metadata, ip_stats_hourly
from animehot_dagster_tests.conftest import MYSQL_SERVER_URL, REDIS_URL, fresh_mysql_database

# Slow (end to end on a real daemon): left out of `make test-fast`; 472 s measured on a loaded 2-core machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
IPS_SAMPLE = Path("/work/shared/data/ips_sample.json")
# Three IPs of the sample of weight 2: base / 2 = 1 min at first (the minimum), 2 min (the maximum)
# once a measured crawl finds them cold or normal, so three crawls take about 3 minutes.
IP_NAMES = ("ちいかわ", "呪術廻戦", "ブルーロック")
CRAWLS_PER_IP = 3
CHAIN = ("mercari_crawl", "hourly_liquidity", "liquidity_alerts")

# The compressed cadence: whole minutes, min ≤ base ≤ max. The market runs an hour a minute, so
# one crawl interval sees about an hour of market activity, as in production.
ENV = {
    "SCHEDULER_BASE_INTERVAL": "2m",
    "SCHEDULER_MIN_INTERVAL": "1m",
    "SCHEDULER_MAX_INTERVAL": "2m",
    # Thresholds the simulated market crosses in some hours and not in others, so that the
    # alert comparison is not vacuous (an hour of this market sells some tens of items).
    "ANALYZER_HIGH_OUTFLOW_THRESHOLD": "25",
    "ANALYZER_LOW_LIQUIDITY_THRESHOLD": "0.5",
    "ANALYZER_HIGH_LIQUIDITY_THRESHOLD": "1.5",
    "APP_RATE_LIMIT": "200",
    "APP_RATE_BURST": "50",
    "HTTP_PROXY": "",
    "AUTO_MIGRATE": "true",
    "APP_ENV": "local",
}
TIME_SCALE = "60"
# The market's clock starts at a fixed Japan evening (a busy hour of its daily cycle) with a fixed
# seed, so every run sees the same market (give or take the seconds between crawls).
MARKET_START = "2026-11-02T20:00:00+09:00"
MARKET_SEED = "1"

# Budgets (seconds). The whole test stays under ~6 minutes when the machine is not overloaded.
STARTUP_TIMEOUT = 90
CRAWL_TIMEOUT = 420
DRAIN_TIMEOUT = 90
POLL_SECONDS = 3


class SensorTickFailed(AssertionError):
    """A sensor tick of the real daemon failed: the Dagster layer, not the test, is broken."""


# -- recording the results off the wire --------------------------------------------------------


class RedisTap:
    """Records every CrawlResponse pushed onto ``animetop:queue:results`` of one Redis database,
    byte for byte, with Redis's own MONITOR.

    Why this way: a result leaves the queue when it is processed, and the database keeps only
    what ingest derived from it, so the results cannot be read back afterwards, and deriving
    them from crawl_log would compare the system with itself. MONITOR streams each command the
    server executes, arguments included, so the tap sees exactly the bytes the crawler node
    LPUSHed (and any re-push by the janitor's scripts), without touching any process under test.
    Redis escapes binary arguments (sdscatrepr); ``_unescape`` undoes it.
    """

    _ARG = re.compile(rb'"((?:[^"\\]|\\.)*)"')
    _HEAD = re.compile(rb"^\+\d+\.\d+ \[(\d+) [^\]]*\] ")

    def __init__(self, url: str, key: str = keys.RESULTS) -> None:
        parts = urlsplit(url)
        self.db = int((parts.path or "/0").lstrip("/") or 0)
        self.key = key.encode()
        self._socket = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=10)
        self._socket.sendall(b"MONITOR\r\n")
        self._reader = self._socket.makefile("rb")
        assert self._reader.readline().strip() == b"+OK", "MONITOR refused"
        self._socket.settimeout(None)
        self.pushed: list[bytes] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            for line in self._reader:
                head = self._HEAD.match(line)
                if not head or int(head.group(1)) != self.db:
                    continue
                args = [self._unescape(a) for a in self._ARG.findall(line[head.end():])]
                if len(args) >= 3 and args[0].upper() in (b"LPUSH", b"RPUSH") and args[1] == self.key:
                    with self._lock:
                        self.pushed.extend(args[2:])

    @staticmethod
    def _unescape(text: bytes) -> bytes:
        out, i = bytearray(), 0
        simple = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("a"): b"\a", ord("b"): b"\b",
                  ord('"'): b'"', ord("\\"): b"\\"}
        while i < len(text):
            if text[i] == ord("\\") and i + 1 < len(text):
                nxt = text[i + 1]
                if nxt == ord("x"):
                    out.append(int(text[i + 2 : i + 4], 16))
                    i += 4
                    continue
                out += simple.get(nxt, bytes([nxt]))
                i += 2
                continue
            out.append(text[i])
            i += 1
        return bytes(out)

    def results(self) -> list[bytes]:
        with self._lock:
            return list(self.pushed)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)
        self._socket.close()
        self._thread.join(5)


# -- the instance ------------------------------------------------------------------------------


def sensor_ticks(instance: dg.DagsterInstance) -> dict[str, list]:
    ticks = {}
    for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
        ticks[state.instigator_name] = list(instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=1000))
    return ticks


def raise_on_failed_ticks(instance: dg.DagsterInstance) -> None:
    failed = [
        (name, tick.error.message.strip() if tick.error else "")
        for name, ticks in sensor_ticks(instance).items()
        for tick in ticks
        if tick.status == TickStatus.FAILURE
    ]
    if failed:
        name, message = failed[-1]  # ticks are newest first: the first failure
        raise SensorTickFailed(f"{len(failed)} failed sensor tick(s); first, of {name}: {message}")


def runs_in_flight(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    return list(instance.get_runs(dg.RunsFilter(statuses=[
        dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
        dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING,
    ])))


def run_failures(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str:
    records = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
    errors = [r.event_log_entry.dagster_event.step_failure_data.error for r in records]
    return "; ".join(e.message.strip() for e in errors if e) or "(no step failure recorded)"


def metadata_value(metadata: dict, name: str):
    value = metadata[name]
    return getattr(value, "value", value)


# -- the database ------------------------------------------------------------------------------


@contextlib.contextmanager
def fresh_empty_database(prefix: str) -> Iterator[str]:
    """An empty MySQL database (its name), dropped afterwards: Dagster's instance storage."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    server = sa.create_engine(MYSQL_SERVER_URL)
    with server.begin() as connection:
        connection.execute(sa.text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
    try:
        yield name
    finally:
        with server.begin() as connection:
            connection.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        server.dispose()


def crawls_by_ip(engine: sa.Engine) -> dict[int, int]:
    with engine.connect() as connection:
        return dict(connection.execute(sa.select(crawl_log.c.ip_id, sa.func.count()).group_by(crawl_log.c.ip_id)).all())


def queue_depths(client: redis.Redis) -> dict[str, int]:
    with client.pipeline(transaction=False) as pipe:
        for key, command in keys.MEASURED_KEYS:
            getattr(pipe, command)(key)
        return {key: depth for (key, _), depth in zip(keys.MEASURED_KEYS, pipe.execute(), strict=True)}


IN_FLIGHT_KEYS = (keys.TASKS, keys.TASKS_PROCESSING, keys.RESULTS, keys.RESULTS_PROCESSING)


# -- the test --------------------------------------------------------------------------------


def test_three_ips_run_for_several_cycles_through_the_real_daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    started = time.monotonic()
    timings: dict[str, float] = {}
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()

    sample = json.loads(IPS_SAMPLE.read_text(encoding="utf-8"))["ips"]
    chosen = [ip for ip in sample if ip["name"] in IP_NAMES]
    assert len(chosen) == len(IP_NAMES)
    ips_file = tmp_path / "ips.json"
    ips_file.write_text(json.dumps({"ips": chosen}, ensure_ascii=False), encoding="utf-8")

    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    simulator_port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    simulator_url = f"http://127.0.0.1:{simulator_port}"

    with contextlib.ExitStack() as cleanup:
        database_url = cleanup.enter_context(fresh_mysql_database("animehot_e2e"))
        replay_url = cleanup.enter_context(fresh_mysql_database("animehot_e2e_replay"))
        dagster_db = cleanup.enter_context(fresh_empty_database("animehot_e2e_dagster"))
        cleanup.callback(client.close)
        cleanup.callback(client.flushdb)
        env = {
            **os.environ,
            **ENV,
            "DATABASE_URL": database_url,
            "REDIS_URL": REDIS_URL,
            "MERCARI_WEB_URL": simulator_url,
            "MERCARI_API_URL": simulator_url,
            "METRICS_PORT": str(metrics_port),
            "DAGSTER_HOME": str(home),
            "DAGSTER_MYSQL_URL": f"{MYSQL_SERVER_URL.replace('+pymysql', '+mysqlconnector')}/{dagster_db}",
            "DAGSTER_GRPC_HOST": "localhost",
            "DAGSTER_GRPC_PORT": str(grpc_port),
            "NO_PROXY": "127.0.0.1,localhost",
        }
        for name in ("DAGSTER_HOME", "DAGSTER_MYSQL_URL", *ENV):
            monkeypatch.setenv(name, env[name])
        settings = load_settings(env)
        policy, thresholds = settings.cadence, settings.alert_thresholds

        stack = Stack(tmp_path, env, cwd=REPO)
        cleanup.callback(lambda: print(f"\nlogs in {tmp_path}"))
        cleanup.callback(stack.stop)
        tap = RedisTap(REDIS_URL)
        cleanup.callback(tap.close)

        stack.run(str(BIN / "dagster"), "instance", "migrate")
        stack.start("simulator", str(BIN / "animehot"), "simulator", "--port", str(simulator_port),
                    "--ips", str(ips_file), "--time-scale", TIME_SCALE, "--start", MARKET_START, "--seed", MARKET_SEED)
        code_server = stack.start("code_server", str(BIN / "dagster"), "api", "grpc", "-m", "animehot_dagster.definitions",
                                  "-a", "defs", "--host", "localhost", "--port", str(grpc_port), "--location-name", "animehot")
        stack.start("crawler", str(BIN / "animehot"), "crawler", "--shutdown-grace", "10s")
        stack.wait_for_log(code_server, "Started Dagster code server", STARTUP_TIMEOUT)
        timings["code server up"] = time.monotonic() - started
        stack.start("daemon", str(BIN / "dagster-daemon"), "run", "-w", str(REPO / "deploy" / "workspace.grpc.yaml"))
        instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))
        cleanup.callback(instance.dispose)

        print(stack.run(str(BIN / "animehot"), "import", str(ips_file)).stdout.strip())
        imported_at = time.monotonic()
        engine = create_engine(database_url)
        cleanup.callback(engine.dispose)
        with engine.connect() as connection:
            ips = {row.id: row for row in connection.execute(sa.select(ip_metadata)).all()}
        assert len(ips) == 3

        # Let the sensors run until every IP has been crawled (and its result ingested) three times.
        deadline = imported_at + CRAWL_TIMEOUT
        while True:
            stack.check_alive()
            raise_on_failed_ticks(instance)
            counts = crawls_by_ip(engine)
            if len(counts) == len(ips) and min(counts.values()) >= CRAWLS_PER_IP:
                break
            assert time.monotonic() < deadline, (
                f"crawls ingested per IP after {CRAWL_TIMEOUT} s: {counts}; queues: {queue_depths(client)}; "
                f"runs in flight: {len(runs_in_flight(instance))}"
            )
            time.sleep(POLL_SECONDS)
        timings["3 crawls per IP"] = time.monotonic() - imported_at

        # Stop dispatching, as an operator would, and let what is in flight finish.
        stack.run(str(BIN / "dagster"), "sensor", "stop", "crawl_cadence_sensor",
                  "-w", str(REPO / "deploy" / "workspace.grpc.yaml"))
        deadline, quiet = time.monotonic() + DRAIN_TIMEOUT, 0
        while quiet < 2:
            time.sleep(POLL_SECONDS)
            stack.check_alive()
            raise_on_failed_ticks(instance)
            depths = queue_depths(client)
            busy = {key: depths[key] for key in IN_FLIGHT_KEYS if depths[key]}
            in_flight = runs_in_flight(instance)
            quiet = quiet + 1 if not busy and not in_flight else 0
            assert time.monotonic() < deadline, f"did not drain: queues {busy}, runs in flight {len(in_flight)}"
        timings["drained"] = time.monotonic() - imported_at

        # -- the Dagster side: no failed tick, no failed run ------------------------------------
        raise_on_failed_ticks(instance)
        runs = list(instance.get_runs())
        failed = [run for run in runs if run.status != dg.DagsterRunStatus.SUCCESS]
        assert not failed, "runs that did not succeed: " + "; ".join(
            f"{run.job_name} {run.run_id[:8]} {run.status.value}: {run_failures(instance, run)}" for run in failed
        )
        chain_runs = [run for run in runs if run.job_name in ("crawl_chain_job", "ingest_results_job")]
        check_failures, evaluated = [], 0
        for run in chain_runs:
            for record in instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records:
                evaluation = record.event_log_entry.dagster_event.event_specific_data
                evaluated += 1
                if not evaluation.passed:
                    check_failures.append((evaluation.check_name, evaluation.asset_key.to_user_string(), run.tags.get("dagster/partition")))
        assert not check_failures, f"asset checks failed: {check_failures}"
        assert evaluated >= len(chain_runs), "the crawl chain's asset checks did not run"

        with engine.connect() as connection:
            crawls = connection.execute(sa.select(crawl_log).order_by(crawl_log.c.ip_id, crawl_log.c.crawled_at, crawl_log.c.task_id)).all()
            hourly = connection.execute(sa.select(ip_stats_hourly)).all()
            alerts = connection.execute(sa.select(ip_alerts)).all()
        by_ip = defaultdict(list)
        for crawl in crawls:
            by_ip[crawl.ip_id].append(crawl)
        assert {ip: len(c) for ip, c in by_ip.items()} == {ip: len(by_ip[ip]) for ip in ips}
        for ip_id, ip_crawls in by_ip.items():
            assert len(ip_crawls) >= CRAWLS_PER_IP
            assert [c.baseline for c in ip_crawls] == [True] + [False] * (len(ip_crawls) - 1), f"baselines of IP {ip_id}"
            assert not [c.error_message for c in ip_crawls if c.error_message not in ("", NO_ITEMS)], f"failed crawls of IP {ip_id}"

        # -- every crawl became a materialized (ip, hour) partition of the crawl chain ------------
        crawls_per_partition = defaultdict(int)
        for crawl in crawls:
            crawls_per_partition[str(crawl_partition_key(crawl.ip_id, crawl.hour_bucket))] += 1
        for asset in CHAIN:
            assert instance.get_materialized_partitions(dg.AssetKey(asset)) == set(crawls_per_partition), asset
        ingested_per_partition = defaultdict(int)
        records = instance.fetch_materializations(dg.AssetKey("mercari_crawl"), limit=10_000).records
        for record in records:
            materialization = record.asset_materialization
            ingested_per_partition[materialization.partition] += metadata_value(materialization.metadata, "ingested_now")
        # Each crawl was ingested by exactly one materialization of its own partition.
        assert dict(ingested_per_partition) == dict(crawls_per_partition)

        # -- ip_stats_hourly equals a replay of the same results -------------------------------
        pushed = tap.results()
        responses = {}
        for raw in pushed:  # a result pushed twice (a janitor retry) is one result
            responses.setdefault(decode_response(raw).task_id, raw)
        assert set(responses) == {crawl.task_id for crawl in crawls}, "the recorded results are not the crawls ingested"
        results_file = tmp_path / "results.jsonl"
        results_file.write_bytes(b"".join(raw + b"\n" for raw in responses.values()))
        replay = stack.run(str(BIN / "animehot"), "replay", str(results_file), "--ips", str(ips_file),
                           "--database-url", replay_url)
        replayed = [json.loads(line) for line in replay.stdout.splitlines() if line.strip()]
        live = [
            {
                "ip_id": row.ip_id,
                "hour_bucket": rfc3339_jst(row.hour_bucket),
                "inflow": row.inflow,
                "outflow": row.outflow,
                "liquidity_index": None if row.liquidity_index is None else float(row.liquidity_index),
            }
            for row in sorted(hourly, key=lambda r: (r.ip_id, r.hour_bucket))
        ]
        replay_engine = create_engine(replay_url)
        cleanup.callback(replay_engine.dispose)
        with replay_engine.connect() as connection:
            replay_ips = dict(connection.execute(sa.select(ip_metadata.c.id, ip_metadata.c.name)).all())
            replay_hourly = connection.execute(sa.select(ip_stats_hourly)).all()
            replay_alerts = connection.execute(sa.select(ip_alerts)).all()
        assert replay_ips == {ip_id: ip.name for ip_id, ip in ips.items()}
        assert replayed == live
        assert sum(row["inflow"] + row["outflow"] for row in live) > 0, "the market moved nothing: a vacuous comparison"

        def full_rows(rows, drop=("id", "created_at", "updated_at", "acknowledged_at")):
            return sorted((tuple((k, v) for k, v in row._mapping.items() if k not in drop) for row in rows), key=repr)

        assert full_rows(replay_hourly) == full_rows(hourly)  # prices, active counts, crawl counts too
        assert full_rows(replay_alerts) == full_rows(alerts)

        # -- alerts where the thresholds say ----------------------------------------------------
        # Ingest evaluates every hour a crawl recomputed and the liquidity_alerts asset the hour
        # after the run; event-time figures revise hours after their crawls, and an alert once
        # raised is kept (write_alerts only upserts). So each stored alert records figures the
        # hour held when it was raised: its value crosses its own rule's threshold.
        crosses = {
            "high_outflow": lambda value, threshold: value >= threshold,
            "low_liquidity": lambda value, threshold: value < threshold,
            "surge": lambda value, threshold: value > threshold,
        }
        actual = {(a.ip_id, a.hour_bucket, a.alert_type): a.actual_value for a in alerts}
        hours_with_rows = {(row.ip_id, row.hour_bucket) for row in hourly}
        for alert in alerts:
            assert crosses[alert.alert_type](alert.actual_value, alert.threshold), alert
            assert (alert.ip_id, alert.hour_bucket) in hours_with_rows, alert
        # And the final figures of every hour raise exactly what its stored hourly row says.
        for row in hourly:
            final = {a.alert_type.value for a in evaluate(row.inflow, row.outflow, row.liquidity_index, thresholds)}
            assert final <= {t for (ip_id, hour, t) in actual if (ip_id, hour) == (row.ip_id, row.hour_bucket)}
        assert alerts, f"no alert at all: pick thresholds the market crosses (hourly rows: {live})"

        # -- the cadence: each crawl's interval and next time, and the ZSET ----------------------
        for ip_id, ip_crawls in by_ip.items():
            current = policy.current_interval(Decimal(str(ips[ip_id].weight)), ips[ip_id].crawl_interval_minutes)
            for crawl in ip_crawls:
                failed_crawl = crawl.error_message not in ("", NO_ITEMS)
                decision = decide(policy, current, crawl.inflow, crawl.outflow, crawl.crawled_at, crawl.processed_at,
                                  measured=not (failed_crawl or crawl.baseline))
                assert (crawl.interval_minutes, to_unix(crawl.next_crawl_at)) == (
                    decision.interval // timedelta(minutes=1), to_unix(decision.next_crawl_at)
                ), f"IP {ip_id} crawl {crawl.task_id}"
                current = decision.interval
        schedule = {int(member): int(score) for member, score in client.zrange(keys.SCHEDULE, 0, -1, withscores=True)}
        assert schedule == {ip_id: to_unix(ip_crawls[-1].next_crawl_at) for ip_id, ip_crawls in by_ip.items()}

        # -- nothing left anywhere -------------------------------------------------------------
        depths = queue_depths(client)
        assert {key: n for key, n in depths.items() if n and key not in (keys.SCHEDULE, keys.PROCESSED)} == {}
        assert depths[keys.PROCESSED] == len(crawls)

        timings["total"] = time.monotonic() - started
        print("\nend to end:", json.dumps({k: round(v, 1) for k, v in timings.items()}),
              f"crawls={len(crawls)} partitions={len(crawls_per_partition)} runs={len(runs)} "
              f"chain_runs={len(chain_runs)} alerts={len(alerts)}")
        for row in live:
            print("  hourly", json.dumps(row))
        for alert in sorted(alerts, key=lambda a: (a.ip_id, a.hour_bucket, a.alert_type)):
            print("  alert", alert.ip_id, rfc3339_jst(alert.hour_bucket), alert.alert_type, alert.actual_value)
