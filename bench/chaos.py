"""Chaos: the local system under random faults for N minutes, then proof that nothing was lost,
nothing applied twice, the figures are what a replay of the applied crawls gives, no queue holds a
stuck message, and how long each fault took to recover from.

    .venv/bin/python -m bench.chaos [--minutes 20] [--seed 1] [--faults KINDS] [--json]
        [--server-url mysql+pymysql://root@127.0.0.1:3306] [--dir var/chaos/<time>] [--keep]

The system is the one ``animehot up`` runs (animehot_dagster.stack.system.LocalSystem, with its
Supervisor restarting dead pieces with backoff): the market simulator, one crawler node, the
Dagster code server and daemon, the API, and the embedded redis-server with its append-only file
(fsync every second), on the compressed cadence, with 10 IPs. The project's tables are on a
private mariadbd (animehot_dagster.stack.private_servers), so that it can be stopped and hung;
Dagster's instance and the replay are on --server-url, in fresh databases dropped at the end.

Faults, one at a time in a random order (each kind once per round), a random pause between them:
``crawler``, ``daemon``, ``code_server``, ``api`` (SIGKILL of the piece's process group; the
supervisor restarts it), ``redis`` (SIGKILL of the embedded redis-server; the supervisor restarts
it on its append-only file), ``db_stop`` (mariadbd shut down for a while, then started again) and
``db_hang`` (mariadbd SIGSTOPped for a while, then SIGCONTed). After each fault the harness waits
for the system to recover before the next one:

- crawler: the next successful crawl pushed after the kill;
- daemon, code_server, redis: the first ingest (crawl_log.processed_at) of a crawl pushed after
  the fault (a daemon kill leaves runs already launched to finish, so an ingest of an older crawl
  would prove nothing);
- api: the next 200 of ``GET /api/v1/ips`` (a database read);
- db_stop, db_hang: the first ingest and the first API 200 after the database is back.

Recovery times include the wait for the next crawl the cadence dispatches (10 IPs on 1-2 minute
intervals: a crawl every ~10 s) and for the results sensor's next tick (every 10 s at least).

What the crawler pushed is read from the node's own results log (``animehot crawler
--results-log``, CRAWLER_RESULTS_LOG: a line before each push with the result, a line after Redis
took it). At the end (cadence sensor stopped, queues drained, system stopped) every task a node
pushed is classified: applied (a crawl_log row, keyed by task_id), dead-lettered (with its
reason), lost to a Redis kill (every confirmed push of it in the last REDIS_LOSS_WINDOW seconds
before a kill: what ``appendfsync everysec`` may lose; counted and shown, not hidden), never
confirmed pushed (the node died or Redis failed between the two lines, and it was not applied), or
lost. Applied twice: two crawl_log rows of the same crawl (ip, crawled_at, items) or a row whose
task no node pushed. The applied crawls, as pushed, are replayed with ``animehot replay`` into a
fresh database and every hourly row is compared, column by column, with the system's.

Prints a table (``--json``: the figures as JSON on stdout, progress on stderr); exits 1 when an
invariant does not hold. Every process it starts is stopped and the scratch databases dropped,
pass or fail; the run directory (logs, the results log, the replayed results) is kept.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pymysql
import redis
import sqlalchemy as sa

from animehot_dagster.domain.messages import NO_ITEMS
from animehot_dagster.domain.timebuckets import rfc3339_jst
from animehot_dagster.queue import keys
from animehot_dagster.queue.payloads import read_dead_letter
from animehot_dagster.stack.private_servers import PrivateMariaDB
from animehot_dagster.stack.processes import Service
from animehot_dagster.stack.system import BIN, GRPC_WORKSPACE, REPO, LocalSystem, SystemConfig
from animehot_dagster.storage.db import create_engine
from animehot_dagster.storage.schema import crawl_log, ip_metadata, ip_stats_hourly

IPS_FILE = REPO.parent / "shared" / "data" / "ips_sample.json"
DEFAULT_SERVER_URL = "mysql+pymysql://root@127.0.0.1:3306"
PROCESS_KILLS = ("crawler", "daemon", "code_server", "api")
FAULT_KINDS = (*PROCESS_KILLS, "redis", "db_stop", "db_hang")
DB_FAULTS = ("db_stop", "db_hang")
# appendfsync everysec: Redis fsyncs the append-only file every second, in the background; a
# crash can lose what was written since (up to 2 s when an fsync is slow, says the Redis manual).
REDIS_LOSS_WINDOW = 2.0
# The system's environment on top of the compressed cadence of LocalSystem.
CHAOS_ENV = {
    # The janitor returns what a killed piece held: within a minute and a half, not 10-15 min.
    "JANITOR_INTERVAL": "1m",
    "JANITOR_TIMEOUT": "90s",
    "APP_ENV": "local",
    "HTTP_PROXY": "",
    "AUTO_MIGRATE": "true",
}
API_PROBE = "/api/v1/ips?page_size=1"
API_PROBE_EVERY = 1.0
API_PROBE_TIMEOUT = 10.0
WARMUP_TIMEOUT = 300
RECOVERY_TIMEOUT = 300
DRAIN_TIMEOUT = 420
IN_FLIGHT = (keys.TASKS, keys.TASKS_PROCESSING, keys.RESULTS, keys.RESULTS_PROCESSING)
HOURLY_DROP = ("id", "created_at", "updated_at")


def progress(message: str) -> None:
    print(f"[chaos {datetime.now(UTC).strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- what happened: the node's results log, the crawl log, the API probe ------------------------


@dataclasses.dataclass
class Push:
    task_id: str
    ip_id: int
    crawled_at: int
    error: str
    at: float  # when the node wrote the line
    confirmed: bool = False  # Redis took it ("pushed" line)
    confirmed_at: float | None = None
    raw: str = ""  # the result as sent

    @property
    def successful(self) -> bool:
        return self.error in ("", NO_ITEMS)


def read_results_log(path: Path) -> list[Push]:
    """Each push of the node, in order: its "pushing" line (with the result) joined to the
    "pushed" line that follows it."""
    pushes: list[Push] = []
    open_by_task: dict[tuple[str, int], Push] = {}
    if not path.exists():
        return pushes
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # a node killed mid-write (cannot happen with O_APPEND, but be safe)
        key = (entry["task_id"], int(entry["crawled_at"]))
        if entry["event"] == "pushing":
            push = Push(entry["task_id"], int(entry["ip_id"]), int(entry["crawled_at"]), entry.get("error", ""),
                        float(entry["at"]), raw=entry.get("result", ""))
            pushes.append(push)
            open_by_task[key] = push
        elif entry["event"] == "pushed" and key in open_by_task:
            push = open_by_task.pop(key)
            push.confirmed, push.confirmed_at = True, float(entry["at"])
    return pushes


def mysql_params(url: str) -> dict:
    parsed = sa.engine.make_url(url)
    return {"host": parsed.host or "127.0.0.1", "port": parsed.port or 3306, "user": parsed.username or "root",
            "password": parsed.password or "", "database": parsed.database}


def read_ingests(database_url: str) -> list[tuple[str, float]] | None:
    """(task_id, processed_at as unix seconds) of every crawl applied; None if the database does
    not answer within a few seconds (it may be down or hung: that is the point)."""
    try:
        connection = pymysql.connect(**mysql_params(database_url), connect_timeout=2, read_timeout=4, write_timeout=4)
    except pymysql.MySQLError:
        return None
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT task_id, processed_at FROM crawl_log")
            return [(task_id, processed.replace(tzinfo=UTC).timestamp()) for task_id, processed in cursor.fetchall()]
    except pymysql.MySQLError:
        return None
    finally:
        with contextlib.suppress(Exception):
            connection.close()


@dataclasses.dataclass
class Probe:
    sent: float
    seconds: float
    status: int | None  # None: no answer (refused, timed out)


class ApiProbe(threading.Thread):
    """GET API_PROBE every second for the whole run; the URL follows the API's restarts (same port)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True, name="api-probe")
        self.url = url
        self.probes: list[Probe] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=API_PROBE_TIMEOUT, trust_env=False) as client:
            while not self.stopping.is_set():
                sent = time.time()
                try:
                    status = client.get(self.url).status_code
                except httpx.HTTPError:
                    status = None
                self.probes.append(Probe(sent, time.time() - sent, status))
                self.stopping.wait(max(0.0, API_PROBE_EVERY - (time.time() - sent)))


