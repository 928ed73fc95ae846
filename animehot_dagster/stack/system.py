"""The whole system on one machine, each piece its own process, as a deployment runs it.

Where no server is configured it runs on embedded defaults: SQLite for the project's tables (in
the run directory), a Dagster instance on SQLite in a fresh DAGSTER_HOME, and a private
``redis-server`` on a free port. ``DATABASE_URL``/``MYSQL_HOST``, ``REDIS_URL``/``REDIS_HOST``
and ``DAGSTER_MYSQL_URL`` switch each to the configured server.

The pieces: the market simulator standing in for Mercari, one crawler node, the code location as
a gRPC code server, the Dagster daemon and webserver, and the API with its metrics.

While it runs, :meth:`LocalSystem.supervise` restarts a piece that dies, as Compose's
``restart: unless-stopped`` does, with backoff, reporting each death and restart; the embedded
Redis keeps an append-only file (fsync every second) in the run directory, so that its restart
finds the queues as they were up to the last second.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import sys
import time
from pathlib import Path

import httpx
import yaml

from animehot_dagster.stack.processes import Service, Stack, Supervisor, free_port

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
GRPC_WORKSPACE = REPO / "deploy" / "workspace.grpc.yaml"
LOCATION_NAME = "animehot"

# Minutes instead of hours; the simulated market runs an hour a minute, so one crawl interval
# still sees about an hour of market activity, as in production.
COMPRESSED_CADENCE = {
    "SCHEDULER_BASE_INTERVAL": "2m",
    "SCHEDULER_MIN_INTERVAL": "1m",
    "SCHEDULER_MAX_INTERVAL": "2m",
    # The simulator answers as fast as it can; the production limit would stretch each crawl.
    "APP_RATE_LIMIT": "100",
    "APP_RATE_BURST": "20",
}
MARKET_TIME_SCALE = 60.0
MARKET_SEED = 1

ANALYZER = frozenset({"dagster", "webserver", "api"})
ALL_COMPONENTS = ANALYZER | {"simulator", "crawler"}
COMPONENT_SETS = {"all": ALL_COMPONENTS, "analyzer": ANALYZER}

STARTUP_TIMEOUT = 120


class StartupFailed(RuntimeError):
    """The local system could not start; the message says which piece and why."""


def redact(url: str) -> str:
    """The URL with its password hidden, for display."""
    return re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", url)


@dataclasses.dataclass(frozen=True)
class SystemConfig:
    workdir: Path
    ips_file: Path | None
    components: frozenset[str] = ALL_COMPONENTS
    compressed_cadence: bool = True
    time_scale: float = MARKET_TIME_SCALE
    seed: int = MARKET_SEED
    api_port: int = 8080
    metrics_port: int = 2112
    webserver_port: int = 3000
    simulator_port: int = 8090


@dataclasses.dataclass
class Endpoints:
    api: str = ""
    metrics: str = ""
    dagster_ui: str = ""
    simulator: str = ""
    crawler_metrics: str = ""
    redis: str = ""
    database: str = ""
    dagster_home: str = ""
    dagster_grpc_port: int | None = None
    redis_pid: int | None = None
    embedded: list[str] = dataclasses.field(default_factory=list)

    def as_env(self) -> dict[str, str]:
        values = {
            "API_URL": self.api, "METRICS_URL": self.metrics, "DAGSTER_URL": self.dagster_ui,
            "SIMULATOR_URL": self.simulator, "CRAWLER_METRICS_URL": self.crawler_metrics,
            "REDIS_URL": self.redis, "DATABASE_URL": self.database, "DAGSTER_HOME": self.dagster_home,
            "DAGSTER_GRPC_HOST": "localhost" if self.dagster_grpc_port else "",
            "DAGSTER_GRPC_PORT": str(self.dagster_grpc_port or ""),
            "REDIS_PID": str(self.redis_pid or ""),
        }
        return {name: value for name, value in values.items() if value}


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            values[name.strip()] = value.strip()
    return values


class LocalSystem:
    """Starts the configured pieces in order and stops them in reverse (``stop``)."""

    def __init__(self, config: SystemConfig, base_env: dict[str, str], log=print) -> None:
        self.config = config
        self.log = log
        config.workdir.mkdir(parents=True, exist_ok=True)
        self.env = dict(base_env)
        if config.compressed_cadence:
            self.env.update(COMPRESSED_CADENCE)
        self.env.setdefault("AUTO_MIGRATE", "true")
        # On a laptop under load, launching a run through the code server can take longer than
        # Dagster's 60 s gRPC default, and the run would be failed for it.
        self.env.setdefault("DAGSTER_GRPC_TIMEOUT_SECONDS", "180")
        self.env["NO_PROXY"] = "127.0.0.1,localhost"
        self.stack = Stack(config.workdir, self.env, cwd=REPO)
        self.supervisor = Supervisor(self.stack, log=log)
        self.endpoints = Endpoints()

    def has(self, component: str) -> bool:
        return component in self.config.components

    # -- start ---------------------------------------------------------------------------------

    def start(self) -> Endpoints:
        self._redis()
        self._database()
        self._dagster_home()
        if self.has("simulator"):
            self._simulator()
        if self.config.ips_file is not None:
            self.log(f"importing {self.config.ips_file}")
            self.stack.run(str(BIN / "animehot"), "import", str(self.config.ips_file), "--upsert")
        if self.has("dagster"):
            self._dagster()
        if self.has("crawler"):
            self._crawler()
        if self.has("api"):
            self._api()
        self.write_state()
        return self.endpoints

    def _redis(self) -> None:
        if self.env.get("REDIS_URL") or self.env.get("REDIS_HOST"):
            self.endpoints.redis = self.env.get("REDIS_URL") or f"redis://{self.env['REDIS_HOST']}:{self.env.get('REDIS_PORT', '6379')}"
            self.log(f"Redis: configured ({redact(self.endpoints.redis)})")
            return
        binary = shutil.which("redis-server")
        if binary is None:
            raise StartupFailed(
                "redis-server not found: install it (Debian/Ubuntu: apt-get install redis-server; "
                "macOS: brew install redis) or set REDIS_URL to a running Redis"
            )
        port = free_port()
        # No snapshots, but an append-only file fsynced every second: a crash and restart (by
        # the supervisor) loses at most the last second of queue writes.
        service = self.stack.start("redis", binary, "--port", str(port), "--bind", "127.0.0.1",
                                   "--save", "", "--appendonly", "yes", "--appendfsync", "everysec",
                                   "--dir", str(self.config.workdir))
        self.stack.wait_for_log(service, "Ready to accept connections", 30)
        self.endpoints.redis = self.env["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
        self.endpoints.redis_pid = service.process.pid
        self.endpoints.embedded.append("redis")
        self.log(f"Redis: embedded redis-server on port {port}")

    def _database(self) -> None:
        if not (self.env.get("DATABASE_URL") or self.env.get("MYSQL_HOST")):
            self.env["ANIMEHOT_DATA_DIR"] = str(self.config.workdir)
            self.endpoints.embedded.append("database")
        from animehot_dagster.settings import load_settings

        self.endpoints.database = load_settings(self.env).database_url
        self.env["DATABASE_URL"] = self.endpoints.database
        self.log(f"database: {redact(self.endpoints.database)}")
        self.stack.run(str(BIN / "animehot"), "migrate")

    def _dagster_home(self) -> None:
        home = self.config.workdir / "dagster_home"
        home.mkdir(exist_ok=True)
        instance = yaml.safe_load((REPO / "dagster.yaml").read_text(encoding="utf-8"))
        if self.env.get("DAGSTER_MYSQL_URL"):
            self.log("Dagster instance: MySQL (DAGSTER_MYSQL_URL)")
        else:
            # The project's instance keeps everything else (run queue limits, monitoring,
            # retention); without its MySQL storage Dagster stores on SQLite in DAGSTER_HOME.
            del instance["storage"]
            self.endpoints.embedded.append("dagster storage")
            self.log(f"Dagster instance: SQLite in {home}")
        (home / "dagster.yaml").write_text(yaml.safe_dump(instance, sort_keys=False), encoding="utf-8")
        self.env["DAGSTER_HOME"] = self.endpoints.dagster_home = str(home)
        if self.env.get("DAGSTER_MYSQL_URL"):
            self.stack.run(str(BIN / "dagster"), "instance", "migrate", timeout=300)

    def _simulator(self) -> None:
        port = free_port(self.config.simulator_port)
        args = [str(BIN / "animehot"), "simulator", "--port", str(port),
                "--time-scale", str(self.config.time_scale), "--seed", str(self.config.seed)]
        if self.config.ips_file is not None:
            args += ["--ips", str(self.config.ips_file)]
        service = self.stack.start("simulator", *args)
        url = f"http://127.0.0.1:{port}"
        self._wait_http(service, f"{url}/health")
        self.endpoints.simulator = self.env["MERCARI_WEB_URL"] = self.env["MERCARI_API_URL"] = url
        self.log(f"simulator (stands in for Mercari): {url}")

    def _dagster(self) -> None:
        grpc_port = self.endpoints.dagster_grpc_port = free_port()
        self.env["DAGSTER_GRPC_HOST"], self.env["DAGSTER_GRPC_PORT"] = "localhost", str(grpc_port)
        code_server = self.stack.start(
            "code_server", str(BIN / "dagster"), "api", "grpc", "-m", "animehot_dagster.definitions", "-a", "defs",
            "--host", "localhost", "--port", str(grpc_port), "--location-name", LOCATION_NAME,
        )
        self.log("Dagster: loading the code location …")
        self.stack.wait_for_log(code_server, "Started Dagster code server", STARTUP_TIMEOUT)
        self.stack.start("daemon", str(BIN / "dagster-daemon"), "run", "-w", str(GRPC_WORKSPACE))
        if self.has("webserver"):
            port = free_port(self.config.webserver_port)
            webserver = self.stack.start("webserver", str(BIN / "dagster-webserver"), "-w", str(GRPC_WORKSPACE),
                                         "-h", "127.0.0.1", "-p", str(port))
            self.endpoints.dagster_ui = f"http://127.0.0.1:{port}"
            self._wait_http(webserver, f"{self.endpoints.dagster_ui}/server_info")
            self.log(f"Dagster UI: {self.endpoints.dagster_ui}")

    def _crawler(self) -> None:
        port = free_port()
        self.stack.start("crawler", str(BIN / "animehot"), "crawler", "--shutdown-grace", "10s",
                         env={"METRICS_PORT": str(port)})
        self.endpoints.crawler_metrics = f"http://127.0.0.1:{port}/metrics"
        self.log(f"crawler node: metrics on {self.endpoints.crawler_metrics}")

    def _api(self) -> None:
        port, metrics_port = free_port(self.config.api_port), free_port(self.config.metrics_port)
        service = self.stack.start("api", str(BIN / "animehot"), "api", "--host", "127.0.0.1", "--port", str(port),
                                   "--metrics-port", str(metrics_port))
        self.endpoints.api = f"http://127.0.0.1:{port}"
        self.endpoints.metrics = f"http://127.0.0.1:{metrics_port}/metrics"
        self._wait_http(service, f"{self.endpoints.api}/health")
        self.log(f"API: {self.endpoints.api}  metrics: {self.endpoints.metrics}")

    def _wait_http(self, service: Service, url: str, timeout: float = STARTUP_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.stack.check_alive()
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise StartupFailed(f"{service.name} did not answer {url} within {timeout:.0f} s:\n{service.tail()}")
            time.sleep(0.5)

    # -- state and stop ------------------------------------------------------------------------

    @property
    def state_file(self) -> Path:
        return self.config.workdir / "system.env"

    def write_state(self) -> None:
        """system.env: the URLs, and each piece's current pid as ``<NAME>_PID`` (rewritten when
        the supervisor restarts one)."""
        lines = ["# The running local system (animehot up / make demo): what animehot verify reads."]
        values = self.endpoints.as_env()
        for service in self.stack.services:
            values.setdefault(f"{service.name.upper()}_PID", str(service.process.pid))
        lines += [f"{name}={value}" for name, value in values.items()]
        self.state_file.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def supervise(self) -> list[Service]:
        """One round of supervision (call it every second or so): restart what died, with
        backoff; returns what was restarted."""
        restarted = self.supervisor.poll()
        for service in restarted:
            if service.name == "redis":
                self.endpoints.redis_pid = service.process.pid
        if restarted:
            self.write_state()
        return restarted

    def stop_dispatching(self) -> None:
        """Stop the cadence sensor, as an operator would, so that the system can drain."""
        self.stack.run(str(BIN / "dagster"), "sensor", "stop", "crawl_cadence_sensor", "-w", str(GRPC_WORKSPACE))

    def stop(self) -> None:
        self.stack.stop(on_stop=lambda service: self.log(f"stopping {service.name}"))
        self.state_file.unlink(missing_ok=True)
