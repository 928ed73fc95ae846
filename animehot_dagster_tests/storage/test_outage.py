"""What an outage of the database looks like, told apart from a query it refuses, on real
errors: a MariaDB port nobody listens on, a pool with no connection left, and statements the
running MariaDB rejects. The hung server is tested in test_db_timeouts.py."""

from __future__ import annotations

import socket
import traceback

import pytest
import sqlalchemy as sa

from animehot_dagster.storage.db import OUTAGE_ERRORS, DatabaseTimeouts, create_engine, names_an_outage, reachable


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # free again once closed: nothing listens on it


def raised(call) -> sa.exc.SQLAlchemyError:
    with pytest.raises(sa.exc.SQLAlchemyError) as caught:
        call()
    return caught.value


def recorded(exc: BaseException) -> tuple[str, str]:
    """The class name and message of an error as a failed Dagster run records them."""
    return type(exc).__name__, "".join(traceback.format_exception_only(type(exc), exc))


def test_a_database_nobody_answers_is_unreachable_and_its_error_an_outage():
    engine = create_engine(f"mysql+pymysql://root@127.0.0.1:{closed_port()}/none", timeouts=DatabaseTimeouts(connect=2))
    try:
        assert not reachable(engine)
        exc = raised(lambda: engine.connect())
    finally:
        engine.dispose()
    assert isinstance(exc, OUTAGE_ERRORS) and "(2003," in str(exc)
    assert names_an_outage(*recorded(exc))


def test_a_pool_with_no_connection_left_is_an_outage(mysql_url):
    engine = create_engine(mysql_url, pool_size=1, timeouts=DatabaseTimeouts(pool=0.2))
    try:
        with engine.connect(), engine.connect():  # the pool and its overflow, both taken
            exc = raised(lambda: engine.connect())
    finally:
        engine.dispose()
    assert isinstance(exc, sa.exc.TimeoutError)
    assert names_an_outage(*recorded(exc))


def test_statements_the_database_refuses_are_no_outage(mysql_engine):
    assert reachable(mysql_engine)
    with mysql_engine.connect() as connection:
        unknown_column = raised(lambda: connection.execute(sa.text("SELECT no_such_column FROM ip_metadata")))
        connection.rollback()
        syntax = raised(lambda: connection.execute(sa.text("SELEC 1")))
    assert isinstance(unknown_column, sa.exc.OperationalError)  # PyMySQL's class for error 1054
    assert not names_an_outage(*recorded(unknown_column))
    assert not names_an_outage(*recorded(syntax))
    assert not names_an_outage("TimeoutError", "timed out reading the socket")  # not the pool's