# -- faults ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class Fault:
    kind: str
    at: float  # unix time of the fault
    restored_at: float | None = None  # database faults: when it was back
    recovered_at: float | None = None
    crawl_at: float | None = None  # the first successful crawl pushed after the fault
    detail: str = ""

    @property
    def outage(self) -> float | None:
        return None if self.restored_at is None else self.restored_at - self.at

    @property
    def recovery(self) -> float | None:
        return None if self.recovered_at is None else self.recovered_at - self.at


def recovery_time(fault: Fault, pushes: list[Push], ingests: list[tuple[str, float]] | None,
                  probes: list[Probe]) -> float | None:
    """When the system had recovered from ``fault`` (see the module's doc), or None if not yet."""
    start = fault.restored_at or fault.at
    crawls = [p.confirmed_at for p in pushes if p.confirmed and p.successful and p.confirmed_at > fault.at]
    fault.crawl_at = min(crawls) if crawls else None
    api = next((p.sent + p.seconds for p in probes if p.status == 200 and p.sent >= start), None)
    if fault.kind == "crawler":
        return fault.crawl_at
    if fault.kind == "api":
        return api
    if ingests is None:
        return None
    if fault.kind in DB_FAULTS:
        # processed_at has whole seconds: an ingest in the second the database came back counts.
        after = [at for _, at in ingests if at >= int(start)]
        return max(min(after), api) if after and api is not None else None
    pushed_after = {p.task_id for p in pushes if p.confirmed and p.at > fault.at}
    after = [at for task_id, at in ingests if task_id in pushed_after and at >= int(fault.at)]
    return max(min(after), fault.crawl_at or 0) if after else None


