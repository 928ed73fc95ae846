"""Grayscale verification (manual §8.1): did data flow end to end, and if not, where did it stop.

Each check reads one place a user would look — the API, Redis, the database, the metrics, the
Dagster instance — and says what it found, so a failure names its cause.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import redis
import sqlalchemy as sa

from animehot_dagster.domain.catalog import IpStatus
from animehot_dagster.domain.timebuckets import hour_bucket
from animehot_dagster.queue import keys
from animehot_dagster.settings import Settings, SettingsError, load_settings
from animehot_dagster.stack.system import redact
from animehot_dagster.storage import open_engine
from animehot_dagster.storage.schema import crawl_log, ip_metadata, ip_stats_hourly

DEFAULT_API_URL = "http://localhost:8080"
TIMEOUT = 5


@dataclasses.dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _check(name: str, probe: Callable[[], tuple[bool, str]]) -> Check:
    try:
        ok, detail = probe()
    except Exception as exc:  # noqa: BLE001 - any failure of a probe is the finding
        return Check(name, False, f"{type(exc).__name__}: {exc}")
    return Check(name, ok, detail)


def verify(env: dict[str, str], min_crawls: int = 2) -> list[Check]:
    api_url = env.get("API_URL", DEFAULT_API_URL).rstrip("/")
    try:
        settings = load_settings(env)
    except SettingsError as exc:
        return [Check("settings", False, str(exc))]
    checks = [_check("API", lambda: _api_health(api_url)),
              _check("Redis", lambda: _redis(settings)),
              _check("MySQL/database", lambda: _database(settings))]
    if checks[-1].ok:
        checks += _data_flow(settings, api_url, min_crawls)
    if env.get("METRICS_URL"):
        checks.append(_check("metrics", lambda: _metrics(env["METRICS_URL"])))
    if env.get("DAGSTER_HOME"):
        checks.append(_check("Dagster runs", lambda: _dagster_runs(env["DAGSTER_HOME"])))
    return checks


def _api_health(api_url: str) -> tuple[bool, str]:
    answer = httpx.get(f"{api_url}/health", timeout=TIMEOUT)
    return answer.status_code == 200, f"{api_url}/health answered {answer.status_code}"


def _redis(settings: Settings) -> tuple[bool, str]:
    where = redact(settings.redis_url)
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)
    try:
        client.ping()
    except redis.RedisError as exc:
        return False, f"Redis unreachable at {where}: {exc}"
    try:
        dead_tasks, dead_results = client.llen(keys.TASKS_DEADLETTER), client.llen(keys.RESULTS_DEADLETTER)
    finally:
        client.close()
    if dead_tasks or dead_results:
        return False, (f"dead letters: {dead_tasks} in {keys.TASKS_DEADLETTER}, {dead_results} in "
                       f"{keys.RESULTS_DEADLETTER} (animehot dlq list)")
    return True, f"{where} answers; no dead letters"


def _database(settings: Settings) -> tuple[bool, str]:
    engine = open_engine(settings)
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    finally:
        engine.dispose()
    return True, f"{redact(settings.database_url)} answers"


def _data_flow(settings: Settings, api_url: str, min_crawls: int) -> list[Check]:
    engine = open_engine(settings)
    try:
        with engine.connect() as connection:
            active = dict(connection.execute(
                sa.select(ip_metadata.c.id, ip_metadata.c.name).where(ip_metadata.c.status == IpStatus.ACTIVE)).all())
            crawls = dict(connection.execute(
                sa.select(crawl_log.c.ip_id, sa.func.count()).group_by(crawl_log.c.ip_id)).all())
            with_hours = {ip for (ip,) in connection.execute(sa.select(ip_stats_hourly.c.ip_id).distinct())}
            # the API serves complete hours only (SPEC §9): the current one is still counted
            complete = {ip for (ip,) in connection.execute(
                sa.select(ip_stats_hourly.c.ip_id).where(ip_stats_hourly.c.hour_bucket < hour_bucket(datetime.now(UTC)))
                .distinct())}
    finally:
        engine.dispose()
    if not active:
        return [Check("IPs", False, "no active IP: import some (animehot import FILE)")]
    short = [f"{active[ip]} ({crawls.get(ip, 0)})" for ip in active if crawls.get(ip, 0) < min_crawls]
    unmeasured = [active[ip] for ip in active if ip not in with_hours]
    served = _check("API serves the figures", lambda: _api_serves(
        api_url, sorted(set(active) & complete), sorted(set(active) & (with_hours - complete))))
    return [
        Check("crawls", not short,
              f"every active IP ({len(active)}) crawled at least {min_crawls}×" if not short
              else f"crawled fewer than {min_crawls}×: {', '.join(short)} — check the crawler and the cadence sensor"),
        Check("hourly figures", not unmeasured,
              f"every active IP has hourly rows ({len(with_hours)})" if not unmeasured
              else f"no hourly rows for {', '.join(unmeasured)} — check the results sensor and its runs"),
        served,
    ]


def _api_serves(api_url: str, complete: list[int], current_only: list[int]) -> tuple[bool, str]:
    """IPs with complete hours must have them in ``data.stats`` of their hourly stats (the wire
    shape of SPEC §9); IPs measured in the current hour only must at least be served."""
    empty = []
    with httpx.Client(base_url=api_url, timeout=TIMEOUT) as client:
        for ip_id in complete:
            answer = client.get(f"/api/v1/ips/{ip_id}/stats/hourly", params={"limit": 168})
            if answer.status_code != 200 or not answer.json()["data"]["stats"]:
                empty.append(f"{ip_id} ({answer.status_code})")
        for ip_id in current_only:
            answer = client.get(f"/api/v1/ips/{ip_id}")
            if answer.status_code != 200 or answer.json()["data"]["id"] != ip_id:
                empty.append(f"{ip_id} ({answer.status_code})")
    if empty:
        return False, f"/api/v1/ips/{{id}} or its /stats/hourly empty or failing for {', '.join(empty)}"
    detail = f"hourly stats served for {len(complete)} IP(s)"
    if current_only:
        detail += f"; {len(current_only)} measured in the current hour only (served once it is complete)"
    return True, detail


def _metrics(metrics_url: str) -> tuple[bool, str]:
    text = httpx.get(metrics_url, timeout=TIMEOUT).text
    found = "crawler_queue_depth" in text
    return found, f"{metrics_url} exposes crawler_queue_depth" if found else f"{metrics_url} lacks crawler_queue_depth"


def _dagster_runs(home: str) -> tuple[bool, str]:
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(home))
    try:
        failed = instance.get_runs_count(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
        succeeded = instance.get_runs_count(dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS]))
    finally:
        instance.dispose()
    if failed:
        return False, f"{failed} failed run(s) (see the Dagster UI, Runs, status Failure)"
    return succeeded > 0, f"{succeeded} successful run(s), none failed" if succeeded else "no run has succeeded yet"
