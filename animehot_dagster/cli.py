"""``animehot``: the operations command line."""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import click
import sqlalchemy as sa

from animehot_dagster.api.server import COMMANDS as API_COMMANDS
from animehot_dagster.crawler.commands import crawl_command, crawler_command
from animehot_dagster.domain.messages import MessageError, decode_response
from animehot_dagster.domain.timebuckets import from_unix, rfc3339_jst
from animehot_dagster.observability.logging import configure_logging
from animehot_dagster.queue.commands import COMMANDS as QUEUE_COMMANDS
from animehot_dagster.settings import Settings, SettingsError, load_settings
from animehot_dagster.simulator.commands import simulator_command
from animehot_dagster.stack.commands import COMMANDS as STACK_COMMANDS
from animehot_dagster.storage import open_engine
from animehot_dagster.storage.db import create_engine
from animehot_dagster.storage.ingest import IngestConfig, UnknownIpError, apply
from animehot_dagster.storage.ip_catalog import ImportFileError, import_ips, read_import_file
from animehot_dagster.storage.migrate import migrate
from animehot_dagster.storage.schema import ip_stats_hourly

log = logging.getLogger("animehot")

PROGRESS_EVERY_SECONDS = 2.0


def _settings(ctx: click.Context) -> Settings:
    return ctx.obj["settings"]


@click.group()
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Anime Hot operations."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        configure_logging("cli", stream=sys.stderr)
        log.error("failed to load config", extra={"error": str(exc)})
        raise click.ClickException(str(exc)) from None
    configure_logging("cli", settings.debug, stream=sys.stderr)
    ctx.obj = {"settings": settings}


@cli.command("migrate")
@click.option("--database-url", help="Database to migrate (default: from the environment).")
@click.pass_context
def migrate_command(ctx: click.Context, database_url: str | None) -> None:
    """Apply the schema migrations."""
    url = database_url or _settings(ctx).database_url
    try:
        engine = create_engine(url)
        revision = migrate(engine)
    except (sa.exc.SQLAlchemyError, ValueError) as exc:
        reason = getattr(exc, "orig", None) or exc
        raise click.ClickException(f"cannot migrate {sa.engine.make_url(url).render_as_string()}: {reason}") from None
    click.echo(f"schema at revision {revision} ({engine.url.render_as_string(hide_password=True)})")


@cli.command("import")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--upsert", is_flag=True, help="Update IPs that already exist (matched by name).")
@click.option("--database-url", help="Database to import into (default: from the environment).")
@click.pass_context
def import_command(ctx: click.Context, path: str, upsert: bool, database_url: str | None) -> None:
    """Import IPs from a JSON file in the ips_*.json format."""
    try:
        rows = read_import_file(path)
    except ImportFileError as exc:
        raise click.ClickException(str(exc)) from None
    engine = open_engine(_settings(ctx), database_url)
    report = import_ips(engine, rows, upsert=upsert, now=datetime.now(UTC))
    click.echo(f"created {len(report.created)}, updated {len(report.updated)}, failed {len(report.failed)}")
    for row in report.failed:
        click.echo(f"  failed row {row['index']} ({row['name']!r}): {row['reason']}")
    if report.failed:
        ctx.exit(1)


@cli.command("replay")
@click.argument("results", type=click.Path(exists=True, dir_okay=False))
@click.option("--database-url", help="Database to replay into (default: from the environment).")
@click.option("--ips", "ips_file", type=click.Path(exists=True, dir_okay=False), help="IPs file to import first.")
@click.pass_context
def replay_command(ctx: click.Context, results: str, database_url: str | None, ips_file: str | None) -> None:
    """Apply recorded CrawlResponses (one JSON per line) in order, then print every hourly row.

    Each result is processed as of its own crawl time, so a replay always gives the same figures.
    """
    settings = _settings(ctx)
    engine = open_engine(settings, database_url)
    if ips_file:
        report = import_ips(engine, read_import_file(ips_file), upsert=True, now=datetime.now(UTC))
        click.echo(f"imported IPs: created {len(report.created)}, updated {len(report.updated)}, "
                   f"failed {len(report.failed)}", err=True)
    config = IngestConfig.from_settings(settings)
    applied = skipped = 0
    last_progress = time.monotonic()
    with Path(results).open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                response = decode_response(line)
                apply(engine, response, config, now=from_unix(response.crawled_at))
                applied += 1
            except (MessageError, UnknownIpError) as exc:
                skipped += 1
                click.echo(f"line {number}: skipped: {exc}", err=True)
            if time.monotonic() - last_progress > PROGRESS_EVERY_SECONDS:
                click.echo(f"… {number} lines read, {applied} applied, {skipped} skipped", err=True)
                last_progress = time.monotonic()
    click.echo(f"replayed {applied} results, skipped {skipped} lines", err=True)
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(
                ip_stats_hourly.c.ip_id,
                ip_stats_hourly.c.hour_bucket,
                ip_stats_hourly.c.inflow,
                ip_stats_hourly.c.outflow,
                ip_stats_hourly.c.liquidity_index,
            ).order_by(ip_stats_hourly.c.ip_id, ip_stats_hourly.c.hour_bucket)
        )
        for ip_id, hour, inflow, outflow, liquidity in rows:
            click.echo(json.dumps({
                "ip_id": ip_id,
                "hour_bucket": rfc3339_jst(hour),
                "inflow": inflow,
                "outflow": outflow,
                "liquidity_index": None if liquidity is None else float(liquidity),
            }))


for command in (simulator_command, crawler_command, crawl_command, *QUEUE_COMMANDS, *API_COMMANDS, *STACK_COMMANDS):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="animehot")


if __name__ == "__main__":
    main()
