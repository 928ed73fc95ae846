"""Apply the Alembic migrations (``animehot migrate``, or at start with AUTO_MIGRATE=true)."""

from __future__ import annotations

import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).with_name("migrations")
# Alembic runs a migration through module-level proxies (alembic.context, alembic.op) that it
# installs and removes around each run: two threads migrating at once (sensors evaluated on
# threads of one code server, each opening its engine) remove each other's proxies (KeyError).
_ONE_AT_A_TIME = threading.Lock()


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def migrate(engine: Engine, revision: str = "head") -> str:
    """Upgrade the database to ``revision``; returns the revision it is at afterwards."""
    config = alembic_config()
    with _ONE_AT_A_TIME, engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    return current_revision(engine)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
