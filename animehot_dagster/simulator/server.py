"""Assembling and running the simulator: from a scenario and options to a served app.

:func:`run_simulator` serves in the foreground (the ``animehot simulator`` command);
:class:`SimulatorServer` serves in a background thread on a free port, for tests and benchmarks
that need a real socket.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from animehot_dagster.simulator.app import SimulatorState, create_app
from animehot_dagster.simulator.clock import MarketClock
from animehot_dagster.simulator.faults import BLOCKING_KINDS, FaultKind, FaultPlan, FaultRule
from animehot_dagster.simulator.market import Market
from animehot_dagster.simulator.scenario import (
    DEFAULT_SCENARIO_PATH,
    Scenario,
    load_scenario,
    profiles_from_ips,
)

DEFAULT_PORT = 8090
DEFAULT_SEED = 1


def load_market_scenario(scenario_path: str | Path | None = None, ips_path: str | Path | None = None) -> Scenario:
    """The scenario file's market plus a derived profile for every IP of the IPs file it does
    not define. With neither, the packaged default scenario."""
    if scenario_path is None and ips_path is None:
        scenario_path = DEFAULT_SCENARIO_PATH
    scenario = load_scenario(scenario_path) if scenario_path is not None else Scenario()
    if ips_path is not None:
        scenario = scenario.with_profiles(profiles_from_ips(ips_path))
    return scenario


def build_state(
    scenario: Scenario,
    *,
    seed: int | None = None,
    time_scale: float = 1.0,
    start: float | None = None,
    fault_rate: float = 0.0,
    fault_kinds: Iterable[FaultKind] = BLOCKING_KINDS,
) -> SimulatorState:
    """``seed`` overrides the scenario's; ``fault_rate`` adds a rule answering that fraction
    of all market requests with one of ``fault_kinds``, after the scenario's own rules."""
    seed = seed if seed is not None else scenario.seed if scenario.seed is not None else DEFAULT_SEED
    rules = list(scenario.fault_rules)
    if fault_rate > 0:
        rules.append(FaultRule(kinds=tuple(fault_kinds), rate=fault_rate))
    clock = MarketClock(start=start, scale=time_scale)
    market = Market(
        scenario.profiles,
        seed=seed,
        horizon_hours=scenario.horizon_hours,
        realism=scenario.realism,
        # The sold count keeps what sold since a horizon before the market opened.
        sold_count_origin=int(clock.now()) - scenario.horizon_hours * 3600,
    )
    return SimulatorState(market=market, clock=clock, faults=FaultPlan(rules, seed=seed))


def run_simulator(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    scenario: str | Path | None = None,
    seed: int | None = None,
    *,
    ips: str | Path | None = None,
    time_scale: float = 1.0,
    start: float | None = None,
    fault_rate: float = 0.0,
    fault_kinds: Iterable[FaultKind] = BLOCKING_KINDS,
    log_level: str = "info",
) -> None:
    state = build_state(
        load_market_scenario(scenario, ips),
        seed=seed,
        time_scale=time_scale,
        start=start,
        fault_rate=fault_rate,
        fault_kinds=fault_kinds,
    )
    uvicorn.run(create_app(state), host=host, port=port, log_level=log_level)


class SimulatorServer:
    """Serves an app on 127.0.0.1 on a free port in a background thread::

    with SimulatorServer(create_app(state)) as server:
        httpx.get(server.url + "/health")
    """

    def __init__(self, app: FastAPI, host: str = "127.0.0.1") -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, 0))
        self.host, self.port = self._socket.getsockname()[:2]
        self.url = f"http://{self.host}:{self.port}"
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    def __enter__(self) -> SimulatorServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the simulator did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()