# -- the run --------------------------------------------------------------------------------------


@dataclasses.dataclass
class ChaosConfig:
    minutes: float = 20.0
    seed: int = 1
    faults: tuple[str, ...] = FAULT_KINDS
    server_url: str = DEFAULT_SERVER_URL
    workdir: Path | None = None
    ips_file: Path = IPS_FILE
    pause: tuple[float, float] = (5.0, 20.0)  # between a recovery and the next fault
    outage: tuple[float, float] = (8.0, 20.0)  # how long the database stays stopped or hung
    recovery_timeout: float = RECOVERY_TIMEOUT


class ChaosRun:
    """The system, its faults and its audit. ``start`` → ``inject`` → ``drain`` → ``audit``; ``close``
    stops everything and drops the scratch databases (the audit can run again before that)."""

    def __init__(self, config: ChaosConfig) -> None:
        self.config = config
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self.workdir = (config.workdir or REPO / "var" / "chaos" / stamp).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.results_log = self.workdir / "crawler-results.jsonl"
        self.rng = random.Random(config.seed)
        self.suffix = uuid.uuid4().hex[:8]
        self.faults: list[Fault] = []
        self.cleanup = contextlib.ExitStack()
        self.system: LocalSystem | None = None
        self.database: PrivateMariaDB | None = None
        self.probe: ApiProbe | None = None
        self.started = time.time()
        self.faults_started: float | None = None
        self.faults_ended: float | None = None
        self.drained: dict = {}
        self.stopped = False
        self.redis_state: dict | None = None
        self.replays = 0

    # -- scratch databases on the shared server -----------------------------------------------

    def _shared_database(self, prefix: str) -> str:
        name = f"{prefix}_{self.suffix}"
        server = sa.create_engine(self.config.server_url)
        with server.begin() as connection:
            connection.execute(sa.text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))

        def drop() -> None:
            with server.begin() as connection:
                connection.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
            server.dispose()

        self.cleanup.callback(drop)
        return name

    # -- start ----------------------------------------------------------------------------------

    def start(self) -> None:
        progress(f"run directory {self.workdir}")
        self.database = PrivateMariaDB()
        self.cleanup.callback(self.database.remove)
        progress(f"private mariadbd on port {self.database.port} (the database the faults hit)")
        self.database.start()
        self.database_url = self.database.create_database("animehot_chaos")
        dagster_db = self._shared_database("animehot_chaos_dagster")
        server = self.config.server_url.rstrip("/")
        env = {name: value for name, value in os.environ.items()
               if name not in ("REDIS_URL", "REDIS_HOST", "DATABASE_URL", "MYSQL_HOST", "DAGSTER_MYSQL_URL",
                               "DAGSTER_HOME", "DAGSTER_GRPC_HOST", "DAGSTER_GRPC_PORT", "ADMIN_API_KEY")}
        env |= CHAOS_ENV | {
            "DATABASE_URL": self.database_url,
            "DAGSTER_MYSQL_URL": f"{server.replace('+pymysql', '+mysqlconnector')}/{dagster_db}",
            "CRAWLER_RESULTS_LOG": str(self.results_log),
            "PYTHONUNBUFFERED": "1",
        }
        self.ips_file = self.workdir / "ips.json"
        self.ips_file.write_bytes(self.config.ips_file.read_bytes())
        config = SystemConfig(workdir=self.workdir, ips_file=self.ips_file,
                              components=frozenset({"simulator", "crawler", "dagster", "api"}),
                              seed=self.config.seed, api_port=0, metrics_port=0, webserver_port=0, simulator_port=0)
        self.system = LocalSystem(config, env, log=lambda line: progress(f"system: {line}"))
        self.cleanup.callback(self.stop_system)
        self.system.start()
        self.redis = redis.Redis.from_url(self.system.endpoints.redis, socket_timeout=5, socket_connect_timeout=2)
        self.cleanup.callback(self.redis.close)
        self.probe = ApiProbe(self.system.endpoints.api + API_PROBE)
        self.probe.start()
        self.cleanup.callback(self.stop_probe)
        engine = create_engine(self.database_url)
        with engine.connect() as connection:
            self.ip_count = connection.execute(sa.select(sa.func.count()).select_from(ip_metadata)).scalar_one()
        engine.dispose()
        progress(f"system up with {self.ip_count} IPs; waiting for a first crawl of each and a first ingest")
        deadline = time.monotonic() + WARMUP_TIMEOUT
        while True:
            self.supervise(1.0)
            ingests = read_ingests(self.database_url) or []
            crawled = {p.ip_id for p in read_results_log(self.results_log) if p.confirmed}
            if len(crawled) >= self.ip_count and ingests:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"no warm-up within {WARMUP_TIMEOUT} s: {len(crawled)} IPs crawled, "
                                   f"{len(ingests)} ingests; logs in {self.workdir}")
        progress(f"warm: every IP crawled, {len(ingests)} crawls ingested")

    def service(self, name: str) -> Service:
        return next(s for s in self.system.stack.services if s.name == name)

    def supervise(self, seconds: float) -> None:
        """Let the supervisor restart what died, for ``seconds``."""
        end = time.monotonic() + seconds
        while True:
            self.system.supervise()
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(0.25, left))

    # -- faults ---------------------------------------------------------------------------------

    def inject(self) -> None:
        """Faults at random until ``minutes`` have passed, each followed by its recovery."""
        self.faults_started = time.time()
        end = time.monotonic() + self.config.minutes * 60
        order: list[str] = []
        while time.monotonic() < end:
            if not order:
                order = list(self.config.faults)
                self.rng.shuffle(order)
            kind = order.pop()
            self.supervise(self.rng.uniform(*self.config.pause))
            if time.monotonic() >= end:
                break
            fault = self.fault(kind)
            self.faults.append(fault)
            self.await_recovery(fault)
        self.faults_ended = time.time()

    def fault(self, kind: str) -> Fault:
        if kind in PROCESS_KILLS or kind == "redis":
            service = self.service(kind)
            deadline = time.monotonic() + 60
            while service.process.poll() is not None and time.monotonic() < deadline:
                self.supervise(0.5)  # it died by itself: kill the one the supervisor brings back
            pid = service.process.pid
            fault = Fault(kind, time.time(), detail=f"SIGKILL pid {pid}")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            progress(f"fault: {kind} killed (pid {pid})")
            return fault
        outage = self.rng.uniform(*self.config.outage)
        if kind == "db_stop":
            fault = Fault(kind, time.time(), detail=f"mariadbd shut down for {outage:.0f} s")
            progress(f"fault: database shut down for {outage:.0f} s")
            self.database.stop()
            self.supervise(max(0.0, fault.at + outage - time.time()))
            self.database.start()
        elif kind == "db_hang":
            fault = Fault(kind, time.time(), detail=f"mariadbd SIGSTOPped for {outage:.0f} s")
            progress(f"fault: database hung (SIGSTOP) for {outage:.0f} s")
            os.kill(self.database.process.pid, signal.SIGSTOP)
            try:
                self.supervise(outage)
            finally:
                os.kill(self.database.process.pid, signal.SIGCONT)
        else:
            raise ValueError(f"unknown fault {kind!r}; the kinds are {', '.join(FAULT_KINDS)}")
        fault.restored_at = time.time()
        return fault

    def await_recovery(self, fault: Fault) -> None:
        deadline = time.monotonic() + self.config.recovery_timeout
        while time.monotonic() < deadline:
            self.supervise(1.0)
            recovered = recovery_time(fault, read_results_log(self.results_log), read_ingests(self.database_url),
                                      list(self.probe.probes))
            if recovered is not None:
                fault.recovered_at = recovered
                progress(f"recovered from {fault.kind} after {fault.recovery:.1f} s")
                return
        progress(f"NOT recovered from {fault.kind} within {self.config.recovery_timeout:.0f} s")

    # -- the end --------------------------------------------------------------------------------

    def depths(self) -> dict[str, int]:
        with self.redis.pipeline(transaction=False) as pipe:
            for key, command in keys.MEASURED_KEYS:
                getattr(pipe, command)(key)
            return dict(zip((key for key, _ in keys.MEASURED_KEYS), pipe.execute(), strict=True))

    def drain(self) -> None:
        """Stop the cadence, as an operator would, and wait until nothing is queued or held for
        three polls in a row (the janitor returns what dead pieces held)."""
        progress("faults over; stopping the cadence sensor and draining")
        started = time.monotonic()
        daemon_log = self.service("daemon").log
        stops, quiet, depths, stopped_at = 0, 0, {}, None
        while quiet < 3:
            # The sensor counts as stopped once the daemon has not ticked it for 40 s (it ticks
            # every 30 s) after the stop; otherwise the stop is issued again.
            if stopped_at is None or cadence_ticked(daemon_log, stopped_at + 5):
                if stops >= 5:
                    raise RuntimeError("the cadence sensor keeps ticking after 5 stops")
                stops += 1
                try:
                    began = time.monotonic()
                    done = self.system.stack.run(
                        str(BIN / "dagster"), "sensor", "stop", "crawl_cadence_sensor", "-w", str(GRPC_WORKSPACE))
                    stopped_at = time.time()
                    progress(f"{done.stdout.strip()[-200:]} (attempt {stops}, {time.monotonic() - began:.1f} s)")
                except Exception as exc:  # noqa: BLE001 - the code server may be restarting
                    progress(f"dagster sensor stop failed ({exc}); retrying")
                quiet = 0
            self.supervise(5)
            try:
                depths = self.depths()
            except redis.RedisError:
                quiet = 0
                continue
            idle = not any(depths[key] for key in IN_FLIGHT)
            quiet = quiet + 1 if idle and stopped_at is not None and time.time() > stopped_at + 40 else 0
            if time.monotonic() - started > DRAIN_TIMEOUT:
                progress(f"did not drain within {DRAIN_TIMEOUT} s: {depths}")
                break
        self.drained = {"seconds": round(time.monotonic() - started, 1), "sensor_stops": stops}
        progress(f"drained in {self.drained['seconds']} s")
        self.snapshot_redis()

    def snapshot_redis(self) -> dict:
        """What the queues hold, read before the system (and its Redis) stops."""
        lists = {key: self.redis.lrange(key, 0, -1)
                 for key in (*IN_FLIGHT, keys.TASKS_DEADLETTER, keys.RESULTS_DEADLETTER)}
        self.redis_state = {
            "depths": self.depths(),
            "lists": lists,
            "dead_letters": {key: lists[key] for key in (keys.TASKS_DEADLETTER, keys.RESULTS_DEADLETTER)},
        }
        return self.redis_state

    def stop_probe(self) -> None:
        if self.probe is not None:
            self.probe.stopping.set()
            self.probe.join(API_PROBE_TIMEOUT + 2)

    def stop_system(self) -> None:
        if self.system is not None and not self.stopped:
            self.stopped = True
            self.stop_probe()
            self.system.stop()

    def close(self) -> None:
        self.cleanup.close()

    # -- the audit ------------------------------------------------------------------------------

    def run_and_audit(self) -> dict:
        """Start the system, inject the faults, drain, stop, and audit what was pushed."""
        self.start()
        self.inject()
        self.drain()
        self.stop_system()
        return self.audit()

    def audit(self) -> dict:
        """The figures and the invariants, from what the node logged, the database and Redis."""
        pushes = read_results_log(self.results_log)
        engine = create_engine(self.database_url)
        try:
            with engine.connect() as connection:
                crawls = connection.execute(sa.select(crawl_log)).mappings().all()
                hourly = connection.execute(sa.select(ip_stats_hourly)).mappings().all()
                ips = dict(connection.execute(sa.select(ip_metadata.c.id, ip_metadata.c.name)).all())
        finally:
            engine.dispose()
        redis_state = self.redis_state or self.snapshot_redis()
        letters = {key: [read_dead_letter(e) for e in entries] for key, entries in redis_state["dead_letters"].items()}
        depths = redis_state["depths"]
        queues = {"in_flight": {key: depths[key] for key in IN_FLIGHT},
                  "bookkeeping": {key: depths[key] for key in (keys.TASKS_PENDING, keys.TASKS_STARTED,
                                                               keys.RESULTS_STARTED)},
                  "dead_letters": {key: len(entries) for key, entries in letters.items()}}
        crawls_out = classify(pushes, crawls, letters[keys.RESULTS_DEADLETTER],
                              [f.at for f in self.faults if f.kind == "redis"])
        replay = self.replay(pushes, crawls, hourly, ips)
        for fault in self.faults:  # the first crawl after each fault, from the whole log
            crawls_after = [p.confirmed_at for p in pushes if p.confirmed and p.successful and p.confirmed_at > fault.at]
            fault.crawl_at = min(crawls_after, default=None)
        faults = [fault_row(f, self.started, list(self.probe.probes) if self.probe else []) for f in self.faults]
        violations = list(crawls_out.pop("violations"))
        if not replay["equal"]:
            violations.append(f"hourly rows differ from the replay: {replay['differences']} row(s)")
        stuck = {key: n for key, n in queues["in_flight"].items() if n}
        if stuck:
            violations.append(f"messages left in flight: {stuck}")
        duplicates = [key for key, entries in redis_state["lists"].items() if len(set(entries)) != len(entries)]
        if duplicates:
            violations.append(f"a message held twice in {duplicates}")
        unreasoned = [key for key, entries in letters.items() if any(not e.reason for e in entries)]
        if unreasoned:
            violations.append(f"dead letters without a reason in {unreasoned}")
        not_recovered = [f"{f.kind} at +{f.at - self.started:.0f} s" for f in self.faults if f.recovered_at is None]
        if not_recovered:
            violations.append(f"not recovered within {self.config.recovery_timeout:.0f} s: {not_recovered}")
        return {
            "run": {
                "seed": self.config.seed,
                "minutes": self.config.minutes,
                "fault_kinds": list(self.config.faults),
                "ips": len(ips),
                "started_at": datetime.fromtimestamp(self.started, UTC).strftime("%Y-%m-%d %H:%M:%S"),
                "fault_seconds": round((self.faults_ended or time.time()) - (self.faults_started or self.started), 1),
                "wall_seconds": round(time.time() - self.started, 1),
                "workdir": str(self.workdir),
                "restarts": {s.name: s.restarts for s in self.system.stack.services} if self.system else {},
                "drain": self.drained,
            },
            "faults": faults,
            "recovery": recovery_summary(self.faults),
            "crawls": crawls_out,
            "replay": replay,
            "queues": queues,
            "dead_letter_reasons": dict(collections.Counter(
                reason_kind(e.reason) for entries in letters.values() for e in entries)),
            "violations": violations,
            "ok": not violations,
        }

    def replay(self, pushes: list[Push], crawls, hourly, ips: dict[int, str]) -> dict:
        """``animehot replay`` of the applied crawls, as pushed, into a fresh database; its hourly
        rows against the system's, every column."""
        by_key = {(p.task_id, p.crawled_at): p for p in pushes}
        applied = []
        for crawl in crawls:
            push = by_key.get((crawl["task_id"], int(crawl["crawled_at"].timestamp())))
            if push is not None:
                applied.append(push)
        applied.sort(key=lambda p: (p.crawled_at, p.ip_id, p.task_id))
        results_file = self.workdir / "applied-results.jsonl"
        results_file.write_text("".join(p.raw + "\n" for p in applied), encoding="utf-8")
        # A fresh database for each replay (an audit may run more than once).
        self.replays += 1
        replay_url = f"{self.config.server_url.rstrip('/')}/{self._shared_database(f'animehot_chaos_replay{self.replays}')}"
        replay_url += "?charset=utf8mb4"
        env = {**self.system.env, "DATABASE_URL": replay_url}
        subprocess.run([str(BIN / "animehot"), "migrate", "--database-url", replay_url], env=env, cwd=REPO,
                       check=True, capture_output=True, timeout=300)
        done = subprocess.run([str(BIN / "animehot"), "replay", str(results_file), "--ips", str(self.ips_file),
                               "--database-url", replay_url], env=env, cwd=REPO, capture_output=True,
                              text=True, timeout=900, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"animehot replay failed ({done.returncode}): {done.stderr[-2000:]}")
        printed = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
        live = [{"ip_id": r["ip_id"], "hour_bucket": rfc3339_jst(r["hour_bucket"]), "inflow": r["inflow"],
                 "outflow": r["outflow"],
                 "liquidity_index": None if r["liquidity_index"] is None else float(r["liquidity_index"])}
                for r in sorted(hourly, key=lambda r: (r["ip_id"], r["hour_bucket"]))]
        engine = create_engine(replay_url)
        try:
            with engine.connect() as connection:
                replay_hourly = connection.execute(sa.select(ip_stats_hourly)).mappings().all()
                replay_ips = dict(connection.execute(sa.select(ip_metadata.c.id, ip_metadata.c.name)).all())
        finally:
            engine.dispose()

        def rows(table) -> dict:
            return {(r["ip_id"], r["hour_bucket"]): {k: v for k, v in r.items() if k not in HOURLY_DROP} for r in table}

        ours, theirs = rows(hourly), rows(replay_hourly)
        differing = sorted(key for key in ours.keys() | theirs.keys() if ours.get(key) != theirs.get(key))
        examples = [{"ip_id": ip_id, "hour_bucket": rfc3339_jst(hour),
                     "system": jsonable(ours.get((ip_id, hour))), "replay": jsonable(theirs.get((ip_id, hour)))}
                    for ip_id, hour in differing[:3]]
        return {
            "results_replayed": len(applied),
            "hourly_rows": len(ours),
            "replay_hourly_rows": len(theirs),
            "printed_rows_equal": printed == live,
            "ids_equal": replay_ips == ips,
            "differences": len(differing) + (0 if printed == live else 1) + (0 if replay_ips == ips else 1),
            "equal": not differing and printed == live and replay_ips == ips,
            "examples": examples,
            "inflow": sum(r["inflow"] for r in live),
            "outflow": sum(r["outflow"] for r in live),
            "command": f"animehot replay {results_file} --ips {self.ips_file} --database-url <fresh database>",
        }


