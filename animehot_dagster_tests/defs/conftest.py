"""Fixtures of the Dagster tests: the code location loaded against the test MySQL database and
the test Redis database, a real (temporary, persistent) Dagster instance, and the hour every
``past_hour`` of a test counts from.

The definitions read their resources from the environment (``settings``), exactly as the code
server does; the ``dagster_env`` fixture points that environment at the test services.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import dagster as dg
import pytest
import redis

from animehot_dagster.defs.resources import build_resources
from animehot_dagster.settings import Settings, load_settings
from animehot_dagster_tests.defs import TEST_ENV, anchored_hour


@pytest.fixture
def dagster_env(monkeypatch: pytest.MonkeyPatch, mysql_url: str, queue_redis: redis.Redis) -> Settings:
    """The process environment of a code server pointed at the test MySQL database and Redis db."""
    monkeypatch.setenv("DATABASE_URL", mysql_url)
    for name, value in TEST_ENV.items():
        monkeypatch.setenv(name, value)
    return load_settings()


@pytest.fixture
def definitions(dagster_env: Settings) -> dg.Definitions:
    """The code location as `dagster dev` / the gRPC server loads it."""
    from animehot_dagster.definitions import defs

    return defs()


@pytest.fixture
def resources(dagster_env: Settings) -> dict[str, dg.ConfigurableResource]:
    return build_resources(dagster_env)


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    """A real, persistent (temporary directory) Dagster instance: runs, events, dynamic partitions."""
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture(autouse=True)
def hour_anchor() -> Iterator[datetime]:
    """The current hour, fixed when the test starts: every ``past_hour`` of one test counts from
    it, so that a test running across the turn of an hour stays consistent."""
    with anchored_hour() as anchor:
        yield anchor
