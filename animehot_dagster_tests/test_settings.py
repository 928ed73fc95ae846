"""Configuration (SPEC §11, manual §6): names, defaults, durations, connections, bad values."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from animehot_dagster.domain.alerts import AlertThresholds
from animehot_dagster.domain.cadence import CadencePolicy
from animehot_dagster.domain.items import ItemTTL
from animehot_dagster.settings import Settings, SettingsError, load_settings, parse_duration

ANIMEHOT = Path(sys.executable).parent / "animehot"


def setting(settings: Settings, variable: str):
    """The value a variable configures, found by the variable's name."""
    for field in dataclasses.fields(Settings):
        if field.metadata.get("env") == variable:
            return getattr(settings, field.name)
    raise AssertionError(f"no setting reads {variable}")


# (variable, default, a value to set, what that value means)
MANUAL_VARIABLES = [
    # 6.1 core
    ("APP_ENV", "local", "prod", "prod"),
    ("DEBUG", False, "true", True),
    ("AUTO_MIGRATE", True, "false", False),
    # 6.2 database
    ("MYSQL_USER", "animetop", "reader", "reader"),
    ("MYSQL_PASSWORD", "", "s3cret", "s3cret"),
    ("MYSQL_DATABASE", "animetop", "animetop_staging", "animetop_staging"),
    ("MYSQL_PORT", 3306, "3307", 3307),
    # 6.3 redis
    ("REDIS_PORT", 6379, "6380", 6380),
    ("REDIS_POOL_SIZE", 10, "25", 25),
    # 6.4 scheduler
    ("SCHEDULER_BASE_INTERVAL", timedelta(hours=2), "90m", timedelta(minutes=90)),
    ("SCHEDULER_MIN_INTERVAL", timedelta(hours=1), "30m", timedelta(minutes=30)),
    ("SCHEDULER_MAX_INTERVAL", timedelta(hours=2), "3h", timedelta(hours=3)),
    ("SCHEDULER_PAGES_ON_SALE", 5, "3", 3),
    ("SCHEDULER_PAGES_SOLD", 5, "2", 2),
    # 6.5 crawler
    ("BROWSER_MAX_CONCURRENCY", 2, "4", 4),
    ("BROWSER_MAX_FETCH_COUNT", 120, "60", 60),
    ("BROWSER_PAGE_TIMEOUT", timedelta(seconds=60), "90s", timedelta(seconds=90)),
    ("BROWSER_TASK_TIMEOUT", timedelta(minutes=12), "20m", timedelta(minutes=20)),
    ("MAX_TASKS", 50, "10", 10),
    ("APP_RATE_LIMIT", 3, "1.5", 1.5),
    # 6.6 proxy
    ("HTTP_PROXY", "", "http://proxy.internal:3128", "http://proxy.internal:3128"),
    ("PROXY_AUTO_SWITCH", False, "true", True),
    ("PROXY_FAILURE_THRESHOLD", 10, "4", 4),
    ("PROXY_COOLDOWN", timedelta(minutes=10), "1h30m", timedelta(minutes=90)),
    # 6.7 alert thresholds
    ("ANALYZER_HIGH_OUTFLOW_THRESHOLD", 50, "80", 80),
    ("ANALYZER_LOW_LIQUIDITY_THRESHOLD", 0.3, "0.25", 0.25),
    ("ANALYZER_HIGH_LIQUIDITY_THRESHOLD", 2.0, "3", 3.0),
]
SPEC_VARIABLES = [
    ("ADMIN_API_KEY", "", "k-123", "k-123"),
    ("SCHEDULER_BATCH_SIZE", 50, "20", 20),
    ("SCHEDULER_BACKPRESSURE_THRESHOLD", 25, "40", 40),
    ("SCHEDULER_SCHEDULE_SLOT", timedelta(0), "15m", timedelta(minutes=15)),
    ("JANITOR_INTERVAL", timedelta(minutes=5), "1m", timedelta(minutes=1)),
    ("JANITOR_TIMEOUT", timedelta(minutes=10), "15m", timedelta(minutes=15)),
    ("ANALYZER_ITEM_TTL_AVAILABLE", timedelta(hours=24), "12h", timedelta(hours=12)),
    ("ANALYZER_ITEM_TTL_SOLD", timedelta(hours=48), "72h", timedelta(hours=72)),
    ("APP_RATE_BURST", 3, "6", 6),
    ("DATABASE_URL", "", "sqlite:///x.sqlite3", "sqlite:///x.sqlite3"),
    ("REDIS_URL", "", "redis://cache:6379/2", "redis://cache:6379/2"),
    ("MYSQL_HOST", "", "db", "db"),
    ("REDIS_PASSWORD", "", "pw", "pw"),
    ("REDIS_DB", 0, "3", 3),
]


@pytest.mark.parametrize("variable, default, _text, _value", MANUAL_VARIABLES + SPEC_VARIABLES)
def test_default(variable, default, _text, _value):
    value = setting(load_settings({}), variable)
    assert value == default
    assert type(value) is type(default) or isinstance(default, int) and isinstance(value, float)


