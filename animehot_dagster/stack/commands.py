"""``animehot demo``, ``animehot up`` and ``animehot verify``: the local system from one command."""

from __future__ import annotations

import logging
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import click

from animehot_dagster.settings import SettingsError, parse_duration
from animehot_dagster.stack.processes import CommandFailed, ServiceExited, StopRequest
from animehot_dagster.stack.system import COMPONENT_SETS, REPO, LocalSystem, StartupFailed, SystemConfig, read_env_file
from animehot_dagster.stack.verify import verify

SAMPLE_IPS = REPO.parent / "shared" / "data" / "ips_sample.json"
DEFAULT_DEMO_DURATION = "6m"


def _echo(message: str) -> None:
    click.echo(message, err=False)
    sys.stdout.flush()


def _duration(ctx: click.Context, param: click.Parameter, value: str) -> float:
    try:
        seconds = parse_duration(value).total_seconds()
    except SettingsError as exc:
        raise click.BadParameter(f"{value!r}: {exc}") from None
    if seconds <= 0:
        raise click.BadParameter(f"{value!r}: must be longer than 0")
    return seconds


def _run_dir(kind: str, chosen: str | None) -> Path:
    if chosen:
        return Path(chosen).resolve()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return (REPO / "var" / kind / stamp).resolve()


def _ips_file(value: str | None) -> Path:
    path = Path(value) if value else SAMPLE_IPS
    if not path.is_file():
        raise click.BadParameter(f"{path} does not exist (give an IP import file)", param_hint="--ips / DEMO_IPS")
    return path.resolve()


@click.command("demo")
@click.option("--duration", envvar="DEMO_DURATION", default=DEFAULT_DEMO_DURATION, show_default=True,
              callback=_duration, help="How long the system runs before the summary (DEMO_DURATION), e.g. 6m, 90s.")
@click.option("--ips", "ips", envvar="DEMO_IPS", help=f"IP import file (DEMO_IPS; default {SAMPLE_IPS}).")
@click.option("--dir", "workdir", envvar="DEMO_DIR", help="Run directory (DEMO_DIR; default var/demo/<time>).")
def demo_command(duration: float, ips: str | None, workdir: str | None) -> None:
    """Run the whole system on this machine for a few minutes, then print what it measured."""
    from animehot_dagster.stack.demo import run_demo  # imports Dagster: only for this command

    try:
        code = run_demo(duration, _ips_file(ips), _run_dir("demo", workdir), dict(os.environ), echo=_echo)
    except (StartupFailed, ServiceExited, CommandFailed, TimeoutError) as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(code)


@click.command("up")
@click.option("--components", type=click.Choice(sorted(COMPONENT_SETS)), default="all", show_default=True,
              help="all: simulator, crawler, Dagster, API; analyzer: Dagster and the API only, on the "
              "configured servers and the real cadence.")
@click.option("--ips", "ips", help="IP import file to import first.")
@click.option("--dir", "workdir", help="Run directory (default var/up/<time>); its system.env names the URLs.")
def up_command(components: str, ips: str | None, workdir: str | None) -> None:
    """Run the system (or its analyzer half) until Ctrl-C or SIGTERM."""
    simulated = components == "all"
    config = SystemConfig(workdir=_run_dir("up", workdir), ips_file=_ips_file(ips) if ips else None,
                          components=COMPONENT_SETS[components], compressed_cadence=simulated)
    system = LocalSystem(config, dict(os.environ), log=_echo)
    stop = StopRequest()
    with stop.installed():
        try:
            system.start()
            _echo(f"running; state in {system.state_file}; Ctrl-C stops it")
            # As under Compose with `restart: unless-stopped`, a piece that dies does not take the
            # others down: it is reported and restarted with backoff, each time, while the rest
            # keeps running; system.env follows the restarted processes.
            while not stop.requested.wait(1):
                system.supervise()
        except (StartupFailed, ServiceExited, CommandFailed, TimeoutError) as exc:
            raise click.ClickException(str(exc)) from None
        finally:
            system.stop()


@click.command("verify")
@click.option("--state", "state_file", type=click.Path(exists=True, dir_okay=False),
              help="system.env of a running `animehot up`; default: the URLs from the environment "
              "(API_URL, REDIS_URL, DATABASE_URL, METRICS_URL, DAGSTER_HOME).")
@click.option("--min-crawls", default=2, show_default=True, help="Crawls each active IP must have (the first is its baseline).")
@click.option("--wait", "wait_seconds", default=0.0, help="Keep checking for up to this many seconds until every check passes.")
def verify_command(state_file: str | None, min_crawls: int, wait_seconds: float) -> None:
    """Check that data flowed end to end: services up, every active IP crawled and measured,
    nothing dead-lettered, no failed Dagster runs. Names what did not."""
    # One "database connected" line per attempt would bury the findings.
    logging.getLogger("animehot").setLevel(logging.WARNING)
    env = dict(os.environ)
    if state_file:
        env.update(read_env_file(Path(state_file)))
    deadline = time.monotonic() + wait_seconds
    while True:
        checks = verify(env, min_crawls)
        if all(check.ok for check in checks) or time.monotonic() >= deadline:
            break
        time.sleep(5)
    for check in checks:
        _echo(f"{'PASS' if check.ok else 'FAIL'}  {check.name}: {check.detail}")
    failed = [check.name for check in checks if not check.ok]
    if failed:
        raise click.ClickException(f"grayscale verification failed: {', '.join(failed)}")
    _echo("OK: data flowed end to end")


COMMANDS = (demo_command, up_command, verify_command)
