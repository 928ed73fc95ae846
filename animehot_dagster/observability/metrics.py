"""The analyzer side's metrics (SPEC §10, the manual's §3.2): HTTP, database pool and queries,
and the pipeline figures read from Redis and the database at scrape time.

The pipeline runs inside Dagster processes that come and go, so its numbers are not counted in
this process: a collector reads them where they live (queue lengths in Redis, the crawl log in
the database) each time Prometheus scrapes. ``animehot metrics`` serves only that collector, as
the sidecar beside the Dagster daemon; ``animehot api`` serves it with the HTTP and database
metrics of the API process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

import redis
import sqlalchemy as sa
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine

from animehot_dagster.queue import keys
from animehot_dagster.storage.schema import crawl_log
from animehot_dagster.storage.stats import SUCCESSFUL_CRAWL

log = logging.getLogger(__name__)

HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
QUERY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5)
# From a crawl to its result applied: seconds when the pipeline keeps up, minutes when it lags.
PROCESSING_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


class HttpMetrics:
    """Request counter and latency by route template (not the raw path: ids would explode the
    label set); unmatched paths count under the route ``other``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "animetop_http_requests_total", "HTTP requests answered, by method, route and status.",
            ["method", "route", "status"], registry=registry,
        )
        self.duration = Histogram(
            "animetop_http_request_duration_seconds", "Time to answer an HTTP request, by route.",
            ["route"], buckets=HTTP_BUCKETS, registry=registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method=method, route=route, status=str(status)).inc()
        self.duration.labels(route=route).observe(seconds)


class QueryTimer:
    """``animetop_db_query_duration_seconds`` from the engine's cursor events."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.histogram = Histogram(
            "animetop_db_query_duration_seconds", "Time one database statement took.",
            buckets=QUERY_BUCKETS, registry=registry,
        )

    def attach(self, engine: Engine) -> None:
        histogram = self.histogram

        @sa.event.listens_for(engine, "before_cursor_execute")
        def _before(conn, cursor, statement, parameters, context, executemany):
            conn.info.setdefault("animetop_query_start", []).append(time.perf_counter())

        @sa.event.listens_for(engine, "after_cursor_execute")
        def _after(conn, cursor, statement, parameters, context, executemany):
            starts = conn.info.get("animetop_query_start")
            if starts:
                histogram.observe(time.perf_counter() - starts.pop())

        @sa.event.listens_for(engine, "handle_error")
        def _error(context):
            starts = context.connection.info.get("animetop_query_start") if context.connection else None
            if starts:
                histogram.observe(time.perf_counter() - starts.pop())


class PoolCollector(Collector):
    """``animetop_db_connections_active`` / ``_idle``: the engine pool's checked-out and
    checked-in connections at scrape time."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterable:
        pool = self.engine.pool
        active = getattr(pool, "checkedout", lambda: 0)()
        idle = getattr(pool, "checkedin", lambda: 0)()
        yield GaugeMetricFamily("animetop_db_connections_active", "Database connections in use.", value=active)
        yield GaugeMetricFamily("animetop_db_connections_idle", "Database connections open and idle.", value=idle)


def _duration_seconds(engine: Engine):
    """processed_at − crawled_at in seconds, in the database's own dialect."""
    if engine.dialect.name == "mysql":
        return sa.func.timestampdiff(sa.literal_column("MICROSECOND"), crawl_log.c.crawled_at, crawl_log.c.processed_at) / 1e6
    return (sa.func.julianday(crawl_log.c.processed_at) - sa.func.julianday(crawl_log.c.crawled_at)) * 86400.0


