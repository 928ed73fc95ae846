"""Engines and the dialect-specific statements (upsert) every writer shares."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url


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


def upsert(
    connection: Connection,
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    update_columns: Iterable[str],
    conflict_columns: Sequence[str],
) -> None:
    """Insert ``rows``; on a unique-key conflict update ``update_columns`` (MySQL ON DUPLICATE KEY
    UPDATE, SQLite ON CONFLICT … DO UPDATE). ``conflict_columns`` name the unique key SQLite
    needs spelled out.

    The statement is built without values and executed with the rows as parameters: PyMySQL
    sends an executemany of an INSERT as multi-row statements (one round trip per ~1 MB), and
    SQLAlchemy compiles and caches the statement once instead of building a new one with a
    parameter per cell on every call, which cost more than the database work.
    """
    if not rows:
        return
    update_columns = list(update_columns)
    if is_mysql(connection):
        statement = mysql.insert(table)
        statement = statement.on_duplicate_key_update({name: statement.inserted[name] for name in update_columns})
    else:
        statement = sqlite.insert(table)
        statement = statement.on_conflict_do_update(
            index_elements=list(conflict_columns),
            set_={name: statement.excluded[name] for name in update_columns},
        )
    connection.execute(statement, list(rows))


def insert_many(connection: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Plain INSERT of many rows, batched like :func:`upsert`."""
    if rows:
        connection.execute(table.insert(), list(rows))