def cadence_ticked(daemon_log: Path, since: float) -> bool:
    """Whether the daemon's log shows a tick of the cadence sensor after unix time ``since``."""
    marker = "Checking for new runs for sensor: crawl_cadence_sensor"
    try:
        lines = daemon_log.read_text(errors="replace").splitlines()
    except OSError:
        return False
    for line in reversed(lines):
        if marker not in line:
            continue
        stamp = line[line.find("20"):][:25]  # "2026-12-02 04:03:48 +0000", after the colour codes
        try:
            at = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S %z").timestamp()
        except ValueError:
            continue
        return at > since
    return False


def jsonable(value):
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return rfc3339_jst(value)
    return value


def reason_kind(reason: str) -> str:
    return reason.split(":", 1)[0].strip() or "(none)"


def classify(pushes: list[Push], crawls, dead_results: list, redis_kills: list[float]) -> dict:
    """Every task a node pushed: applied, its result dead-lettered (``dead_results``: the results
    dead-letter list, read), lost to a Redis kill, never confirmed pushed, or lost; and crawls
    applied twice or applied without a push. A dead-lettered *task* does not account for a result
    pushed for it: that result must still be applied or dead-lettered itself."""
    by_task: dict[str, list[Push]] = collections.defaultdict(list)
    for push in pushes:
        by_task[push.task_id].append(push)
    applied_rows: dict[str, list] = collections.defaultdict(list)
    for crawl in crawls:
        applied_rows[crawl["task_id"]].append(crawl)
    dead = {}
    for entry in dead_results:
        try:
            task_id = json.loads(entry.payload).get("taskId")
        except (json.JSONDecodeError, AttributeError, UnicodeDecodeError):
            task_id = None
        if task_id:
            dead.setdefault(task_id, entry.reason)
    outcome: dict[str, str] = {}
    lost_to_redis, lost, unconfirmed = [], [], []
    for task_id, task_pushes in by_task.items():
        if applied_rows.get(task_id):
            outcome[task_id] = "applied"
        elif task_id in dead:
            outcome[task_id] = "dead_lettered"
        elif not any(p.confirmed for p in task_pushes):
            outcome[task_id] = "never_confirmed"
            unconfirmed.append(task_id)
        elif redis_kills and all(
            any(0 <= kill - p.confirmed_at <= REDIS_LOSS_WINDOW for kill in redis_kills)
            for p in task_pushes if p.confirmed
        ):
            outcome[task_id] = "lost_to_redis_kill"
            lost_to_redis.append(task_id)
        else:
            outcome[task_id] = "lost"
            lost.append(task_id)
    # Applied twice: more crawl_log rows of one crawl (IP and crawl time) than tasks the node
    # pushed for it. The key makes two rows of one task_id impossible, so a second apply would
    # have come under another id; two tasks of one IP crawled in the same second are two crawls.
    rows = collections.Counter((c["ip_id"], int(c["crawled_at"].timestamp())) for c in crawls)
    tasks_pushed = collections.defaultdict(set)
    for push in pushes:
        tasks_pushed[(push.ip_id, push.crawled_at)].add(push.task_id)
    twice = sorted(f"ip {ip} crawled_at {at}" for (ip, at), n in rows.items() if n > max(1, len(tasks_pushed[(ip, at)])))
    not_pushed = sorted(task_id for task_id in applied_rows if task_id not in by_task)
    counts = collections.Counter(outcome.values())
    violations = []
    if lost:
        violations.append(f"{len(lost)} pushed crawl(s) neither applied nor dead-lettered: {lost[:5]}")
    if twice:
        violations.append(f"{len(twice)} crawl(s) applied twice: {twice[:5]}")
    if not_pushed:
        violations.append(f"{len(not_pushed)} crawl(s) applied that no node pushed: {not_pushed[:5]}")
    if not by_task:
        violations.append("no crawl was pushed: a vacuous run")
    return {
        "pushes": len(pushes),
        "pushed_tasks": len(by_task),
        "pushed_more_than_once": sum(1 for p in by_task.values() if len(p) > 1),
        "applied": counts["applied"],
        "applied_failed_crawls": sum(1 for c in crawls if c["error_message"] not in ("", NO_ITEMS)),
        "dead_lettered": counts["dead_lettered"],
        "lost_to_redis_kill": counts["lost_to_redis_kill"],
        "never_confirmed_pushed": counts["never_confirmed"],
        "lost": counts["lost"],
        "applied_twice": len(twice),
        "applied_not_pushed": len(not_pushed),
        "crawl_log_rows": len(crawls),
        "lost_to_redis_kill_tasks": lost_to_redis,
        "lost_tasks": lost,
        "never_confirmed_tasks": unconfirmed,
        "violations": violations,
    }


