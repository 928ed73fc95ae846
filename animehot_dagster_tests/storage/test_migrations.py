"""The Alembic migrations build exactly the schema the code declares, on MySQL and SQLite, from
the library call, the ``animehot migrate`` command and the AUTO_MIGRATE start-up path."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from animehot_dagster.settings import load_settings
from animehot_dagster.storage import open_engine
from animehot_dagster.storage.db import create_engine
from animehot_dagster.storage.migrate import current_revision, head_revision, migrate
from animehot_dagster.storage.schema import ip_metadata, metadata
from animehot_dagster_tests.conftest import MYSQL_SERVER_URL

REPO = Path(__file__).resolve().parents[2]
ANIMEHOT = Path(sys.executable).with_name("animehot")
TABLES = {table.name for table in metadata.sorted_tables}


@pytest.fixture
def fresh_mysql_url() -> Iterator[str]:
    """An empty MySQL database of its own, created with a latin1 default so that the tables'
    utf8mb4 has to come from the migration itself."""
    name = f"animehot_mig_{uuid.uuid4().hex[:10]}"
    server = sa.create_engine(MYSQL_SERVER_URL)
    with server.begin() as connection:
        connection.execute(sa.text(f"CREATE DATABASE {name} CHARACTER SET latin1"))
    try:
        yield f"{MYSQL_SERVER_URL}/{name}?charset=utf8mb4"
    finally:
        with server.begin() as connection:
            connection.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        server.dispose()


@pytest.fixture
def fresh_sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'data' / 'animehot.sqlite3'}"


@pytest.fixture(params=["mysql", "sqlite"])
def fresh_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(f"fresh_{request.param}_url")


def schema_differences(engine: sa.Engine) -> list:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, metadata)


def table_names(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_migrate_builds_exactly_the_declared_schema(fresh_url):
    engine = create_engine(fresh_url)
    try:
        assert table_names(fresh_url) == set()
        revision = migrate(engine)

        assert revision == head_revision()
        assert TABLES <= table_names(fresh_url)
        assert schema_differences(engine) == []
    finally:
        engine.dispose()


def test_mysql_tables_are_utf8mb4_and_ip_names_compare_exactly(fresh_mysql_url):
    engine = create_engine(fresh_mysql_url)
    try:
        migrate(engine)
        with engine.connect() as connection:
            collations = dict(
                connection.execute(
                    sa.text(
                        "SELECT TABLE_NAME, TABLE_COLLATION FROM information_schema.TABLES "
                        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME <> 'alembic_version'"
                    )
                ).all()
            )
        assert collations == {name: "utf8mb4_unicode_ci" for name in TABLES}
        # Keywords differing only in kana/case folding are different IPs (SPEC: name is unique).
        names = ["ちいかわ", "チイカワ", "Hololive", "hololive", "🐹 ハム"]
        with engine.begin() as connection:
            connection.execute(ip_metadata.insert(), [{"name": n} for n in names])
        with engine.connect() as connection:
            stored = connection.execute(sa.select(ip_metadata.c.name).order_by(ip_metadata.c.id)).scalars().all()
        assert stored == names
    finally:
        engine.dispose()


def test_migrate_is_idempotent_and_keeps_the_data(fresh_url):
    engine = create_engine(fresh_url)
    try:
        first = migrate(engine)
        with engine.begin() as connection:
            connection.execute(ip_metadata.insert().values(name="ぼっち・ざ・ろっく！", weight=1.5))

        second = migrate(engine)
        third = migrate(engine)

        assert first == second == third == current_revision(engine) == head_revision()
        assert schema_differences(engine) == []
        with engine.connect() as connection:
            rows = connection.execute(sa.select(ip_metadata.c.name, ip_metadata.c.weight)).all()
            versions = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
        assert [(name, float(weight)) for name, weight in rows] == [("ぼっち・ざ・ろっく！", 1.5)]
        assert versions == [head_revision()]
    finally:
        engine.dispose()


def _cli_environment(**extra: str) -> dict[str, str]:
    """The caller's environment without any database settings of its own."""
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("MYSQL_", "DATABASE_", "AUTO_MIGRATE", "ANIMEHOT_"))
    }
    return {**environment, **extra}


