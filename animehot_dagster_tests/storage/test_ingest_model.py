"""Ingest against the reference model (SPEC §4, §7), on MySQL and on SQLite.

Hypothesis plans the crawl results of 1–3 IPs over hours and days — gaps longer than the
TTLs, duplicates inside a crawl, failed and empty crawls, and redeliveries of results applied
before (same task_id, possibly processed much later) — and applies them one by one through
``storage.ingest.apply``. Afterwards every hourly row, every item snapshot and every alert must
be what :class:`MarketModel` predicts.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import sqlalchemy as sa
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from animehot_dagster.domain.messages import Item
from animehot_dagster.storage.ingest import IngestConfig, apply
from animehot_dagster.storage.schema import ip_alerts, ip_stats_hourly, item_snapshots, metadata
from animehot_dagster_tests.domain.test_items import T0, MarketModel, ModelHour, ModelState, crawl_sequences, make_item
from animehot_dagster_tests.factories import make_ips, response


@dataclasses.dataclass(frozen=True)
class Delivery:
    ip_index: int
    number: int  # the crawl's number within its IP: with ip_index, names the task
    at: datetime
    items: tuple[Item, ...]
    error: str
    processing_delay: timedelta  # how long after the crawl the result is processed

    @property
    def task_id(self) -> str:
        return f"task-{self.ip_index}-{self.number}"


# Results are processed at once, a little later, or long after (a backlog, or a replay).
DELAYS = (timedelta(0), timedelta(seconds=30), timedelta(hours=1), timedelta(hours=100))


@st.composite
def delivery_plans(draw) -> tuple[int, list[Delivery]]:
    ip_count = draw(st.integers(1, 3))
    crawls: list[Delivery] = []
    for ip_index in range(ip_count):
        at = T0 + timedelta(seconds=draw(st.integers(0, 3599)))
        for number, step in enumerate(draw(crawl_sequences(min_size=1, max_size=10))):
            at += timedelta(seconds=step.gap)
            crawls.append(Delivery(ip_index, number, at, step.items, step.error, draw(st.sampled_from(DELAYS))))
    crawls.sort(key=lambda d: (d.at, d.ip_index))
    deliveries: list[Delivery] = []
    for position, crawl in enumerate(crawls):
        deliveries.append(crawl)
        if draw(st.integers(0, 4)) == 0:  # an earlier result delivered again
            again = crawls[draw(st.integers(0, position))]
            deliveries.append(dataclasses.replace(again, processing_delay=draw(st.sampled_from(DELAYS))))
    return ip_count, deliveries


def _empty_tables(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            connection.execute(table.delete())


def _hourly_rows(engine: sa.Engine) -> dict[tuple[int, datetime], ModelHour]:
    with engine.connect() as connection:
        rows = connection.execute(sa.select(ip_stats_hourly)).mappings().all()
    return {
        (row["ip_id"], row["hour_bucket"]): ModelHour(
            inflow=row["inflow"],
            outflow=row["outflow"],
            liquidity_index=row["liquidity_index"],
            active_count=row["active_count"],
            crawl_count=row["crawl_count"],
            sample_count=row["sample_count"],
            min_price=row["min_price"],
            max_price=row["max_price"],
            min_item=row["min_price_item"]["source_id"] if row["min_price_item"] else None,
            max_item=row["max_price_item"]["source_id"] if row["max_price_item"] else None,
            avg_price=row["avg_price"],
            median_price=row["median_price"],
        )
        for row in rows
    }


def _snapshots(engine: sa.Engine) -> dict[tuple[int, str], ModelState]:
    c = item_snapshots.c
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(c.ip_id, c.source_id, c.status, c.price, c.first_seen_at, c.last_seen_at, c.sold_at)
        ).all()
    return {(r.ip_id, r.source_id): ModelState(r.status, r.price, r.first_seen_at, r.last_seen_at, r.sold_at) for r in rows}


def _alerts(engine: sa.Engine) -> list[tuple[int, datetime, str]]:
    c = ip_alerts.c
    with engine.connect() as connection:
        return [tuple(r) for r in connection.execute(sa.select(c.ip_id, c.hour_bucket, c.alert_type)).all()]


def _apply_and_compare(engine: sa.Engine, ip_count: int, deliveries: list[Delivery]) -> None:
    _empty_tables(engine)
    ips = make_ips(engine, *[f"テストIP {n}" for n in range(ip_count)])
    model = MarketModel()
    config = IngestConfig()
    for step, delivery in enumerate(deliveries):
        ip = ips[delivery.ip_index]
        result = apply(
            engine,
            response(ip, delivery.at, delivery.items, task_id=delivery.task_id, error_message=delivery.error),
            config,
            now=delivery.at + delivery.processing_delay,
        )
        expected = model.crawl(ip, delivery.task_id, delivery.at, delivery.items, delivery.error)
        where = f"delivery {step}: {delivery.task_id} at {delivery.at.isoformat()}"
        assert result.applied == expected.applied, where
        assert result.failed == expected.failed, where
        assert result.baseline == expected.baseline, where
        assert (result.inflow, result.outflow) == (expected.inflow, expected.outflow), where
        if not expected.applied:
            _note("redelivery")
        for transition in set(expected.transitions.values()) - {None}:
            _note(f"transition {transition}")

    expected_hours = model.hours()
    actual_hours = _hourly_rows(engine)
    assert sorted(actual_hours) == sorted(expected_hours)
    for key, expected in expected_hours.items():
        assert actual_hours[key] == expected, f"ip {key[0]}, hour {key[1].isoformat()}"
    assert _snapshots(engine) == model.states()
    alerts = _alerts(engine)
    assert len(alerts) == len(set(alerts)), "an alert was raised twice for one (ip, hour, type)"
    assert set(alerts) == model.alerts()
    for _, _, kind in alerts:
        _note(f"alert {kind}")


def _note(what: str) -> None:
    """Count what the generated plans exercised (shown with --hypothesis-show-statistics)."""
    if currently_in_test_context():
        event(what)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(plan=delivery_plans())
def test_ingest_agrees_with_the_reference_model(engine, plan):
    _apply_and_compare(engine, *plan)


def test_ttl_boundaries_through_the_database(engine):
    """Whether a crawl is a baseline depends on the stored states of items it did not report,
    whose expiry is decided in SQL: check it at exactly the TTL and one second past it."""
    hour, second, at_once = timedelta(hours=1), timedelta(seconds=1), timedelta(0)
    m1, m2, m3 = make_item("m1", False, 100), make_item("m2", False, 200), make_item("m3", True, 300)
    m1_sold = make_item("m1", True, 100)
    deliveries = [
        # IP 0: m1 seen at T0 keeps the IP live for exactly 24 h …
        Delivery(0, 0, T0, (m1,), "", at_once),
        Delivery(0, 1, T0 + 24 * hour, (m2,), "", at_once),
        # … and m2 is forgotten 24 h + 1 s after it was seen (m1 too): a baseline again
        Delivery(0, 2, T0 + 48 * hour + second, (m3,), "", at_once),
        # IP 1: m1 sold at T0 + 1 h keeps the IP live for exactly 48 h, whenever processed
        Delivery(1, 0, T0, (m1,), "", at_once),
        Delivery(1, 1, T0 + hour, (m1_sold,), "", at_once),
        Delivery(1, 2, T0 + 49 * hour, (m2,), "", 500 * hour),
        # IP 2: the same one second later is a baseline
        Delivery(2, 0, T0, (m1,), "", at_once),
        Delivery(2, 1, T0 + hour, (m1_sold,), "", at_once),
        Delivery(2, 2, T0 + 49 * hour + second, (m2,), "", at_once),
    ]
    _apply_and_compare(engine, 3, deliveries)
    with engine.connect() as connection:
        baselines = {task: bool(flag) for task, flag in connection.execute(sa.text("SELECT task_id, baseline FROM crawl_log"))}
    assert baselines == {
        "task-0-0": True, "task-0-1": False, "task-0-2": True,
        "task-1-0": True, "task-1-1": False, "task-1-2": False,
        "task-2-0": True, "task-2-1": False, "task-2-2": True,
    }
