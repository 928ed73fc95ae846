"""The crawler tests' fixtures: a frozen simulated market served on a real socket, one per test
module, and its faults and request log reset for each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from animehot_dagster.simulator.app import SimulatorState, create_app
from animehot_dagster.simulator.server import SimulatorServer, build_state
from animehot_dagster_tests.crawler import AS_OF, SCENARIO, Market


@pytest.fixture(scope="module")
def simulator_state() -> SimulatorState:
    return build_state(SCENARIO, seed=21, time_scale=0, start=AS_OF)


@pytest.fixture(scope="module")
def simulator(simulator_state: SimulatorState) -> Iterator[SimulatorServer]:
    with SimulatorServer(create_app(simulator_state)) as running:
        yield running


@pytest.fixture
def market(simulator: SimulatorServer, simulator_state: SimulatorState) -> Iterator[Market]:
    """The running simulator with no faults and an empty request log; faults set by the test
    are cleared afterwards."""
    simulator_state.faults.replace([])
    simulator_state.requests.clear()
    yield Market(simulator, simulator_state)
    simulator_state.faults.replace([])