def test_the_migrate_command_migrates_the_named_database(fresh_url, tmp_path):
    command = [str(ANIMEHOT), "migrate", "--database-url", fresh_url]

    done = subprocess.run(command, cwd=tmp_path, env=_cli_environment(), capture_output=True, text=True, timeout=120)
    again = subprocess.run(command, cwd=tmp_path, env=_cli_environment(), capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr
    assert again.returncode == 0, again.stderr
    assert f"schema at revision {head_revision()}" in done.stdout
    assert f"schema at revision {head_revision()}" in again.stdout
    engine = create_engine(fresh_url)
    try:
        assert schema_differences(engine) == []
    finally:
        engine.dispose()
    assert not (tmp_path / "var").exists()  # it did not fall back to the default SQLite file


BAD_URLS = [
    ("postgresql://nobody@127.0.0.1/none", "unsupported database 'postgresql'"),
    (f"{MYSQL_SERVER_URL}/animehot_no_such_database", "Unknown database 'animehot_no_such_database'"),
]


def _migrate_command(url: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(ANIMEHOT), "migrate", "--database-url", url],
        cwd=cwd, env=_cli_environment(), capture_output=True, text=True, timeout=120,
    )


@pytest.mark.parametrize(("url", "reason"), BAD_URLS, ids=["other-dialect", "missing-database"])
def test_the_migrate_command_fails_on_an_unusable_database_naming_why(url, reason, tmp_path):
    done = _migrate_command(url, tmp_path)

    assert done.returncode != 0
    assert reason in done.stderr


@pytest.mark.parametrize(("url", "reason"), BAD_URLS, ids=["other-dialect", "missing-database"])
def test_the_migrate_command_reports_an_unusable_database_without_a_traceback(url, reason, tmp_path):
    done = _migrate_command(url, tmp_path)

    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr


def test_auto_migrate_brings_the_schema_up_to_date_at_start(fresh_url):
    engine = open_engine(load_settings({"DATABASE_URL": fresh_url}))  # AUTO_MIGRATE defaults to true
    try:
        assert current_revision(engine) == head_revision()
        assert schema_differences(engine) == []
    finally:
        engine.dispose()


def test_auto_migrate_false_leaves_the_database_alone(fresh_url):
    engine = open_engine(load_settings({"DATABASE_URL": fresh_url, "AUTO_MIGRATE": "false"}))
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
        assert table_names(fresh_url) == set()
        assert current_revision(engine) is None
    finally:
        engine.dispose()


def test_auto_migrate_uses_the_mysql_settings_when_no_url_is_given(fresh_mysql_url):
    url = sa.make_url(fresh_mysql_url)
    environment = {
        "MYSQL_HOST": url.host,
        "MYSQL_PORT": str(url.port or 3306),
        "MYSQL_USER": url.username,
        "MYSQL_DATABASE": url.database,
        "AUTO_MIGRATE": "true",
    }
    engine = open_engine(load_settings(environment))
    try:
        assert engine.dialect.name == "mysql"
        assert current_revision(engine) == head_revision()
        assert TABLES <= table_names(fresh_mysql_url)
    finally:
        engine.dispose()


def test_threads_of_one_process_migrating_at_once_all_succeed(fresh_mysql_url):
    """A code server evaluates sensors on threads, and each may be the first to open the engine
    (AUTO_MIGRATE): Alembic's module-level proxies must not be torn down under another run."""
    import threading

    engines = [create_engine(fresh_mysql_url) for _ in range(6)]
    start, errors, revisions = threading.Barrier(len(engines)), [], []

    def run(engine: sa.Engine) -> None:
        start.wait()
        try:
            revisions.append(migrate(engine))
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(repr(exc))

    threads = [threading.Thread(target=run, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    for engine in engines:
        engine.dispose()
    assert errors == []
    assert revisions == [head_revision()] * len(engines)