def fault_row(fault: Fault, started: float, probes: list[Probe]) -> dict:
    row = {"kind": fault.kind, "at_seconds": round(fault.at - started, 1), "detail": fault.detail,
           "outage_seconds": None if fault.outage is None else round(fault.outage, 1),
           "first_crawl_after_seconds": None if fault.crawl_at is None else round(fault.crawl_at - fault.at, 1),
           "recovery_seconds": None if fault.recovery is None else round(fault.recovery, 1)}
    if fault.restored_at is not None:
        during = [p for p in probes if fault.at <= p.sent < fault.restored_at]
        row["api_during_outage"] = {
            "probes": len(during),
            "statuses": dict(collections.Counter(str(p.status) for p in during)),
            "slowest_seconds": round(max((p.seconds for p in during), default=0.0), 2),
        }
    return row


def recovery_summary(faults: list[Fault]) -> dict:
    summary = {}
    for kind in FAULT_KINDS:
        times = [f.recovery for f in faults if f.kind == kind and f.recovery is not None]
        count = sum(1 for f in faults if f.kind == kind)
        if count:
            summary[kind] = {"faults": count, "recovered": len(times),
                             "median_seconds": round(statistics.median(times), 1) if times else None,
                             "max_seconds": round(max(times), 1) if times else None}
    return summary