class PipelineCollector(Collector):
    """The queue, scheduler and task figures of the manual's §3.2, read when scraped.

    - ``crawler_queue_depth{name}``: LLEN of the task and result queues.
    - ``animetop_scheduler_tasks_pending_in_queue``: IPs with a task queued or held by a crawler
      (the dedup set), what the dispatcher's backpressure counts.
    - ``animetop_task_dlq_total``: entries in both dead-letter lists.
    - ``animetop_tasks_processed_total{status}``: crawls applied (success) and crawls that
      reported an error plus failed Dagster runs of the crawl chain (failed), from the crawl log.
    - ``animetop_task_processing_duration_seconds``: crawl-to-applied time of every applied crawl.

    A source that cannot be read leaves its metrics out of that scrape (and logs why) rather
    than failing the scrape.
    """

    def __init__(self, engine: Engine | None, client: redis.Redis | None) -> None:
        self.engine = engine
        self.client = client

    def _warn(self, source: str, exc: Exception) -> None:
        log.warning("metrics source unavailable", extra={"source": source, "error": str(exc)})

    def collect(self) -> Iterable:
        failed_runs = 0
        if self.client is not None:
            try:
                with self.client.pipeline(transaction=False) as pipe:
                    pipe.llen(keys.TASKS)
                    pipe.llen(keys.RESULTS)
                    pipe.scard(keys.TASKS_PENDING)
                    pipe.llen(keys.TASKS_DEADLETTER)
                    pipe.llen(keys.RESULTS_DEADLETTER)
                    pipe.get(keys.FAILED_RUNS)
                    tasks, results, pending, dead_tasks, dead_results, runs = pipe.execute()
            except redis.RedisError as exc:
                self._warn("redis", exc)
            else:
                failed_runs = int(runs or 0)
                depth = GaugeMetricFamily("crawler_queue_depth", "Messages waiting in a queue.", labels=["name"])
                depth.add_metric(["tasks"], int(tasks))
                depth.add_metric(["results"], int(results))
                yield depth
                yield GaugeMetricFamily(
                    "animetop_scheduler_tasks_pending_in_queue",
                    "IPs with a crawl task queued or held by a crawler.", value=int(pending),
                )
                yield GaugeMetricFamily(
                    "animetop_task_dlq_total", "Entries in the task and result dead-letter lists.",
                    value=int(dead_tasks) + int(dead_results),
                )
        if self.engine is not None:
            try:
                yield from self._from_database(failed_runs)
            except sa.exc.SQLAlchemyError as exc:
                self._warn("database", exc)

    def _from_database(self, failed_runs: int) -> Iterable:
        seconds = _duration_seconds(self.engine)
        columns = [
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(sa.case((SUCCESSFUL_CRAWL, 0), else_=1)), 0),
            sa.func.coalesce(sa.func.sum(sa.case((SUCCESSFUL_CRAWL, seconds), else_=0)), 0),
            *[sa.func.coalesce(sa.func.sum(sa.case((sa.and_(SUCCESSFUL_CRAWL, seconds <= bound), 1), else_=0)), 0)
              for bound in PROCESSING_BUCKETS],
        ]
        with self.engine.connect() as connection:
            total, errors, duration_sum, *cumulative = connection.execute(sa.select(*columns)).one()
        total, errors = int(total), int(errors)
        success = total - errors
        processed = CounterMetricFamily(
            "animetop_tasks_processed", "Crawl results processed, by outcome.", labels=["status"]
        )
        processed.add_metric(["success"], success)
        processed.add_metric(["failed"], errors + failed_runs)
        yield processed
        buckets = [(str(float(b)), int(c)) for b, c in zip(PROCESSING_BUCKETS, cumulative, strict=True)]
        buckets.append(("+Inf", success))
        yield HistogramMetricFamily(
            "animetop_task_processing_duration_seconds",
            "Time from a crawl to its result applied to the database.",
            buckets=buckets, sum_value=float(duration_sum),
        )


def api_registry(engine: Engine, client: redis.Redis | None) -> tuple[CollectorRegistry, HttpMetrics]:
    """The API process's registry: HTTP, pool, query and pipeline metrics."""
    disable_created_metrics()
    registry = CollectorRegistry()
    http = HttpMetrics(registry)
    QueryTimer(registry).attach(engine)
    registry.register(PoolCollector(engine))
    registry.register(PipelineCollector(engine, client))
    return registry, http


def sidecar_registry(engine: Engine | None, client: redis.Redis | None) -> CollectorRegistry:
    """The sidecar's registry: the pipeline collector (and the pool it reads through)."""
    disable_created_metrics()
    registry = CollectorRegistry()
    registry.register(PipelineCollector(engine, client))
    return registry


class MetricsServer:
    """Prometheus text at ``/metrics`` on ``port`` in a background thread."""

    def __init__(self, registry: CollectorRegistry, port: int, host: str = "0.0.0.0") -> None:
        self._server, self._thread = start_http_server(port, addr=host, registry=registry)
        self.port = self._server.server_address[1]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def parse_addr(addr: str, default_port: int) -> tuple[str, int]:
    """``":8080"`` / ``"0.0.0.0:8080"`` / ``"8080"`` → (host, port); host defaults to 0.0.0.0."""
    text = addr.strip()
    if not text:
        return "0.0.0.0", default_port
    host, _, port = text.rpartition(":") if ":" in text else ("", "", text)
    return host or "0.0.0.0", int(port) if port else default_port


__all__ = [
    "HttpMetrics",
    "MetricsServer",
    "PipelineCollector",
    "PoolCollector",
    "QueryTimer",
    "api_registry",
    "parse_addr",
    "sidecar_registry",
]
