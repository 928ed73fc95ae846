"""``make demo``: the whole system for a few minutes, with progress, then a summary.

The cadence is compressed (1–2 min instead of 1–2 h) and the simulated market runs an hour a
minute, so every sample IP is crawled several times within minutes. At the end (after
DEMO_DURATION, or on the first Ctrl-C) dispatching stops, what is in flight drains, the summary
is printed and written to ``summary.json`` in the run directory, and every process is stopped.
A second Ctrl-C skips the drain.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import redis
import sqlalchemy as sa
from dagster._core.instance.ref import InstanceRef

from animehot_dagster.domain.catalog import IpStatus
from animehot_dagster.queue import keys
from animehot_dagster.queue.stats import queue_lengths
from animehot_dagster.settings import load_settings
from animehot_dagster.stack.processes import StopRequest
from animehot_dagster.stack.summary import MarketClock, build_summary, format_summary
from animehot_dagster.stack.system import LocalSystem, SystemConfig
from animehot_dagster.storage import open_engine
from animehot_dagster.storage.schema import crawl_log

PROGRESS_SECONDS = 15
DRAIN_TIMEOUT = 120
IN_FLIGHT = (keys.TASKS, keys.TASKS_PROCESSING, keys.RESULTS, keys.RESULTS_PROCESSING)
RUNS_IN_FLIGHT = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
                  dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


class Observer:
    """Reads the running system's state for progress lines: database, Redis, Dagster runs."""

    def __init__(self, system: LocalSystem) -> None:
        settings = load_settings(system.env)
        self.engine = open_engine(settings)
        self.redis = redis.Redis.from_url(system.endpoints.redis)
        self.instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(system.endpoints.dagster_home))
        self.ip_count = self._ip_count()

    def _ip_count(self) -> int:
        from animehot_dagster.storage.schema import ip_metadata

        with self.engine.connect() as connection:
            return connection.execute(sa.select(sa.func.count()).where(ip_metadata.c.status == IpStatus.ACTIVE)).scalar_one()

    def crawls_per_ip(self, since: datetime) -> dict[int, int]:
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(crawl_log.c.ip_id, sa.func.count()).where(crawl_log.c.crawled_at >= since)
                                      .group_by(crawl_log.c.ip_id)).all()
        return dict(rows)

    def runs(self) -> dict[str, int]:
        count = self.instance.get_runs_count
        return {
            "succeeded": count(dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS])),
            "in_flight": count(dg.RunsFilter(statuses=RUNS_IN_FLIGHT)),
            "failed": count(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE])),
        }

    def queues(self) -> dict[str, int]:
        return queue_lengths(self.redis)

    def progress(self, elapsed: float, since: datetime) -> str:
        crawls = self.crawls_per_ip(since)
        runs, queues = self.runs(), self.queues()
        fewest = min((crawls.get(ip, 0) for ip in crawls), default=0) if len(crawls) == self.ip_count else 0
        return (f"[{int(elapsed) // 60:2d}:{int(elapsed) % 60:02d}] crawls {sum(crawls.values()):3d} · "
                f"IPs crawled {len(crawls)}/{self.ip_count} (each at least {fewest}×) · "
                f"Dagster runs {runs['succeeded']} ok, {runs['in_flight']} in flight, {runs['failed']} failed · "
                f"queued tasks {queues[keys.TASKS]}, results {queues[keys.RESULTS]}")

    def drained(self) -> bool:
        queues = self.queues()
        return all(queues[key] == 0 for key in IN_FLIGHT) and self.runs()["in_flight"] == 0

    def close(self) -> None:
        self.instance.dispose()
        self.redis.close()
        self.engine.dispose()


def run_demo(duration: float, ips_file: Path, workdir: Path, base_env: dict[str, str], echo=print) -> int:
    # mysql-connector (Dagster's MySQL storage) logs its plugin loading at INFO.
    logging.getLogger("mysql.connector").setLevel(logging.WARNING)
    system = LocalSystem(SystemConfig(workdir=workdir, ips_file=ips_file), base_env, log=echo)
    stop = StopRequest()
    started_at = datetime.now(UTC).replace(microsecond=0)
    with stop.installed(), contextlib.ExitStack() as cleanup:
        cleanup.callback(system.stop)
        echo(f"run directory: {workdir} (logs of every process, databases, summary.json)")
        endpoints = system.start()
        observer = Observer(system)
        cleanup.callback(observer.close)
        clock = MarketClock.read(endpoints.simulator)
        echo("")
        echo(f"running for {duration / 60:g} min (DEMO_DURATION); Ctrl-C ends it early with the summary")
        echo(f"  Dashboard   {endpoints.api}/")
        echo(f"  Dagster UI  {endpoints.dagster_ui}")
        echo(f"  API         {endpoints.api}/api/v1/leaderboard   metrics {endpoints.metrics}")
        echo("")
        began = time.monotonic()
        next_progress = began + PROGRESS_SECONDS
        while not stop.requested.wait(1) and time.monotonic() - began < duration:
            system.stack.check_alive()
            if time.monotonic() >= next_progress:
                echo(observer.progress(time.monotonic() - began, started_at))
                next_progress += PROGRESS_SECONDS
        echo(observer.progress(time.monotonic() - began, started_at))
        if not stop.hurry.is_set():
            echo("stopping dispatch (dagster sensor stop crawl_cadence_sensor) and letting what is in flight finish …")
            system.stop_dispatching()
            deadline = time.monotonic() + DRAIN_TIMEOUT
            while not observer.drained() and not stop.hurry.wait(2):
                system.stack.check_alive()
                if time.monotonic() > deadline:
                    echo(f"still in flight after {DRAIN_TIMEOUT} s; summarising what has landed")
                    break
        urls = {"dashboard": f"{endpoints.api}/", "Dagster UI": endpoints.dagster_ui, "API": endpoints.api,
                "metrics": endpoints.metrics,
                "simulator": endpoints.simulator}
        summary = build_summary(observer.engine, started_at, endpoints.simulator, clock,
                                time.monotonic() - began, urls)
        summary["dagster_runs"] = observer.runs()
        summary["run_directory"] = str(workdir)
        (workdir / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8")
        echo("")
        echo(format_summary(summary))
        echo("")
        echo(f"summary written to {workdir / 'summary.json'}; stopping every process …")
    missing = observer.ip_count - len(summary["ips"])
    if missing:
        echo(f"{missing} IP(s) were never crawled: see {workdir}/crawler.log and daemon.log")
        return 1
    echo("done")
    return 0