@pytest.mark.parametrize("variable, _default, text, value", MANUAL_VARIABLES + SPEC_VARIABLES)
def test_variable_is_read(variable, _default, text, value):
    assert setting(load_settings({variable: text}), variable) == value


def test_the_domain_policies_built_from_the_defaults_are_the_specs():
    settings = load_settings({})
    assert settings.cadence == CadencePolicy(
        base_interval=timedelta(hours=2), min_interval=timedelta(hours=1), max_interval=timedelta(hours=2),
        pages_on_sale=5, pages_sold=5, schedule_slot=timedelta(0),
    )
    assert settings.item_ttl == ItemTTL(available=timedelta(hours=24), sold=timedelta(hours=48))
    assert settings.alert_thresholds == AlertThresholds(high_outflow=50, low_liquidity=0.3, high_liquidity=2.0)


def test_the_domain_policies_follow_the_variables():
    settings = load_settings({
        "SCHEDULER_BASE_INTERVAL": "1h30m", "SCHEDULER_MIN_INTERVAL": "30m", "SCHEDULER_MAX_INTERVAL": "3h",
        "SCHEDULER_PAGES_ON_SALE": "2", "SCHEDULER_PAGES_SOLD": "1", "SCHEDULER_SCHEDULE_SLOT": "10m",
        "ANALYZER_ITEM_TTL_AVAILABLE": "6h", "ANALYZER_ITEM_TTL_SOLD": "12h",
        "ANALYZER_HIGH_OUTFLOW_THRESHOLD": "7", "ANALYZER_LOW_LIQUIDITY_THRESHOLD": "0.1",
        "ANALYZER_HIGH_LIQUIDITY_THRESHOLD": "4.5",
    })
    assert settings.cadence == CadencePolicy(timedelta(minutes=90), timedelta(minutes=30), timedelta(hours=3), 2, 1, timedelta(minutes=10))
    assert settings.item_ttl == ItemTTL(timedelta(hours=6), timedelta(hours=12))
    assert settings.alert_thresholds == AlertThresholds(7, 0.1, 4.5)


# ------------------------------------------------------------------------------ durations


