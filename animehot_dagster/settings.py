"""The one source of configuration: the environment, with the operations manual's names and defaults.

Every process (Dagster code, crawler, API, CLI) calls :func:`load_settings` once at start. A bad
value raises :class:`SettingsError` naming the variable, so the process stops before doing work.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from animehot_dagster.domain.alerts import AlertThresholds
from animehot_dagster.domain.cadence import CadencePolicy
from animehot_dagster.domain.items import ItemTTL
from animehot_dagster.domain.messages import MAX_PAGES_PER_PHASE


class SettingsError(ValueError):
    """A configuration variable has a value the system cannot use."""


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """Parse Go-style durations: ``90s``, ``10m``, ``2h``, ``1h30m``, ``0`` (zero)."""
    cleaned = text.strip().lower()
    if cleaned == "0":
        return timedelta(0)
    position, seconds = 0, 0.0
    for match in _DURATION_PART.finditer(cleaned):
        if match.start() != position:
            break
        seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if position == 0 or position != len(cleaned):
        raise ValueError(f"{text!r} is not a duration (write it like 90s, 10m, 2h or 1h30m)")
    return timedelta(seconds=seconds)


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{text!r} is not a boolean (true/false)")


def _parse_int(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None


def _parse_float(text: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None


def _parse_str(text: str) -> str:
    return text.strip()


_PARSERS: dict[type, Callable[[str], Any]] = {
    bool: _parse_bool,
    int: _parse_int,
    float: _parse_float,
    str: _parse_str,
    timedelta: parse_duration,
}


def _env(name: str, default: Any, kind: type | None = None) -> Any:
    """Declare a field read from environment variable ``name``."""
    return dataclasses.field(
        default=default, metadata={"env": name, "kind": kind or type(default)}
    )


@dataclasses.dataclass(frozen=True)
class Settings:
    app_env: str = _env("APP_ENV", "local")
    debug: bool = _env("DEBUG", False)
    auto_migrate: bool = _env("AUTO_MIGRATE", True)
    data_dir: str = _env("ANIMEHOT_DATA_DIR", "var")

    database_url_override: str = _env("DATABASE_URL", "")
    mysql_host: str = _env("MYSQL_HOST", "")
    mysql_port: int = _env("MYSQL_PORT", 3306)
    mysql_user: str = _env("MYSQL_USER", "animetop")
    mysql_password: str = _env("MYSQL_PASSWORD", "")
    mysql_database: str = _env("MYSQL_DATABASE", "animetop")
    # How long a MySQL call may wait on the server (connect and handshake, each read, each
    # write) before it fails instead of hanging its caller (issue 17 #6).
    db_connect_timeout: timedelta = _env("DB_CONNECT_TIMEOUT", timedelta(seconds=5))
    db_read_timeout: timedelta = _env("DB_READ_TIMEOUT", timedelta(seconds=10))
    db_write_timeout: timedelta = _env("DB_WRITE_TIMEOUT", timedelta(seconds=10))

    redis_url_override: str = _env("REDIS_URL", "")
    redis_host: str = _env("REDIS_HOST", "127.0.0.1")
    redis_port: int = _env("REDIS_PORT", 6379)
    redis_password: str = _env("REDIS_PASSWORD", "")
    redis_db: int = _env("REDIS_DB", 0)
    redis_pool_size: int = _env("REDIS_POOL_SIZE", 10)

    # The cadence, TTL and alert defaults are the rules' own (domain/); every other default is here.
    scheduler_base_interval: timedelta = _env("SCHEDULER_BASE_INTERVAL", CadencePolicy.base_interval)
    scheduler_min_interval: timedelta = _env("SCHEDULER_MIN_INTERVAL", CadencePolicy.min_interval)
    scheduler_max_interval: timedelta = _env("SCHEDULER_MAX_INTERVAL", CadencePolicy.max_interval)
    scheduler_pages_on_sale: int = _env("SCHEDULER_PAGES_ON_SALE", CadencePolicy.pages_on_sale)
    scheduler_pages_sold: int = _env("SCHEDULER_PAGES_SOLD", CadencePolicy.pages_sold)
    scheduler_batch_size: int = _env("SCHEDULER_BATCH_SIZE", 50)
    scheduler_backpressure_threshold: int = _env("SCHEDULER_BACKPRESSURE_THRESHOLD", 25)
    scheduler_schedule_slot: timedelta = _env("SCHEDULER_SCHEDULE_SLOT", CadencePolicy.schedule_slot)
    janitor_interval: timedelta = _env("JANITOR_INTERVAL", timedelta(minutes=5))
    janitor_timeout: timedelta = _env("JANITOR_TIMEOUT", timedelta(minutes=10))

    analyzer_item_ttl_available: timedelta = _env("ANALYZER_ITEM_TTL_AVAILABLE", ItemTTL.available)
    analyzer_item_ttl_sold: timedelta = _env("ANALYZER_ITEM_TTL_SOLD", ItemTTL.sold)
    analyzer_high_outflow_threshold: int = _env("ANALYZER_HIGH_OUTFLOW_THRESHOLD", AlertThresholds.high_outflow)
    analyzer_low_liquidity_threshold: float = _env("ANALYZER_LOW_LIQUIDITY_THRESHOLD", AlertThresholds.low_liquidity)
    analyzer_high_liquidity_threshold: float = _env("ANALYZER_HIGH_LIQUIDITY_THRESHOLD", AlertThresholds.high_liquidity)

    browser_max_concurrency: int = _env("BROWSER_MAX_CONCURRENCY", 2)
    browser_max_fetch_count: int = _env("BROWSER_MAX_FETCH_COUNT", 120)
    # How a crawler node spends a task's pages (crawler.crawl.PagePlan): "counts" (one sold
    # page, the rest on sale) or "window" (the task's own page counts, as the original nodes).
    crawler_page_plan: str = _env("CRAWLER_PAGE_PLAN", "counts")
    browser_page_timeout: timedelta = _env("BROWSER_PAGE_TIMEOUT", timedelta(seconds=60))
    browser_task_timeout: timedelta = _env("BROWSER_TASK_TIMEOUT", timedelta(minutes=12))
    max_tasks: int = _env("MAX_TASKS", 50)
    app_rate_limit: float = _env("APP_RATE_LIMIT", 3.0)
    app_rate_burst: int = _env("APP_RATE_BURST", 3)
    http_proxy: str = _env("HTTP_PROXY", "")
    proxy_auto_switch: bool = _env("PROXY_AUTO_SWITCH", False)
    proxy_failure_threshold: int = _env("PROXY_FAILURE_THRESHOLD", 10)
    proxy_cooldown: timedelta = _env("PROXY_COOLDOWN", timedelta(minutes=10))
    mercari_web_url: str = _env("MERCARI_WEB_URL", "https://jp.mercari.com")
    mercari_api_url: str = _env("MERCARI_API_URL", "https://api.mercari.jp")

    admin_api_key: str = _env("ADMIN_API_KEY", "")
    enable_cors: bool = _env("ENABLE_CORS", False)
    static_dir: str = _env("STATIC_DIR", "")
    dashboard_links: str = _env("DASHBOARD_LINKS", "")  # the dashboard's links: Dagster UI=http://…,Grafana=http://…
    app_http_addr: str = _env("APP_HTTP_ADDR", ":8080")
    app_metrics_addr: str = _env("APP_METRICS_ADDR", ":2112")
    metrics_port: int = _env("METRICS_PORT", 2112)

    partition_retention_days: int = _env("PARTITION_RETENTION_DAYS", 14)

    @property
    def database_url(self) -> str:
        """``DATABASE_URL``, else MySQL from the ``MYSQL_*`` parts when ``MYSQL_HOST`` is set,
        else the embedded SQLite file under ``ANIMEHOT_DATA_DIR``."""
        if self.database_url_override:
            return self.database_url_override
        if self.mysql_host:
            credentials = quote(self.mysql_user, safe="")
            if self.mysql_password:
                credentials += ":" + quote(self.mysql_password, safe="")
            return (
                f"mysql+pymysql://{credentials}@{self.mysql_host}:{self.mysql_port}"
                f"/{self.mysql_database}?charset=utf8mb4"
            )
        return f"sqlite:///{Path(self.data_dir) / 'animehot.sqlite3'}"

    @property
    def redis_url(self) -> str:
        if self.redis_url_override:
            return self.redis_url_override
        password = f":{quote(self.redis_password, safe='')}@" if self.redis_password else ""
        return f"redis://{password}{self.redis_host}:{self.redis_port}/{self.redis_db}"

    @property
    def cadence(self) -> CadencePolicy:
        return CadencePolicy(
            base_interval=self.scheduler_base_interval,
            min_interval=self.scheduler_min_interval,
            max_interval=self.scheduler_max_interval,
            pages_on_sale=self.scheduler_pages_on_sale,
            pages_sold=self.scheduler_pages_sold,
            schedule_slot=self.scheduler_schedule_slot,
        )

    @property
    def item_ttl(self) -> ItemTTL:
        return ItemTTL(
            available=self.analyzer_item_ttl_available, sold=self.analyzer_item_ttl_sold
        )

    @property
    def alert_thresholds(self) -> AlertThresholds:
        return AlertThresholds(
            high_outflow=self.analyzer_high_outflow_threshold,
            low_liquidity=self.analyzer_low_liquidity_threshold,
            high_liquidity=self.analyzer_high_liquidity_threshold,
        )


def env_name(field_name: str) -> str:
    return next(f for f in dataclasses.fields(Settings) if f.name == field_name).metadata["env"]


_POSITIVE = (
    "db_connect_timeout",
    "db_read_timeout",
    "db_write_timeout",
    "redis_pool_size",
    "scheduler_base_interval",
    "scheduler_min_interval",
    "scheduler_max_interval",
    "scheduler_pages_on_sale",
    "scheduler_batch_size",
    "janitor_interval",
    "janitor_timeout",
    "analyzer_item_ttl_available",
    "analyzer_item_ttl_sold",
    "browser_max_concurrency",
    "browser_max_fetch_count",
    "browser_page_timeout",
    "browser_task_timeout",
    "max_tasks",
    "app_rate_limit",
    "app_rate_burst",
    "proxy_failure_threshold",
    "partition_retention_days",
)
_NON_NEGATIVE = (
    "scheduler_pages_sold",
    "scheduler_backpressure_threshold",
    "scheduler_schedule_slot",
    "proxy_cooldown",
    "analyzer_high_outflow_threshold",
    "analyzer_low_liquidity_threshold",
    "analyzer_high_liquidity_threshold",
)
_PORTS = ("mysql_port", "redis_port", "metrics_port")


def _check(settings: Settings) -> list[str]:
    problems: list[str] = []
    zero = {timedelta: timedelta(0), int: 0, float: 0.0}
    for name in _POSITIVE:
        value = getattr(settings, name)
        if value <= zero[type(value)]:
            problems.append(f"{env_name(name)}={value}: must be greater than zero")
    for name in _NON_NEGATIVE:
        value = getattr(settings, name)
        if value < zero[type(value)]:
            problems.append(f"{env_name(name)}={value}: must not be negative")
    for name in _PORTS:
        if not 0 < getattr(settings, name) < 65536:
            problems.append(f"{env_name(name)}={getattr(settings, name)}: not a TCP port")
    if settings.crawler_page_plan not in {"counts", "window"}:
        problems.append(f"CRAWLER_PAGE_PLAN={settings.crawler_page_plan!r}: must be 'counts' or 'window'")
    for name in ("scheduler_pages_on_sale", "scheduler_pages_sold"):
        if getattr(settings, name) > MAX_PAGES_PER_PHASE:  # SPEC §6: a task outside it is dead-lettered
            problems.append(f"{env_name(name)}={getattr(settings, name)}: at most {MAX_PAGES_PER_PHASE} pages a phase")
    if settings.app_env not in {"local", "prod"}:
        problems.append(f"APP_ENV={settings.app_env!r}: must be 'local' or 'prod'")
    if settings.scheduler_min_interval > settings.scheduler_max_interval:
        problems.append(
            "SCHEDULER_MIN_INTERVAL is longer than SCHEDULER_MAX_INTERVAL "
            f"({settings.scheduler_min_interval} > {settings.scheduler_max_interval})"
        )
    for name in ("scheduler_base_interval", "scheduler_min_interval", "scheduler_max_interval"):
        if getattr(settings, name) % timedelta(minutes=1):
            problems.append(f"{env_name(name)}: the cadence moves in whole minutes")
    if settings.static_dir and not (Path(settings.static_dir) / "index.html").is_file():
        problems.append(f"STATIC_DIR={settings.static_dir!r}: no index.html there (a built frontend's directory)")
    for name in ("database_url_override", "redis_url_override"):
        url = getattr(settings, name)
        if url and "://" not in url:
            problems.append(f"{env_name(name)}={url!r}: not a URL (scheme://…)")
    return problems


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read every variable; raise :class:`SettingsError` listing each bad one by name."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    problems: list[str] = []
    for field in dataclasses.fields(Settings):
        name, kind = field.metadata["env"], field.metadata["kind"]
        raw = environ.get(name)
        if raw is None or (raw.strip() == "" and kind is not str):
            continue
        try:
            values[field.name] = _PARSERS[kind](raw)
        except ValueError as exc:
            problems.append(f"{name}: {exc}")
    if not problems:
        settings = Settings(**values)
        problems = _check(settings)
    if problems:
        raise SettingsError("invalid configuration: " + "; ".join(problems))
    return settings


@functools.cache
def process_settings() -> Settings:
    """The settings as this process started with them, read once: for what is fixed when the code
    location loads (the partition window, the janitor's schedule), which Dagster needs as the
    modules define the assets and schedules."""
    return load_settings()
