"""``animehot simulator``: serve the simulated Mercari (web search page and search API)."""

from __future__ import annotations

import click

from animehot_dagster.simulator.faults import BLOCKING_KINDS, FaultKind
from animehot_dagster.simulator.scenario import ScenarioError, parse_time
from animehot_dagster.simulator.server import DEFAULT_PORT, run_simulator


def _fault_kinds(ctx: click.Context, param: click.Parameter, value: str) -> tuple[FaultKind, ...]:
    try:
        return tuple(FaultKind(name.strip()) for name in value.split(",") if name.strip())
    except ValueError as exc:
        raise click.BadParameter(f"{exc}; kinds: {', '.join(k.value for k in FaultKind)}") from None


def _start_time(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    try:
        return None if value is None else parse_time(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command("simulator")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--scenario",
    type=click.Path(exists=True, dir_okay=False),
    help="Scenario file (YAML/JSON): keywords, rates, surges, faults. Default: the packaged "
    "default scenario, unless --ips is given.",
)
@click.option(
    "--ips",
    type=click.Path(exists=True, dir_okay=False),
    help="IP import file; every IP the scenario does not define gets a market derived from its weight.",
)
@click.option("--seed", type=int, help="Market seed (default: the scenario's, else 1). Same seed, same market.")
@click.option(
    "--time-scale",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Market seconds per wall second (60: an hour a minute; 0: frozen at --start).",
)
@click.option("--start", callback=_start_time, help="Market time at start, unix or RFC 3339 (default: now).")
@click.option(
    "--fault-rate",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Fraction of market requests answered with a fault from --fault-kinds.",
)
@click.option(
    "--fault-kinds",
    default=",".join(kind.value for kind in BLOCKING_KINDS),
    show_default=True,
    callback=_fault_kinds,
    help="Comma-separated fault kinds for --fault-rate.",
)
def simulator_command(
    host: str,
    port: int,
    scenario: str | None,
    ips: str | None,
    seed: int | None,
    time_scale: float,
    start: int | None,
    fault_rate: float,
    fault_kinds: tuple[FaultKind, ...],
) -> None:
    """Serve the simulated Mercari: GET /search (web page), POST /v2/entities:search (API),
    and the yardstick GET /__truth?keyword=&from=&to=."""
    if fault_rate > 0 and not fault_kinds:
        raise click.BadParameter("name at least one kind", param_hint="--fault-kinds")
    click.echo(f"market simulator on http://{host}:{port} (web /search, API /v2/entities:search)", err=True)
    try:
        run_simulator(
            host,
            port,
            scenario,
            seed,
            ips=ips,
            time_scale=time_scale,
            start=start,
            fault_rate=fault_rate,
            fault_kinds=fault_kinds,
        )
    except ScenarioError as exc:  # raised before the port is bound
        raise click.ClickException(str(exc)) from None
