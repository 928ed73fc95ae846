"""Issue 17 #6: a hung database (MariaDB under SIGSTOP) must not hang its callers. Database calls
have connect, read and write timeouts (DB_CONNECT_TIMEOUT, DB_READ_TIMEOUT, DB_WRITE_TIMEOUT).

The hung server is a private mariadbd of this module: the shared one on 3306 is never stopped.
"""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from animehot_dagster.settings import SettingsError, load_settings
from animehot_dagster.storage import open_engine
from animehot_dagster.storage.db import DatabaseTimeouts, create_engine

HANG_LIMIT = 30  # a call still blocked after this long counts as hung


def timed_call(function) -> tuple[float, BaseException | None, bool]:
    """Run ``function`` in a thread: (seconds it took, what it raised, whether it was still
    blocked at HANG_LIMIT). A hung call is left behind in its daemon thread."""
    outcome: dict[str, BaseException | None] = {"error": None}

    def run() -> None:
        try:
            function()
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            outcome["error"] = exc

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(HANG_LIMIT)
    return time.monotonic() - started, outcome["error"], thread.is_alive()


def test_a_query_on_a_hung_database_fails_within_the_read_timeout(private_mariadb):
    url = private_mariadb.create_database("hung_read")
    engine = create_engine(url, timeouts=DatabaseTimeouts(connect=2, read=3, write=3))
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT 1")).scalar_one() == 1
        with private_mariadb.hung():
            seconds, error, hung = timed_call(lambda: connection.execute(sa.text("SELECT 1")).all())
    engine.dispose()
    assert not hung, f"the query was still waiting after {HANG_LIMIT} s"
    assert isinstance(error, sa.exc.OperationalError), error
    assert 2.5 <= seconds < 8


def test_a_new_connection_to_a_hung_database_fails_within_the_connect_timeout(private_mariadb):
    """The TCP connect succeeds (the kernel accepts for the stopped server); the handshake then
    never comes: that wait is bounded by the connect timeout, not the longer read timeout."""
    url = private_mariadb.create_database("hung_connect")
    engine = create_engine(url, timeouts=DatabaseTimeouts(connect=2, read=20, write=20))
    with private_mariadb.hung():
        seconds, error, hung = timed_call(lambda: engine.connect().close())
    engine.dispose()
    assert not hung, f"connecting was still waiting after {HANG_LIMIT} s"
    assert isinstance(error, sa.exc.OperationalError), error
    assert seconds < 6


def test_the_settings_timeouts_reach_the_engine_and_after_the_hang_it_works_again(private_mariadb):
    url = private_mariadb.create_database("hung_settings")
    settings = load_settings({"DATABASE_URL": url, "AUTO_MIGRATE": "false", "DB_CONNECT_TIMEOUT": "2s",
                              "DB_READ_TIMEOUT": "3s", "DB_WRITE_TIMEOUT": "3s"})
    engine = open_engine(settings)
    with engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))
    with private_mariadb.hung():
        seconds, error, hung = timed_call(lambda: engine.connect().execute(sa.text("SELECT 1")).all())
    assert not hung and isinstance(error, sa.exc.OperationalError), error
    # The pre-ping finds the dead pooled connection (read timeout), the reconnect's handshake
    # waits the connect timeout: both bounded.
    assert seconds < 12
    with engine.connect() as connection:  # the server is back: the pool recovers by itself
        assert connection.execute(sa.text("SELECT 1")).scalar_one() == 1
    engine.dispose()


def test_the_defaults_are_a_few_seconds_to_connect_and_ten_to_read():
    settings = load_settings({})
    assert (settings.db_connect_timeout.total_seconds(), settings.db_read_timeout.total_seconds(),
            settings.db_write_timeout.total_seconds()) == (5, 10, 10)
    assert DatabaseTimeouts() == DatabaseTimeouts(connect=5, read=10, write=10)


@pytest.mark.parametrize(("name", "value", "says"), [
    ("DB_READ_TIMEOUT", "abc", "DB_READ_TIMEOUT: 'abc' is not a duration"),
    ("DB_CONNECT_TIMEOUT", "0", "DB_CONNECT_TIMEOUT=0:00:00: must be greater than zero"),
    ("DB_WRITE_TIMEOUT", "0s", "DB_WRITE_TIMEOUT=0:00:00: must be greater than zero"),
])
def test_a_bad_timeout_stops_the_process_naming_the_variable(name, value, says):
    with pytest.raises(SettingsError, match=says):
        load_settings({name: value})


def test_timeouts_written_in_the_url_win(private_mariadb):
    """A DATABASE_URL that spells out ``?read_timeout=…`` keeps it (the operator said so)."""
    url = private_mariadb.create_database("url_timeouts") + "&read_timeout=2"
    engine = create_engine(url, timeouts=DatabaseTimeouts(connect=2, read=30, write=30))
    with engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))
        with private_mariadb.hung():
            seconds, error, hung = timed_call(lambda: connection.execute(sa.text("SELECT 1")).all())
    engine.dispose()
    assert not hung and isinstance(error, sa.exc.OperationalError), error
    assert seconds < 6
