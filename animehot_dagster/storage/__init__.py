"""MySQL (or embedded SQLite) storage of the catalog, facts and figures."""

from __future__ import annotations

import logging

from sqlalchemy.engine import Engine

from animehot_dagster.settings import Settings
from animehot_dagster.storage.db import create_engine
from animehot_dagster.storage.migrate import migrate

log = logging.getLogger(__name__)


def open_engine(settings: Settings, database_url: str | None = None) -> Engine:
    """The engine for ``settings``; with AUTO_MIGRATE the schema is brought up to date first."""
    engine = create_engine(database_url or settings.database_url)
    if settings.auto_migrate:
        revision = migrate(engine)
        log.info("MySQL connected" if engine.dialect.name == "mysql" else "database connected",
                 extra={"dialect": engine.dialect.name, "revision": revision})
    return engine
