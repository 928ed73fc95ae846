"""``animehot api`` (the HTTP API with its metrics on :2112) and ``animehot metrics`` (the
pipeline collectors alone: the sidecar beside the Dagster daemon).

Shutdown (SPEC §12, 30 s): on SIGTERM/SIGINT uvicorn stops accepting, lets requests in flight
finish for up to 30 s, then the metrics server stops and the database pool closes.

The API's database calls wait at most :data:`API_TIMEOUTS` (or the shorter DB_* settings): a
hung database (issue 17 #6) answers 503 envelopes within a few seconds instead of holding every
request for the ingest's longer timeouts. Migrations (AUTO_MIGRATE) run first on an engine with
the ordinary timeouts, since DDL may take longer than any API query.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import sys
import threading

import click
import uvicorn
from sqlalchemy.engine import Engine

from animehot_dagster.api.app import create_app
from animehot_dagster.observability.logging import configure_logging
from animehot_dagster.observability.metrics import MetricsServer, api_registry, parse_addr, sidecar_registry
from animehot_dagster.queue.reliable import open_redis
from animehot_dagster.settings import Settings, SettingsError
from animehot_dagster.storage import database_timeouts, open_engine
from animehot_dagster.storage.db import DatabaseTimeouts, create_engine

log = logging.getLogger("animehot.api")

SHUTDOWN_GRACE_SECONDS = 30
# The longest a request waits on the database: the handshake of a new connection, each answer
# (the slowest API query, an uncached leaderboard over 23 hours, takes ~0.1 s), each send, and a
# free connection of the pool. A hung server: the pool's pre-ping waits ``read``, the reconnect
# ``connect``, then 503.
API_TIMEOUTS = DatabaseTimeouts(connect=2.0, read=3.0, write=3.0, pool=2.0)


def api_timeouts(settings: Settings) -> DatabaseTimeouts:
    """Each of the DB_* timeouts, capped at :data:`API_TIMEOUTS`."""
    configured = database_timeouts(settings)
    return DatabaseTimeouts(**{field.name: min(getattr(configured, field.name), getattr(API_TIMEOUTS, field.name))
                               for field in dataclasses.fields(DatabaseTimeouts)})


def api_engine(settings: Settings) -> Engine:
    """The API's engine (short timeouts), after AUTO_MIGRATE on one with the ordinary ones."""
    if settings.auto_migrate:
        open_engine(settings).dispose()
    return create_engine(settings.database_url, timeouts=api_timeouts(settings))


class _Server(uvicorn.Server):
    def handle_exit(self, sig: int, frame) -> None:
        if not self.should_exit:
            log.info("shutdown signal received", extra={"signal": signal.Signals(sig).name})
        super().handle_exit(sig, frame)


def serve(settings: Settings, host: str, port: int, metrics_port: int | None, metrics_host: str = "0.0.0.0") -> None:
    log.info("starting IP liquidity analyzer service",
             extra={"http": f"{host}:{port}", "metrics_port": metrics_port, "env": settings.app_env})
    engine = api_engine(settings)
    client = open_redis(settings.redis_url, settings.redis_pool_size)
    registry, http_metrics = api_registry(engine, client)
    app = create_app(settings, engine, client, metrics=http_metrics)
    metrics_server = MetricsServer(registry, metrics_port, metrics_host) if metrics_port else None
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False,
                            timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS, lifespan="on")
    try:
        _Server(config).run()
    finally:
        if metrics_server is not None:
            metrics_server.close()
        client.close()
        engine.dispose()
        log.info("service stopped")


def _settings(ctx: click.Context) -> Settings:
    return ctx.obj["settings"]


@click.command("api")
@click.option("--host", default=None, help="Listen address (default: from APP_HTTP_ADDR, else 0.0.0.0).")
@click.option("--port", type=int, default=None, help="HTTP port (default: from APP_HTTP_ADDR, 8080).")
@click.option("--metrics-port", type=int, default=None, help="Metrics port (default: from APP_METRICS_ADDR, 2112; 0 = none).")
@click.pass_context
def api_command(ctx: click.Context, host: str | None, port: int | None, metrics_port: int | None) -> None:
    """Serve the HTTP API, with Prometheus metrics on the metrics port."""
    settings = _settings(ctx)
    configure_logging("api", settings.debug, stream=sys.stdout)
    try:
        from animehot_dagster.api.app import check_startup

        check_startup(settings)
        http_host, http_port = parse_addr(settings.app_http_addr, 8080)
        metrics_host, default_metrics_port = parse_addr(settings.app_metrics_addr, 2112)
    except (SettingsError, ValueError) as exc:
        log.error("failed to load config", extra={"error": str(exc)})
        raise click.ClickException(str(exc)) from None
    serve(settings, host or http_host, http_port if port is None else port,
          default_metrics_port if metrics_port is None else metrics_port, metrics_host)


@click.command("metrics")
@click.option("--host", default=None, help="Listen address (default: from APP_METRICS_ADDR, else 0.0.0.0).")
@click.option("--port", type=int, default=None, help="Metrics port (default: from APP_METRICS_ADDR, 2112).")
@click.pass_context
def metrics_command(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Serve only the pipeline metrics (queues, scheduler, tasks): the sidecar beside Dagster."""
    settings = _settings(ctx)
    configure_logging("metrics", settings.debug, stream=sys.stdout)
    try:
        metrics_host, metrics_port = parse_addr(settings.app_metrics_addr, 2112)
    except ValueError as exc:
        log.error("failed to load config", extra={"error": str(exc)})
        raise click.ClickException(str(exc)) from None
    engine = open_engine(settings)
    client = open_redis(settings.redis_url, settings.redis_pool_size)
    server = MetricsServer(sidecar_registry(engine, client), metrics_port if port is None else port,
                           host or metrics_host)
    log.info("metrics sidecar started", extra={"port": server.port})
    stop = threading.Event()

    def _stop(sig, frame):
        log.info("shutdown signal received", extra={"signal": signal.Signals(sig).name})
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    while not stop.wait(1.0):
        pass
    server.close()
    client.close()
    engine.dispose()
    log.info("metrics sidecar stopped")


COMMANDS = (api_command, metrics_command)