# -- the table ------------------------------------------------------------------------------------


def render(result: dict) -> str:
    run, crawls, replay, queues = result["run"], result["crawls"], result["replay"], result["queues"]
    lines = [f"chaos run: seed {run['seed']}, {run['fault_seconds']:.0f} s of faults ({len(result['faults'])} "
             f"faults), {run['ips']} IPs, wall {run['wall_seconds']:.0f} s; logs in {run['workdir']}", ""]
    lines += ["| fault | count | recovered | recovery median | recovery max |", "|---|---|---|---|---|"]
    for kind, s in result["recovery"].items():
        lines.append(f"| {kind} | {s['faults']} | {s['recovered']} | {fmt_s(s['median_seconds'])} | "
                     f"{fmt_s(s['max_seconds'])} |")
    lines += ["", "| crawls | |", "|---|---|"]
    for label, key in (("pushed by the node (tasks)", "pushed_tasks"), ("pushes (a task re-crawled counts again)", "pushes"),
                       ("applied exactly once", "applied"), ("dead-lettered with a reason", "dead_lettered"),
                       ("lost to Redis kills (appendfsync everysec)", "lost_to_redis_kill"),
                       ("never confirmed pushed (node or Redis died mid-push), not applied", "never_confirmed_pushed"),
                       ("**lost**", "lost"), ("**applied twice**", "applied_twice"),
                       ("**applied, never pushed**", "applied_not_pushed")):
        lines.append(f"| {label} | {crawls[key]} |")
    lines += ["", "| checks | |", "|---|---|",
              f"| hourly rows = `animehot replay` of the applied crawls | {'yes' if replay['equal'] else 'NO'} "
              f"({replay['hourly_rows']} rows, {replay['results_replayed']} results, inflow {replay['inflow']}, "
              f"outflow {replay['outflow']}) |",
              f"| messages in flight at the end | {sum(queues['in_flight'].values())} |",
              f"| dead letters (tasks, results) | {queues['dead_letters'].get(keys.TASKS_DEADLETTER, 0)}, "
              f"{queues['dead_letters'].get(keys.RESULTS_DEADLETTER, 0)} "
              f"{json.dumps(result['dead_letter_reasons'], ensure_ascii=False) if result['dead_letter_reasons'] else ''} |",
              f"| restarts by the supervisor | {', '.join(f'{k} {v}' for k, v in run['restarts'].items() if v) or 'none'} |",
              f"| drained after the faults | {run['drain'].get('seconds', '—')} s "
              f"(cadence sensor stop issued {run['drain'].get('sensor_stops', '—')}×) |"]
    lines += ["", "| # | fault | at | outage | first crawl after | recovered after | API during outage |",
              "|---|---|---|---|---|---|---|"]
    for n, f in enumerate(result["faults"], 1):
        api = f.get("api_during_outage")
        api_text = (f"{', '.join(f'{k}×{v}' for k, v in api['statuses'].items())}; slowest {api['slowest_seconds']} s"
                    if api else "")
        lines.append(f"| {n} | {f['kind']} | +{f['at_seconds']:.0f} s | {fmt_s(f['outage_seconds'])} | "
                     f"{fmt_s(f['first_crawl_after_seconds'])} | {fmt_s(f['recovery_seconds'])} | {api_text} |")
    lines += ["", "result: " + ("OK: every invariant holds" if result["ok"] else "FAILED: " + "; ".join(result["violations"]))]
    return "\n".join(lines)


