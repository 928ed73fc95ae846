"""Engines and the dialect-specific statements (upsert) every writer shares."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url

# SQLite caps bound parameters per statement (32,766 since 3.32); MySQL through PyMySQL is
# bounded by max_allowed_packet, which these chunks stay far below.
_SQLITE_MAX_PARAMETERS = 32_000
_MYSQL_MAX_ROWS = 5_000


def create_engine(url: str, pool_size: int = 10) -> Engine:
    """An engine for MySQL/MariaDB or SQLite with the settings ingest relies on."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 60})
        _serialize_sqlite_writers(engine)
        return engine
    if parsed.get_backend_name() != "mysql":
        raise ValueError(f"unsupported database {parsed.get_backend_name()!r}: use MySQL/MariaDB or SQLite")
    return sa.create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=3600,
        # Ingest serialises per IP with a row lock; READ COMMITTED keeps InnoDB from adding gap
        # locks that would make concurrent ingests of different IPs deadlock.
        isolation_level="READ COMMITTED",
    )


def _serialize_sqlite_writers(engine: Engine) -> None:
    """Make every transaction BEGIN IMMEDIATE, so that two processes applying results take the
    database write lock before they read, as MySQL's row lock makes them do."""

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # let SQLAlchemy's begin() emit BEGIN itself
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def is_mysql(connection: Connection | Engine) -> bool:
    return connection.dialect.name == "mysql"


def _chunks(rows: Sequence[Mapping[str, Any]], size: int) -> Iterator[Sequence[Mapping[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _rows_per_statement(connection: Connection, columns: int) -> int:
    if is_mysql(connection):
        return _MYSQL_MAX_ROWS
    return max(1, _SQLITE_MAX_PARAMETERS // max(columns, 1))


def upsert(
    connection: Connection,
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    update_columns: Iterable[str],
    conflict_columns: Sequence[str],
) -> None:
    """Insert ``rows`` in multi-row statements; on a unique-key conflict update
    ``update_columns`` (MySQL ON DUPLICATE KEY UPDATE, SQLite ON CONFLICT … DO UPDATE).
    ``conflict_columns`` name the unique key SQLite needs spelled out."""
    if not rows:
        return
    update_columns = list(update_columns)
    for chunk in _chunks(rows, _rows_per_statement(connection, len(rows[0]))):
        if is_mysql(connection):
            statement = mysql.insert(table).values(list(chunk))
            statement = statement.on_duplicate_key_update(
                {name: statement.inserted[name] for name in update_columns}
            )
        else:
            statement = sqlite.insert(table).values(list(chunk))
            statement = statement.on_conflict_do_update(
                index_elements=list(conflict_columns),
                set_={name: statement.excluded[name] for name in update_columns},
            )
        connection.execute(statement)


def insert_many(connection: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Plain multi-row INSERT, chunked like :func:`upsert`."""
    if not rows:
        return
    for chunk in _chunks(rows, _rows_per_statement(connection, len(rows[0]))):
        connection.execute(table.insert().values(list(chunk)))
