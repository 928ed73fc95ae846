"""MySQL (or embedded SQLite) storage of the catalog, facts and figures."""

from __future__ import annotations

import logging

from sqlalchemy.engine import Engine

from animehot_dagster.settings import Settings
from animehot_dagster.storage.db import DatabaseTimeouts, create_engine
from animehot_dagster.storage.migrate import migrate

log = logging.getLogger(__name__)


def open_engine(settings: Settings, database_url: str | None = None) -> Engine:
    """The engine for ``settings``; with AUTO_MIGRATE the schema is brought up to date first."""
    return connect(database_url or settings.database_url, database_timeouts(settings), settings.auto_migrate)


def connect(url: str, timeouts: DatabaseTimeouts, auto_migrate: bool) -> Engine:
    """The engine for ``url``; with ``auto_migrate`` the schema is brought up to date first."""
    engine = create_engine(url, timeouts=timeouts)
    if auto_migrate:
        revision = migrate(engine)
        log.info("MySQL connected" if engine.dialect.name == "mysql" else "database connected",
                 extra={"dialect": engine.dialect.name, "revision": revision})
    return engine


def database_timeouts(settings: Settings) -> DatabaseTimeouts:
    """DB_CONNECT_TIMEOUT, DB_READ_TIMEOUT and DB_WRITE_TIMEOUT in seconds."""
    return DatabaseTimeouts(
        connect=settings.db_connect_timeout.total_seconds(),
        read=settings.db_read_timeout.total_seconds(),
        write=settings.db_write_timeout.total_seconds(),
    )