def fmt_s(value) -> str:
    return "—" if value is None else f"{value:.1f} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--minutes", type=float, default=20.0, help="how long faults are injected (default 20)")
    parser.add_argument("--seed", type=int, default=1, help="the faults' order and pauses, the market (default 1)")
    parser.add_argument("--faults", default=",".join(FAULT_KINDS),
                        help=f"comma-separated fault kinds (default: all of {','.join(FAULT_KINDS)})")
    parser.add_argument("--server-url", default=os.environ.get("TEST_MYSQL_URL", DEFAULT_SERVER_URL),
                        help="MariaDB for Dagster's instance and the replay, in fresh databases (default %(default)s)")
    parser.add_argument("--dir", type=Path, help="run directory (default var/chaos/<time>)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON (progress goes to stderr)")
    args = parser.parse_args(argv)
    kinds = tuple(k.strip() for k in args.faults.split(",") if k.strip())
    unknown = set(kinds) - set(FAULT_KINDS)
    if unknown or not kinds:
        parser.error(f"unknown fault kind(s) {sorted(unknown)}; the kinds are {', '.join(FAULT_KINDS)}")
    run = ChaosRun(ChaosConfig(minutes=args.minutes, seed=args.seed, faults=kinds, server_url=args.server_url,
                               workdir=args.dir))
    try:
        result = run.run_and_audit()
    finally:
        run.close()
    result["run"]["command"] = " ".join(["python", "-m", "bench.chaos", *(sys.argv[1:] if argv is None else argv)])
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False, default=str))
    else:
        print(render(result))
    progress(render(result) if args.json else ("OK" if result["ok"] else "FAILED"))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