@pytest.mark.parametrize(
    "text, expected",
    [
        ("90s", timedelta(seconds=90)),
        ("10m", timedelta(minutes=10)),
        ("2h", timedelta(hours=2)),
        ("1h30m", timedelta(minutes=90)),
        ("1h30m15s", timedelta(hours=1, minutes=30, seconds=15)),
        ("1.5h", timedelta(minutes=90)),
        ("500ms", timedelta(milliseconds=500)),
        ("0", timedelta(0)),
        (" 5m ", timedelta(minutes=5)),
    ],
)
def test_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["10", "ten minutes", "5x", "h", "-5m", "1h 30m", "m5", "", "2hours"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_durations_through_the_environment():
    settings = load_settings({"JANITOR_INTERVAL": "90s", "JANITOR_TIMEOUT": "10m", "SCHEDULER_BASE_INTERVAL": "1h30m", "BROWSER_TASK_TIMEOUT": "2h"})
    assert settings.janitor_interval == timedelta(seconds=90)
    assert settings.janitor_timeout == timedelta(minutes=10)
    assert settings.scheduler_base_interval == timedelta(minutes=90)
    assert settings.browser_task_timeout == timedelta(hours=2)


# ------------------------------------------------------------------------------ connections


def test_database_defaults_to_the_embedded_sqlite_file():
    url = make_url(load_settings({}).database_url)
    assert url.get_backend_name() == "sqlite"
    assert Path(url.database) == Path("var") / "animehot.sqlite3"
    url = make_url(load_settings({"ANIMEHOT_DATA_DIR": "/srv/animehot"}).database_url)
    assert Path(url.database) == Path("/srv/animehot/animehot.sqlite3")


def test_mysql_parts_without_a_host_still_mean_sqlite():
    url = make_url(load_settings({"MYSQL_USER": "u", "MYSQL_PASSWORD": "p", "MYSQL_PORT": "3307"}).database_url)
    assert url.get_backend_name() == "sqlite"


def test_mysql_from_its_parts_when_mysql_host_is_set():
    url = make_url(load_settings({"MYSQL_HOST": "db.internal", "MYSQL_PASSWORD": "p@ss:w/rd%"}).database_url)
    assert url.get_backend_name() == "mysql"
    assert (url.host, url.port, url.username, url.password, url.database) == ("db.internal", 3306, "animetop", "p@ss:w/rd%", "animetop")
    assert url.query.get("charset") == "utf8mb4"


def test_mysql_parts_reach_the_real_server():
    settings = load_settings({"MYSQL_HOST": "127.0.0.1", "MYSQL_PORT": "3306", "MYSQL_USER": "root", "MYSQL_DATABASE": "mysql"})
    engine = sa.create_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT DATABASE()")).scalar_one() == "mysql"
    finally:
        engine.dispose()


def test_database_url_wins_over_the_mysql_parts():
    settings = load_settings({"DATABASE_URL": "mysql+pymysql://a:b@elsewhere:3310/x", "MYSQL_HOST": "db.internal"})
    assert settings.database_url == "mysql+pymysql://a:b@elsewhere:3310/x"


def test_redis_from_its_parts():
    settings = load_settings({"REDIS_HOST": "cache", "REDIS_PORT": "6380", "REDIS_DB": "4", "REDIS_PASSWORD": "pa:ss@/word"})
    kwargs = redis.ConnectionPool.from_url(settings.redis_url).connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"], kwargs["password"]) == ("cache", 6380, 4, "pa:ss@/word")


def test_redis_default_and_the_parts_reach_the_real_server():
    kwargs = redis.ConnectionPool.from_url(load_settings({}).redis_url).connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("127.0.0.1", 6379, 0)
    assert not kwargs.get("password")
    client = redis.Redis.from_url(load_settings({"REDIS_DB": "15"}).redis_url)
    try:
        assert client.ping()
    finally:
        client.close()


def test_redis_url_wins_over_the_parts():
    settings = load_settings({"REDIS_URL": "redis://:pw@cache.internal:6390/7", "REDIS_HOST": "other", "REDIS_PORT": "1"})
    assert settings.redis_url == "redis://:pw@cache.internal:6390/7"


# ------------------------------------------------------------------------------ bad values


@pytest.mark.parametrize(
    "variable, value",
    [
        ("DEBUG", "maybe"),  # not a boolean
        ("AUTO_MIGRATE", "2"),
        ("PROXY_AUTO_SWITCH", "enabled"),
        ("MYSQL_PORT", "abc"),  # not a number
        ("MAX_TASKS", "1.5"),
        ("APP_RATE_LIMIT", "fast"),
        ("ANALYZER_LOW_LIQUIDITY_THRESHOLD", "low"),
        ("SCHEDULER_BASE_INTERVAL", "2 hours"),  # not a duration
        ("JANITOR_TIMEOUT", "soon"),
        ("BROWSER_PAGE_TIMEOUT", "60"),
        ("MYSQL_PORT", "70000"),  # out of range
        ("REDIS_PORT", "0"),
        ("APP_RATE_LIMIT", "0"),  # must be positive
        ("REDIS_POOL_SIZE", "-1"),
        ("SCHEDULER_PAGES_ON_SALE", "0"),
        ("SCHEDULER_BATCH_SIZE", "0"),
        ("ANALYZER_ITEM_TTL_SOLD", "0s"),
        ("ANALYZER_ITEM_TTL_AVAILABLE", "0"),
        ("SCHEDULER_PAGES_SOLD", "-1"),  # must not be negative
        ("SCHEDULER_BACKPRESSURE_THRESHOLD", "-5"),
        ("ANALYZER_HIGH_OUTFLOW_THRESHOLD", "-1"),
        ("ANALYZER_HIGH_LIQUIDITY_THRESHOLD", "-2"),
        ("APP_ENV", "staging"),  # not one of the environments
        ("SCHEDULER_MIN_INTERVAL", "3h"),  # longer than the maximum
        ("SCHEDULER_BASE_INTERVAL", "90s"),  # the cadence moves in whole minutes
        ("SCHEDULER_MAX_INTERVAL", "2h30s"),
        ("DATABASE_URL", "localhost/animetop"),  # not a URL
        ("REDIS_URL", "127.0.0.1:6379"),
    ],
)
def test_bad_value_raises_settings_error_naming_the_variable(variable, value):
    with pytest.raises(SettingsError) as raised:
        load_settings({variable: value})
    assert variable in str(raised.value)


def test_every_bad_variable_is_named_at_once():
    with pytest.raises(SettingsError) as raised:
        load_settings({"DEBUG": "maybe", "MYSQL_PORT": "abc", "JANITOR_INTERVAL": "often"})
    for variable in ("DEBUG", "MYSQL_PORT", "JANITOR_INTERVAL"):
        assert variable in str(raised.value)


def test_os_environ_is_the_default_source(monkeypatch):
    monkeypatch.setenv("SCHEDULER_BATCH_SIZE", "7")
    assert load_settings().scheduler_batch_size == 7


def _clean_env(**variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")}
    env.update(variables)
    return env


@pytest.mark.parametrize("variable, value", [("SCHEDULER_MIN_INTERVAL", "soon"), ("MYSQL_PORT", "mysql"), ("APP_ENV", "staging")])
def test_cli_stops_at_start_naming_the_bad_variable(tmp_path, variable, value):
    database = tmp_path / "never.sqlite3"
    completed = subprocess.run(
        [str(ANIMEHOT), "migrate", "--database-url", f"sqlite:///{database}"],
        env=_clean_env(**{variable: value}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode != 0
    assert variable in completed.stderr
    assert not database.exists(), "the process did work before stopping"


def test_cli_runs_with_good_settings(tmp_path):
    database = tmp_path / "ok.sqlite3"
    completed = subprocess.run(
        [str(ANIMEHOT), "migrate", "--database-url", f"sqlite:///{database}"],
        env=_clean_env(SCHEDULER_MIN_INTERVAL="30m"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert database.exists()
