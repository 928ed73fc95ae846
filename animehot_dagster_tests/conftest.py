"""Fixtures on the real services: MariaDB/MySQL and Redis must be reachable, or the run fails.

TEST_MYSQL_URL (default mysql+pymysql://root@127.0.0.1:3306) names a server where the tests may
create and drop databases; TEST_REDIS_URL (default redis://127.0.0.1:6379/15) a Redis database
the tests may flush.

Under pytest-xdist (``make test`` runs two workers) every worker has its own: the MySQL databases
have random names already, and worker N flushes the N-th Redis database counting down from
TEST_REDIS_URL's (15, 14, 13, 11, …), never database 12 (BENCH_TEST_REDIS_URL: the benchmark
suite's test flushes it), 7 (the benchmarks' own) or 0 (everyone's default).
"""

from __future__ import annotations

import contextlib
import os
import urllib.parse
import uuid
from collections.abc import Iterator

import pytest
import redis
import sqlalchemy as sa

from animehot_dagster.stack.private_servers import PrivateMariaDB
from animehot_dagster.storage.db import create_engine
from animehot_dagster.storage.migrate import migrate
from animehot_dagster.storage.schema import metadata

MYSQL_SERVER_URL = os.environ.get("TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306")
_RESERVED_REDIS_DBS = {0, 7, 12}


def _worker_redis_url(url: str, worker: str | None) -> str:
    """``url`` in one process; under pytest-xdist worker ``gwN``'s own database of that server."""
    if not worker:
        return url
    base = redis.connection.parse_url(url).get("db", 0)
    candidates = [base] + [db for db in range(15, -1, -1) if db != base and db not in _RESERVED_REDIS_DBS]
    index = int(worker.removeprefix("gw"))
    if index >= len(candidates):
        raise RuntimeError(f"no Redis database left for xdist worker {worker} of {url}")
    return urllib.parse.urlsplit(url)._replace(path=f"/{candidates[index]}").geturl()


REDIS_URL = _worker_redis_url(os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15"),
                              os.environ.get("PYTEST_XDIST_WORKER"))


def _mysql_reachable() -> str | None:
    try:
        engine = sa.create_engine(MYSQL_SERVER_URL)
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure means the service is not usable
        return f"MySQL at {MYSQL_SERVER_URL}: {exc}"
    return None


def _redis_reachable() -> str | None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except Exception as exc:  # noqa: BLE001
        return f"Redis at {REDIS_URL}: {exc}"
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The slow tests first, so the two workers of ``make test`` start the long ones at once and
    share out the short ones after; and under ``--dist loadgroup`` every module is a group of its
    own (unless its tests name one), so a module-scoped fixture is set up on one worker only."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: order kept within
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))


def pytest_sessionstart(session: pytest.Session) -> None:
    problems = [p for p in (_mysql_reachable(), _redis_reachable()) if p]
    if problems:
        pytest.exit("the tests need the real services, which cannot be reached: " + "; ".join(problems), returncode=3)


@contextlib.contextmanager
def fresh_mysql_database(prefix: str = "animehot_test") -> Iterator[str]:
    """A new, migrated MySQL database (its URL), dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    server = sa.create_engine(MYSQL_SERVER_URL)
    with server.begin() as connection:
        connection.execute(sa.text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
    url = f"{MYSQL_SERVER_URL}/{name}?charset=utf8mb4"
    engine = create_engine(url)
    migrate(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with server.begin() as connection:
            connection.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        server.dispose()


@pytest.fixture(scope="session")
def mysql_database_url() -> Iterator[str]:
    """A MySQL database migrated once for the whole session."""
    with fresh_mysql_database() as url:
        yield url


def _empty_mysql(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("SET FOREIGN_KEY_CHECKS = 0"))
        for table in metadata.sorted_tables:
            connection.execute(sa.text(f"TRUNCATE TABLE {table.name}"))
        connection.execute(sa.text("SET FOREIGN_KEY_CHECKS = 1"))
    engine.dispose()


@pytest.fixture
def mysql_url(mysql_database_url: str) -> str:
    """The session's MySQL database, emptied for this test."""
    _empty_mysql(mysql_database_url)
    return mysql_database_url


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'animehot.sqlite3'}"
    engine = create_engine(url)
    migrate(engine)
    engine.dispose()
    return url


@pytest.fixture(params=["mysql", "sqlite"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Run the test once on MySQL and once on the embedded SQLite."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def mysql_engine(mysql_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(mysql_url)
    yield engine
    engine.dispose()


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def queue_redis(redis_client: redis.Redis) -> Iterator[redis.Redis]:
    """A bytes client (what the queues require) on the test database ``redis_client`` flushes."""
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


@pytest.fixture(scope="module")
def private_mariadb() -> Iterator[PrivateMariaDB]:
    """A mariadbd of the module's own, for tests that stop or hang their database."""
    server = PrivateMariaDB()
    server.start()
    yield server
    server.remove()
