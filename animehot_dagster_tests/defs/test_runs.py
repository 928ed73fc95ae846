"""Runs in process on a real Dagster instance, with the run config the sensors produce: the crawl
chain per (ip, hour), the batch ingest, 'crawl now' from the UI, the janitor and the run-failure
sensor."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
import sqlalchemy as sa

from animehot_dagster.defs.crawl import (
    CrawlResultsConfig,
    mercari_crawl,
)
from animehot_dagster.defs.resources import QueueResource
from animehot_dagster.domain.timebuckets import to_unix
from animehot_dagster.queue import keys
from animehot_dagster.queue.reliable import ResultQueue, TaskQueue
from animehot_dagster.queue.routing import PER_PARTITION_LIMIT
from animehot_dagster.queue.schedule import ScheduleStore
from animehot_dagster.storage.schema import (
    crawl_log,
    ip_alerts,
    ip_metadata,
    ip_stats_hourly,
)
from animehot_dagster_tests.conftest import REDIS_URL
from animehot_dagster_tests.defs import (
    CRAWL_CHAIN,
    add_ip_partitions,
    check_results,
    current_hour,
    market_crawls,
    materializations,
    materialized_partitions,
    partition_key,
    past_hour,
    push,
    step_failure_messages,
    tick,
)
from animehot_dagster_tests.factories import make_ips, on_sale, response, sold


def _crawl_log(engine) -> dict[str, sa.Row]:
    with engine.connect() as connection:
        return {row.task_id: row for row in connection.execute(sa.select(crawl_log))}


def _count(engine, table: sa.Table) -> int:
    with engine.connect() as connection:
        return connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def _queues_empty(client) -> bool:
    return not any(client.exists(key) for key in (keys.RESULTS, keys.RESULTS_PROCESSING, keys.RESULTS_STARTED))


# -- crawl_chain_job ---------------------------------------------------------------------------


def test_crawl_chain_run_ingests_its_results_and_materializes_the_partition(
    definitions, instance, resources, mysql_engine, queue_redis
):
    [ip] = make_ips(mysql_engine, "鬼滅の刃")
    add_ip_partitions(instance, [ip])
    baseline, busy = market_crawls(ip, [past_hour(2), past_hour(1)], [(0, 0), (20, 60)], tag="m")
    push(queue_redis, baseline, busy)
    requests = tick(definitions, "crawl_results_sensor", instance, resources).run_requests
    assert [str(r.partition_key) for r in requests] == [partition_key(ip, past_hour(2)), partition_key(ip, past_hour(1))]
    job = definitions.resolve_job_def("crawl_chain_job")

    # The baseline hour.
    first = job.execute_in_process(
        partition_key=requests[0].partition_key, run_config=requests[0].run_config, instance=instance, tags=requests[0].tags
    )
    assert first.success
    key = str(requests[0].partition_key)
    metadata = materializations(first)
    assert set(metadata) == {(asset, key) for asset in CRAWL_CHAIN}
    crawl = metadata[("mercari_crawl", key)]
    assert (crawl["ingested_now"], crawl["crawls_in_hour"], crawl["items"], crawl["pages"]) == (1, 1, 100, 10)
    assert (crawl["new_listings"], crawl["sold"], crawl["crawler_nodes"]) == (0, 0, "node-1")
    [logged] = [record.data for record in crawl["crawls"].records]  # the crawls table shows a baseline
    assert (logged["task_id"], logged["baseline"], logged["items_count"], logged["crawler_node"]) == ("m-0", True, 100, "node-1")
    hourly = metadata[("hourly_liquidity", key)]
    assert (hourly["inflow"], hourly["outflow"], hourly["liquidity_index"], hourly["active_count"]) == (0, 0, None, 100)
    assert metadata[("liquidity_alerts", key)]["alerts"] == 0
    assert check_results(first) == {"crawl_pages_complete": True, "hourly_figures_consistent": True, "alerts_match_rules": True}
    assert set(_crawl_log(mysql_engine)) == {"m-0"}
    assert queue_redis.llen(keys.RESULTS) == 1 and queue_redis.llen(keys.RESULTS_PROCESSING) == 0
    assert ResultQueue(queue_redis).is_processed("m-0")

    # The busy hour: 20 new listings, 60 sold.
    second = job.execute_in_process(
        partition_key=requests[1].partition_key, run_config=requests[1].run_config, instance=instance, tags=requests[1].tags
    )
    assert second.success
    key = str(requests[1].partition_key)
    metadata = materializations(second)
    crawl = metadata[("mercari_crawl", key)]
    assert (crawl["ingested_now"], crawl["items"], crawl["new_listings"], crawl["sold"]) == (1, 120, 20, 60)
    hourly = metadata[("hourly_liquidity", key)]
    assert (hourly["inflow"], hourly["outflow"], hourly["liquidity_index"], hourly["sold_sample_count"]) == (20, 60, 3.0, 60)
    alerts = metadata[("liquidity_alerts", key)]
    assert (alerts["alerts"], alerts["types"]) == (2, "high_outflow, surge")
    assert check_results(second) == {"crawl_pages_complete": True, "hourly_figures_consistent": True, "alerts_match_rules": True}

    # The database holds the crawl, its hour and its alerts; the queue holds nothing.
    log = _crawl_log(mysql_engine)
    assert set(log) == {"m-0", "m-1"}
    with mysql_engine.connect() as connection:
        row = connection.execute(sa.select(ip_stats_hourly).where(ip_stats_hourly.c.hour_bucket == log["m-1"].hour_bucket)).one()
        types = sorted(connection.execute(sa.select(ip_alerts.c.alert_type)).scalars())
    assert (row.inflow, row.outflow, row.crawl_count) == (20, 60, 1)
    assert types == ["high_outflow", "surge"]
    assert _queues_empty(queue_redis)
    assert {m.decode() for m in queue_redis.smembers(keys.PROCESSED)} == {"m-0", "m-1"}

    # The schedule holds the next crawl the cadence decided: the crawl's time plus its interval.
    latest = log["m-1"]
    next_at = dict(ScheduleStore(queue_redis).entries())[ip]
    assert next_at == to_unix(latest.next_crawl_at) == to_unix(latest.crawled_at) + latest.interval_minutes * 60
    assert next_at > time.time()

    for asset in CRAWL_CHAIN:
        assert materialized_partitions(instance, asset) == {str(r.partition_key) for r in requests}

    # A duplicate run of the same request changes nothing (its result is gone and applied).
    again = job.execute_in_process(partition_key=requests[1].partition_key, run_config=requests[1].run_config, instance=instance)
    assert again.success
    assert materializations(again)[("mercari_crawl", key)]["ingested_now"] == 0
    assert set(_crawl_log(mysql_engine)) == {"m-0", "m-1"} and _count(mysql_engine, ip_alerts) == 2


def test_ingest_results_job_records_a_materialization_per_partition_written(
    definitions, instance, resources, mysql_engine, queue_redis
):
    a, b = make_ips(mysql_engine, "ちいかわ", "初音ミク")
    add_ip_partitions(instance, [a, b])
    times = [past_hour(h) for h in (5, 4, 3, 2, 1)]
    moves = [(0, 0), (5, 2), (30, 30), (8, 1), (3, 3)]
    crawls_a = market_crawls(a, times, moves, tag="a")
    crawls_b = market_crawls(b, [t + timedelta(minutes=20) for t in times], moves[::-1][:1] + moves[1:], tag="b")
    push(queue_redis, *[c for pair in zip(crawls_a, crawls_b, strict=False) for c in pair])
    assert len(crawls_a) + len(crawls_b) > PER_PARTITION_LIMIT

    [request] = tick(definitions, "crawl_results_sensor", instance, resources).run_requests
    assert request.job_name == "ingest_results_job"
    result = definitions.resolve_job_def("ingest_results_job").execute_in_process(
        run_config=request.run_config, instance=instance, tags=request.tags
    )
    assert result.success

    expected = {partition_key(ip, t) for ip in (a, b) for t in times}
    for asset in CRAWL_CHAIN:
        assert materialized_partitions(instance, asset) == expected, asset
    metadata = materializations(result)
    assert set(metadata) == {(asset, key) for asset in CRAWL_CHAIN for key in expected}
    with mysql_engine.connect() as connection:
        hours = {(r.ip_id, r.hour_bucket): r for r in connection.execute(sa.select(ip_stats_hourly))}
    for (ip, hour), row in hours.items():
        key = partition_key(ip, hour)
        assert metadata[("mercari_crawl", key)]["ingested_now"] == 1
        figures = metadata[("hourly_liquidity", key)]
        assert (figures["hour_inflow"], figures["hour_outflow"], figures["quality"]) == (row.inflow, row.outflow, row.quality)
    assert len(hours) == 10 and _count(mysql_engine, crawl_log) == 10
    assert _queues_empty(queue_redis)


def test_crawl_pages_check_warns_about_a_short_crawl(definitions, instance, resources, mysql_engine, queue_redis):
    [ip] = make_ips(mysql_engine, "呪術廻戦")
    add_ip_partitions(instance, [ip])
    # 3 pages of the 10 asked, though the search found far more than 3 pages hold.
    short = response(ip, past_hour(1), [on_sale(f"m{i}") for i in range(300)], task_id="short", pages_crawled=3)
    push(queue_redis, dataclasses.replace(short, total_found=5_000))
    [request] = tick(definitions, "crawl_results_sensor", instance, resources).run_requests
    result = definitions.resolve_job_def("crawl_chain_job").execute_in_process(
        partition_key=request.partition_key, run_config=request.run_config, instance=instance
    )
    assert result.success  # a warning, not a failure
    assert check_results(result) == {"crawl_pages_complete": False, "hourly_figures_consistent": True, "alerts_match_rules": True}
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == "crawl_pages_complete"]
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.metadata["short_crawls"].value == 1


def test_ip_catalog_asset_and_its_freshness_check(definitions, instance, mysql_engine):
    fresh, stale, never, paused = make_ips(mysql_engine, "鬼滅の刃", "ちいかわ", "初音ミク", "呪術廻戦")
    now = datetime.now(UTC)
    with mysql_engine.begin() as connection:
        for ip, at, status in ((fresh, now - timedelta(minutes=30), "active"), (stale, now - timedelta(hours=3), "active"),
                               (paused, None, "paused")):
            connection.execute(ip_metadata.update().where(ip_metadata.c.id == ip).values(last_crawled_at=at, status=status))
    job = definitions.resolve_implicit_job_def_def_for_assets([dg.AssetKey("ip_catalog")])
    result = job.execute_in_process(asset_selection=[dg.AssetKey("ip_catalog")], instance=instance)
    assert result.success
    metadata = materializations(result)[("ip_catalog", None)]
    assert (metadata["ips"], metadata["active_ips"], metadata["paused_ips"], metadata["deleted_ips"]) == (4, 3, 1, 0)
    assert "ちいかわ" in [record.data["name"] for record in metadata["preview"].records]
    [evaluation] = result.get_asset_check_evaluations()
    assert (evaluation.check_name, evaluation.passed, evaluation.severity) == ("every_active_ip_fresh", False, dg.AssetCheckSeverity.WARN)
    # 2 h interval + 30 min slack: crawled 3 h ago and never crawled are stale, 30 min ago is not.
    assert sorted(s["id"] for s in evaluation.metadata["stale"].value) == [stale, never]


# -- mercari_crawl by hand (the UI) ------------------------------------------------------------


def test_materializing_a_past_hour_without_results_fails_clearly(definitions, instance, mysql_engine, queue_redis):
    [ip] = make_ips(mysql_engine, "鬼滅の刃")
    add_ip_partitions(instance, [ip])
    result = definitions.resolve_job_def("crawl_chain_job").execute_in_process(
        partition_key=partition_key(ip, past_hour(3)), instance=instance, raise_on_error=False
    )
    assert not result.success
    [message] = step_failure_messages(result)
    assert "the past cannot be crawled" in message
    assert "materialize hourly_liquidity" in message
    assert queue_redis.llen(keys.TASKS) == 0  # nothing was dispatched
    assert not materialized_partitions(instance, "mercari_crawl")


@contextlib.contextmanager
def crawler_node(client, node: str = "test-node") -> Iterator[list]:
    """A small crawler: takes each task, answers it with a result built from the request, acks."""
    served: list = []
    stop = threading.Event()

    def run() -> None:
        tasks, results = TaskQueue(client), ResultQueue(client)
        while not stop.is_set():
            delivery = tasks.take(block_seconds=0.5)
            if delivery is None:
                continue
            request = delivery.message
            items = [on_sale(f"{request.keyword}-{i}") for i in range(30)] + [sold(f"{request.keyword}-s{i}") for i in range(4)]
            results.push(response(
                request.ip_id, datetime.now(UTC), items, task_id=request.task_id, retry_count=request.retry_count,
                pages_crawled=request.pages_on_sale + request.pages_sold, crawler_node=node,
            ))
            tasks.ack(delivery)
            served.append(request)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        stop.set()
        thread.join(timeout=5)


def test_materializing_the_current_hour_crawls_the_ip_now(instance, resources, mysql_engine, queue_redis):
    """The asset's own logic, invoked for the current hour directly (the job cannot run it today:
    see test_crawl_chain_job_runs_for_the_current_hour)."""
    hour = current_hour(margin_seconds=resources["queue"].task_timeout_seconds + 10)
    [ip] = make_ips(mysql_engine, "初音ミク")
    add_ip_partitions(instance, [ip])
    assert resources["queue"].task_timeout_seconds == 20
    with crawler_node(queue_redis) as served:
        context = dg.build_asset_context(partition_key=partition_key(ip, hour), resources=resources, instance=instance)
        started = time.monotonic()
        output = mercari_crawl(context=context, config=CrawlResultsConfig())
        elapsed = time.monotonic() - started
    assert elapsed < 20
    [request] = served
    assert (request.ip_id, request.keyword, request.pages_on_sale, request.pages_sold) == (ip, "初音ミク", 5, 5)
    metadata = {k: getattr(v, "value", v) for k, v in output.metadata.items()}
    assert (metadata["ingested_now"], metadata["crawls_in_hour"], metadata["items"]) == (1, 1, 34)
    assert metadata["crawler_nodes"] == "test-node"
    log = _crawl_log(mysql_engine)
    assert set(log) == {request.task_id} and log[request.task_id].hour_bucket == hour
    assert _queues_empty(queue_redis)
    assert queue_redis.llen(keys.TASKS) == 0 and not TaskQueue(queue_redis).is_pending(ip)


def test_crawling_now_without_a_crawler_fails_after_the_task_timeout(instance, resources, mysql_engine, queue_redis):
    hour = current_hour(margin_seconds=10)
    [ip] = make_ips(mysql_engine, "呪術廻戦")
    add_ip_partitions(instance, [ip])
    resources["queue"] = QueueResource(url=REDIS_URL, task_timeout_seconds=1)
    context = dg.build_asset_context(partition_key=partition_key(ip, hour), resources=resources, instance=instance)
    with pytest.raises(dg.Failure, match="no result for task .* within 1 s: is a crawler node running"):
        mercari_crawl(context=context, config=CrawlResultsConfig())
    # The task stays queued: a crawler that comes later still crawls it, and its result is ingested.
    [raw] = queue_redis.lrange(keys.TASKS, 0, -1)
    assert TaskQueue.decode(raw).ip_id == ip


def test_crawl_chain_job_runs_for_the_current_hour(definitions, instance, mysql_engine, queue_redis):
    hour = current_hour(margin_seconds=30)
    [ip] = make_ips(mysql_engine, "葬送のフリーレン")
    add_ip_partitions(instance, [ip])
    with crawler_node(queue_redis) as served:
        result = definitions.resolve_job_def("crawl_chain_job").execute_in_process(
            partition_key=partition_key(ip, hour), instance=instance
        )
    assert result.success and len(served) == 1
    assert check_results(result) == {"crawl_pages_complete": True, "hourly_figures_consistent": True, "alerts_match_rules": True}
    assert _count(mysql_engine, crawl_log) == 1


# -- the janitor and the failure sensor ---------------------------------------------------------


def test_janitor_job_returns_a_stale_held_result_with_retry_count_plus_one(definitions, instance, mysql_engine, queue_redis):
    [ip] = make_ips(mysql_engine, "ちいかわ")
    push(queue_redis, response(ip, past_hour(1), [on_sale("m1")], task_id="stale"),
         response(ip, past_hour(1, 30), [on_sale("m1")], task_id="fresh"))
    def minute_ago():
        return time.time() - 60

    assert ResultQueue(queue_redis, clock=minute_ago).take().task_id == "stale"  # a run that died a minute ago
    assert ResultQueue(queue_redis).take().task_id == "fresh"  # a run still working on it
    TaskQueue(queue_redis).enqueue(TaskQueue.decode(
        b'{"ipId":"%d","keyword":"x","taskId":"task-stale","createdAt":"1"}' % ip))
    assert TaskQueue(queue_redis, clock=minute_ago).take().task_id == "task-stale"

    result = definitions.resolve_job_def("queue_janitor_job").execute_in_process(instance=instance)
    assert result.success
    [output] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    sweep = output.event_specific_data.metadata["sweep"].value
    assert (sweep["results"]["requeued"], sweep["results"]["held"], sweep["tasks"]["requeued"]) == (1, 1, 1)

    [back] = ResultQueue(queue_redis).waiting(10)
    assert (back.task_id, back.message.retry_count) == ("stale", 1)
    assert [ResultQueue.decode(raw).task_id for raw in queue_redis.lrange(keys.RESULTS_PROCESSING, 0, -1)] == ["fresh"]
    [task] = queue_redis.lrange(keys.TASKS, 0, -1)
    assert (TaskQueue.decode(task).task_id, TaskQueue.decode(task).retry_count) == ("task-stale", 1)


def test_run_failure_sensor_counts_failed_crawl_chain_runs(definitions, instance, resources, mysql_engine, queue_redis):
    [ip] = make_ips(mysql_engine, "鬼滅の刃")
    add_ip_partitions(instance, [ip])
    failed = definitions.resolve_job_def("crawl_chain_job").execute_in_process(
        partition_key=partition_key(ip, past_hour(2)), instance=instance, raise_on_error=False
    )
    assert not failed.success
    [failure] = [e for e in failed.all_events if e.event_type_value in ("RUN_FAILURE", "PIPELINE_FAILURE")]
    sensor = definitions.resolve_sensor_def("crawl_run_failure_sensor")
    for expected in (1, 2):
        with dg.build_run_status_sensor_context(
            sensor_name=sensor.name,
            dagster_event=failure,
            dagster_instance=instance,
            dagster_run=instance.get_run_by_id(failed.run_id),
            resources=resources,
        ) as context:
            sensor(context.for_run_failure())
        assert int(queue_redis.get(keys.FAILED_RUNS)) == expected
