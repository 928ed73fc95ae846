"""``animehot crawler`` (the node) and ``animehot crawl KEYWORD`` (one crawl, no Redis)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sys
import time
from pathlib import Path

import click
import redis.asyncio as aioredis

from animehot_dagster.crawler.crawl import Crawler, CrawlerConfig
from animehot_dagster.crawler.metrics import CrawlerMetrics, MetricsServer
from animehot_dagster.crawler.node import SHUTDOWN_GRACE_SECONDS, CrawlerNode
from animehot_dagster.crawler.ratelimit import LocalRateLimiter, RedisRateLimiter
from animehot_dagster.crawler.resilience import Mode
from animehot_dagster.domain.messages import (
    CrawlRequest,
    CrawlResponse,
    encode_response,
)
from animehot_dagster.observability.logging import configure_logging
from animehot_dagster.queue.reliable import ResultQueue, TaskQueue, open_redis
from animehot_dagster.settings import Settings, parse_duration

log = logging.getLogger(__name__)


def _duration_seconds(ctx: click.Context, param: click.Parameter, value: str) -> float:
    try:
        return parse_duration(value).total_seconds()
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


async def run_node(settings: Settings, shutdown_grace_seconds: float, results_log: Path | None = None) -> None:
    metrics = CrawlerMetrics()
    queue_client = open_redis(settings.redis_url, settings.redis_pool_size)
    limiter_client = aioredis.Redis.from_url(settings.redis_url)
    crawler = Crawler(
        CrawlerConfig.from_settings(settings),
        RedisRateLimiter(limiter_client, settings.app_rate_limit, settings.app_rate_burst),
        metrics,
    )
    node = CrawlerNode(
        crawler, TaskQueue(queue_client), ResultQueue(queue_client), shutdown_grace_seconds=shutdown_grace_seconds,
        results_log=results_log,
    )
    server = MetricsServer(metrics, lambda: node.ready, settings.metrics_port)
    server.start()
    log.info("metrics server listening", extra={"port": server.port})
    try:
        await node.run()  # closes the browser on its way out
    finally:
        server.close()
        await limiter_client.aclose()
        queue_client.close()


async def crawl_once(config: CrawlerConfig, request: CrawlRequest, rate: float, burst: int) -> CrawlResponse:
    crawler = Crawler(config, LocalRateLimiter(rate, burst), CrawlerMetrics())
    try:
        return await crawler.crawl(request)
    finally:
        await crawler.close()


@click.command("crawler")
@click.option(
    "--shutdown-grace",
    default=f"{SHUTDOWN_GRACE_SECONDS:g}s",
    show_default=True,
    callback=_duration_seconds,
    help="On SIGTERM, how long the current crawl may go on before its task goes back to the queue "
    "(match the container's stop grace period).",
)
@click.option(
    "--results-log",
    envvar="CRAWLER_RESULTS_LOG",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Append a JSON line for every result this node pushes, before and after the push, to this file "
    "(CRAWLER_RESULTS_LOG): a record of what the node delivered, for audits such as bench/chaos.py.",
)
@click.pass_context
def crawler_command(ctx: click.Context, shutdown_grace: float, results_log: Path | None) -> None:
    """Run a crawler node: crawl tasks from the Redis queue until SIGTERM."""
    settings: Settings = ctx.obj["settings"]
    configure_logging("crawler", settings.debug)
    asyncio.run(run_node(settings, shutdown_grace, results_log))


@click.command("crawl")
@click.argument("keyword")
@click.option("--mode", type=click.Choice([m.value for m in Mode]),
              help="Use only this mode (default: API first, the browser as fallback).")
@click.option("--pages-on-sale", type=click.IntRange(min=0), help="Default: SCHEDULER_PAGES_ON_SALE.")
@click.option("--pages-sold", type=click.IntRange(min=0), help="Default: SCHEDULER_PAGES_SOLD.")
@click.pass_context
def crawl_command(ctx: click.Context, keyword: str, mode: str | None, pages_on_sale: int | None,
                  pages_sold: int | None) -> None:
    """Crawl KEYWORD once, without Redis, and print the CrawlResponse JSON (exit 1 if it failed)."""
    settings: Settings = ctx.obj["settings"]
    config = CrawlerConfig.from_settings(settings, pinned_mode=Mode(mode) if mode else None)
    pages = dataclasses.replace(
        settings.cadence,
        pages_on_sale=settings.scheduler_pages_on_sale if pages_on_sale is None else pages_on_sale,
        pages_sold=settings.scheduler_pages_sold if pages_sold is None else pages_sold,
    )
    request = CrawlRequest.new_task(0, keyword, pages, time.time(), task_id="cli")
    if not request.pages_on_sale and not request.pages_sold:
        raise click.UsageError("nothing to crawl: both page counts are 0")
    response = asyncio.run(crawl_once(config, request, settings.app_rate_limit, settings.app_rate_burst))
    click.echo(encode_response(response))
    if response.failed:
        sys.exit(1)
