from __future__ import annotations

from collections.abc import Iterator

import pytest

from animehot_dagster.storage.db import create_engine
from animehot_dagster_tests.conftest import fresh_mysql_database
from animehot_dagster_tests.scripts import ApiProcess, RedisServer, seed_every_table


@pytest.fixture(scope="module")
def seeded_url() -> Iterator[str]:
    """A migrated MySQL database with rows in every table (read-only for the tests)."""
    with fresh_mysql_database("animehot_scripts") as url:
        engine = create_engine(url)
        seed_every_table(engine)
        engine.dispose()
        yield url


@pytest.fixture
def empty_url() -> Iterator[str]:
    """A migrated MySQL database without data."""
    with fresh_mysql_database("animehot_scripts") as url:
        yield url


@pytest.fixture
def redis_server(tmp_path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def api(empty_url, redis_server, tmp_path) -> Iterator[ApiProcess]:
    process = ApiProcess(empty_url, redis_server.url, tmp_path / "api.log")
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()
