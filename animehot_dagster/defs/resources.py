"""Dagster resources, built from ``settings`` (the one source of configuration).

Engines and Redis clients are cached per URL for the life of the process: sensors tick every
few seconds in one long-lived code server, and a new pool per tick would leak connections.
"""

import dataclasses
import functools
import threading
import time
import typing
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import dagster as dg
import redis
from sqlalchemy.engine import Engine

from animehot_dagster.domain.alerts import AlertThresholds
from animehot_dagster.domain.cadence import CadencePolicy
from animehot_dagster.domain.items import ItemTTL
from animehot_dagster.queue.dispatcher import DispatchConfig
from animehot_dagster.queue.processor import ResultProcessor
from animehot_dagster.queue.reliable import ResultQueue, TaskQueue, open_redis
from animehot_dagster.queue.schedule import ScheduleStore
from animehot_dagster.settings import Settings
from animehot_dagster.storage import connect, database_timeouts
from animehot_dagster.storage.db import DatabaseTimeouts
from animehot_dagster.storage.ingest import IngestConfig

_ENGINES: dict[tuple, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def _engine(url: str, timeouts: DatabaseTimeouts, auto_migrate: bool) -> Engine:
    # Sensors are evaluated on several threads of the code server: one engine (and one
    # AUTO_MIGRATE check) per database, however many ask for it at once.
    with _ENGINES_LOCK:
        key = (url, timeouts, auto_migrate)
        if key not in _ENGINES:
            _ENGINES[key] = connect(url, timeouts, auto_migrate)
        return _ENGINES[key]


@functools.cache
def _redis(url: str, pool_size: int) -> redis.Redis:
    return open_redis(url, pool_size)


class DatabaseResource(dg.ConfigurableResource):
    """The project's database: MySQL in production, the embedded SQLite file by default."""

    url: str
    auto_migrate: bool = Settings.auto_migrate
    connect_timeout_seconds: float = Settings.db_connect_timeout.total_seconds()
    read_timeout_seconds: float = Settings.db_read_timeout.total_seconds()
    write_timeout_seconds: float = Settings.db_write_timeout.total_seconds()

    def engine(self) -> Engine:
        timeouts = DatabaseTimeouts(
            connect=self.connect_timeout_seconds, read=self.read_timeout_seconds, write=self.write_timeout_seconds
        )
        return _engine(self.url, timeouts, self.auto_migrate)


class QueueResource(dg.ConfigurableResource):
    """The Redis queues and the crawl schedule (SPEC §6)."""

    url: str
    pool_size: int = Settings.redis_pool_size
    janitor_timeout_seconds: float = Settings.janitor_timeout.total_seconds()
    task_timeout_seconds: float = Settings.browser_task_timeout.total_seconds()

    def client(self) -> redis.Redis:
        return _redis(self.url, self.pool_size)

    def tasks(self) -> TaskQueue:
        return TaskQueue(self.client())

    def results(self) -> ResultQueue:
        return ResultQueue(self.client())

    def schedule(self, clock: Callable[[], float] = time.time) -> ScheduleStore:
        return ScheduleStore(self.client(), clock)


def _plain(policy) -> dict[str, float]:
    """A policy's fields as Dagster config can hold them: durations in seconds, counts as numbers."""
    return {
        field.name: value.total_seconds() if isinstance(value, timedelta) else float(value)
        for field in dataclasses.fields(policy)
        for value in [getattr(policy, field.name)]
    }


def _policy(kind: type, plain: dict[str, float]):
    """The policy of type ``kind`` that :func:`_plain` wrote as ``plain``."""
    types = typing.get_type_hints(kind)
    convert = {timedelta: lambda seconds: timedelta(seconds=seconds), int: int, bool: bool, float: float}
    return kind(**{name: convert[types[name]](value) for name, value in plain.items()})


class AnalyzerResource(dg.ConfigurableResource):
    """The analyzer's rules as the settings built them: cadence, item TTLs, alert thresholds and
    dispatch batching. The settings are the one place these are built from the environment (and
    their defaults written); this resource only carries them to the runs, in plain form so the
    UI shows them. Build it with :meth:`from_settings`."""

    cadence_policy: dict[str, float]
    item_ttl: dict[str, float]
    alert_thresholds: dict[str, float]
    dispatch: dict[str, float]

    @classmethod
    def from_settings(cls, settings: Settings) -> "AnalyzerResource":
        return cls(
            cadence_policy=_plain(settings.cadence),
            item_ttl=_plain(settings.item_ttl),
            alert_thresholds=_plain(settings.alert_thresholds),
            dispatch=_plain(DispatchConfig.from_settings(settings)),
        )

    def cadence(self) -> CadencePolicy:
        return _policy(CadencePolicy, self.cadence_policy)

    def ingest_config(self) -> IngestConfig:
        return IngestConfig(
            cadence=self.cadence(),
            ttl=_policy(ItemTTL, self.item_ttl),
            thresholds=_policy(AlertThresholds, self.alert_thresholds),
        )

    def dispatch_config(self, max_wait_seconds: float) -> DispatchConfig:
        """Dispatch batching; a sensor tick must end well inside Dagster's 60 s sensor timeout,
        so it bounds the backpressure wait."""
        config = _policy(DispatchConfig, self.dispatch)
        return dataclasses.replace(config, max_backpressure_wait_seconds=max_wait_seconds, defer_when_full=True)

    def processor(self, database: DatabaseResource, queue: QueueResource, clock: "ClockResource") -> ResultProcessor:
        return ResultProcessor(queue.client(), database.engine(), self.ingest_config(), clock.time)


class ClockResource(dg.ConfigurableResource):
    """The time the cadence and the catalog sensors go by: the wall clock, moved by
    ``shift_seconds`` — so a test (or an operator replaying a day) can evaluate a sensor at any
    moment while time still runs, as the dispatcher's backpressure wait needs."""

    shift_seconds: float = 0

    def time(self) -> float:
        return time.time() + self.shift_seconds

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    timeouts = database_timeouts(settings)
    return {
        "database": DatabaseResource(
            url=settings.database_url,
            auto_migrate=settings.auto_migrate,
            connect_timeout_seconds=timeouts.connect,
            read_timeout_seconds=timeouts.read,
            write_timeout_seconds=timeouts.write,
        ),
        "queue": QueueResource(
            url=settings.redis_url,
            pool_size=settings.redis_pool_size,
            janitor_timeout_seconds=settings.janitor_timeout.total_seconds(),
            task_timeout_seconds=settings.browser_task_timeout.total_seconds(),
        ),
        "clock": ClockResource(),
        "analyzer": AnalyzerResource.from_settings(settings),
    }
