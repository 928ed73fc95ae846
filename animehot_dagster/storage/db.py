"""Engines, the dialect-specific statements (upsert) every writer shares, and what an outage of
the database looks like."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url

from animehot_dagster.settings import Settings

# Errors of a database that cannot be reached or does not answer: SQLAlchemy's pool timeout, and
# the MySQL client's "can't connect" (2002, 2003), "gone away" (2006), "lost connection" (2013, a
# read timeout among them) and "lost connection at handshake" (2055).
OUTAGE_ERRORS = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError)
_OUTAGE_CODES = re.compile(r"\((2002|2003|2006|2013|2055),")


@dataclasses.dataclass(frozen=True)
class DatabaseTimeouts:
    """Seconds a MySQL/MariaDB call may wait (DB_CONNECT_TIMEOUT, DB_READ_TIMEOUT,
    DB_WRITE_TIMEOUT): a hung server then fails the call with an OperationalError instead of
    blocking its caller for ever. ``connect`` bounds the TCP connect and the server's handshake;
    ``read`` each wait for an answer (a query, a lock wait: keep it above the longest statement);
    ``write`` each send; ``pool`` the wait for a connection of the pool when every one is in use
    (SQLAlchemy's ``pool_timeout``, 30 s by default)."""

    connect: float = Settings.db_connect_timeout.total_seconds()
    read: float = Settings.db_read_timeout.total_seconds()
    write: float = Settings.db_write_timeout.total_seconds()
    pool: float = 30.0


def create_engine(url: str, pool_size: int = 10, timeouts: DatabaseTimeouts | None = None) -> Engine:
    """An engine for MySQL/MariaDB or SQLite with the settings ingest relies on.

    MySQL connections get ``timeouts`` (default :class:`DatabaseTimeouts`), except those the URL
    spells out itself (``?read_timeout=30``)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 60})
        _serialize_sqlite_writers(engine)
        return engine
    if parsed.get_backend_name() != "mysql":
        raise ValueError(f"unsupported database {parsed.get_backend_name()!r}: use MySQL/MariaDB or SQLite")
    timeouts = timeouts or DatabaseTimeouts()
    connect_args = {
        name: value
        for name, value in (
            ("connect_timeout", timeouts.connect),
            ("read_timeout", timeouts.read),
            ("write_timeout", timeouts.write),
        )
        if name not in parsed.query
    }
    engine = sa.create_engine(
        url,
        connect_args=connect_args,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=timeouts.pool,
        pool_pre_ping=True,
        pool_recycle=3600,
        # Ingest serialises per IP with a row lock; READ COMMITTED keeps InnoDB from adding gap
        # locks that would make concurrent ingests of different IPs deadlock.
        isolation_level="READ COMMITTED",
    )
    if parsed.get_driver_name() == "pymysql":
        _bound_the_handshake(engine)
    return engine


def _bound_the_handshake(engine: Engine) -> None:
    """PyMySQL waits for the server's greeting with the *read* timeout: a server that accepts
    the TCP connection but never answers (hung, SIGSTOP) would hold a new connection for the
    read timeout, not the connect timeout. Connect with the shorter of the two as the read
    timeout, then give the open connection its real one."""

    @sa.event.listens_for(engine, "do_connect")
    def _connect(dialect, _record, cargs, cparams):
        read_timeout, connect_timeout = cparams.get("read_timeout"), cparams.get("connect_timeout")
        if not (read_timeout and connect_timeout and float(connect_timeout) < float(read_timeout)):
            return None  # nothing to shorten: SQLAlchemy connects as usual
        connection = dialect.loaded_dbapi.connect(*cargs, **{**cparams, "read_timeout": float(connect_timeout)})
        if not hasattr(connection, "_current_timeout"):  # pragma: no cover - not the pinned PyMySQL
            connection.close()
            return None
        # PyMySQL (pinned in setup.py) applies ``_read_timeout`` to the socket before each read.
        connection._read_timeout = float(read_timeout)
        return connection


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


def reachable(engine: Engine) -> bool:
    """Whether the database answers a ``SELECT 1`` (within its connect and read timeouts)."""
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError:
        return False
    return True


def names_an_outage(error_class: str, message: str) -> bool:
    """Whether an error, known by its class name and message (what a failed run records of it),
    is one of OUTAGE_ERRORS raised because the database could not be reached, rather than a
    query the database refused."""
    if error_class in {"OperationalError", "InterfaceError"}:
        return bool(_OUTAGE_CODES.search(message))
    return error_class == "TimeoutError" and "QueuePool" in message


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
