"""Helpers of the operations-script tests: run a script, a private redis-server, a real
``animehot api`` process, and a database where every table holds rows written by the project's
own code."""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import subprocess
import time
from datetime import date, timedelta
from pathlib import Path

import redis
import sqlalchemy as sa

from animehot_dagster.storage.api_writes import ack_alert
from animehot_dagster.storage.ingest import IngestConfig, apply
from animehot_dagster.storage.rollups import rollup_day, rollup_week
from animehot_dagster.storage.schema import ip_alerts
from animehot_dagster_tests.factories import T0, make_ips, on_sale, response, sold

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"
VENV_BIN = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin"

# Variables the scripts read: cleared so that only what a test sets counts.
_SCRIPT_VARIABLES = (
    "DATABASE_URL", "MYSQL_HOST", "MYSQL_PORT", "MYSQL_USER", "MYSQL_PASSWORD", "MYSQL_DATABASE",
    "MYSQL_ROOT_PASSWORD", "MYSQL_PWD", "REDIS_URL", "REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD",
    "REDIS_DB", "REDISCLI_AUTH", "API_URL", "BACKUP_DIR", "BACKUP_RETENTION_DAYS", "QUEUE_DEPTH_WARN",
    "ANIMEHOT_USE_DOCKER", "ANIMEHOT_COMPOSE_DIR",
)


def script_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRIPT_VARIABLES}
    env["ANIMEHOT_USE_DOCKER"] = "0"  # these tests are about the servers named by the variables
    env.update(values)
    return env


def run_script(name: str, *args: str, env: dict[str, str], timeout: float = 120,
               stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(SCRIPTS / name), *args], env=env, capture_output=True, text=True, timeout=timeout,
        input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL, cwd=ROOT,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A redis-server of our own on a free port (the shared one is never stopped)."""

    def __init__(self, workdir: Path, password: str | None = None) -> None:
        self.port = free_port()
        self.password = password
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, *extra: str) -> RedisServer:
        self.process = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
             *(("--requirepass", self.password) if self.password else ()), *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, password=self.password, socket_connect_timeout=1)
        deadline = time.monotonic() + 15
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"redis-server on port {self.port} did not start") from None
                time.sleep(0.05)
        client.close()
        return self

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, password=self.password)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


class ApiProcess:
    """``animehot api`` as an operator runs it, on free ports."""

    def __init__(self, database_url: str, redis_url: str, log_path: Path) -> None:
        self.port, self.metrics_port = free_port(), free_port()
        self.log_path = log_path
        env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "AUTO_MIGRATE": "false"}
        self.log = open(log_path, "wb")
        self.process = subprocess.Popen(
            [str(VENV_BIN / "animehot"), "api", "--host", "127.0.0.1", "--port", str(self.port),
             "--metrics-port", str(self.metrics_port)],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"animehot api exited: {self.log_path.read_text(errors='replace')[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"animehot api did not listen within {timeout}s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log.close()


def seed_every_table(engine: sa.Engine) -> None:
    """Rows in every table, through the project's ingest, rollup and alert code: Japanese
    titles, sold items, an acknowledged and an unacknowledged alert, daily and weekly rollups."""
    busy, calm = make_ips(engine, "鬼滅の刃", "ちいかわ")
    config = IngestConfig()
    base = [on_sale(f"m1{i:04d}", 1000 + i, title=f"缶バッジ {i} 「限定」") for i in range(70)]
    apply(engine, response(busy, T0, base), config, now=T0)
    apply(engine, response(calm, T0, [on_sale("m20000", 500, title="ぬいぐるみ")]), config, now=T0)
    second = T0 + timedelta(hours=1)
    items = [sold(i.source_id, i.price, i.title) for i in base[:60]] + base[60:] + \
        [on_sale(f"m1{i:04d}", 2000) for i in range(100, 105)]
    apply(engine, response(busy, second, items), config, now=second)
    third = T0 + timedelta(hours=2)
    apply(engine, response(busy, third, [sold(i.source_id, i.price) for i in items[60:]]), config, now=third)
    # A node of this project reports result counts and listing times (SPEC §4.1): listings seen.
    for hour, count in ((3, 1), (4, 3)):
        at = T0 + timedelta(hours=hour)
        listed = [dataclasses.replace(on_sale(f"m3{n:04d}", 800), created=int((at - timedelta(minutes=5 * n + 1)).timestamp()))
                  for n in range(count)]
        apply(engine, response(calm, at, listed, found_on_sale=count, found_sold=count - 1), config, now=at)
    now = T0 + timedelta(days=8)
    with engine.begin() as connection:
        rollup_day(connection, date(2026, 11, 2), now)
        rollup_week(connection, date(2026, 11, 2), now)
    with engine.connect() as connection:
        alert_ids = list(connection.execute(sa.select(ip_alerts.c.id).order_by(ip_alerts.c.id)).scalars())
    assert len(alert_ids) >= 2, "the seed should raise at least two alerts"
    ack_alert(engine, alert_ids[0], now)


def table_facts(url: str) -> dict[str, tuple[int, int]]:
    """Every base table of the database at ``url``: (row count, CHECKSUM TABLE)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            names = list(connection.execute(sa.text(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' ORDER BY table_name")).scalars())
            facts = {}
            for name in names:
                count = connection.execute(sa.text(f"SELECT COUNT(*) FROM `{name}`")).scalar_one()
                checksum = connection.execute(sa.text(f"CHECKSUM TABLE `{name}`")).one()[1]
                facts[name] = (count, checksum)
    finally:
        engine.dispose()
    return facts
