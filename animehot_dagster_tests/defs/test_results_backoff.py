"""Issue 17 #9: with the database down, crawl_results_sensor launched a failing run per waiting
result every tick (16 runs in 66 s), and pipeline.success_rate counted those runs as failed
results. Now the sensor probes the database first and backs off (10 s doubling to 60 s) with the
results left waiting; a run that fails all the same because the database went away under it is
not counted as a failed result.

The database is a private MariaDB of this module, stopped and started again; the shared one on
3306 is never touched by the outage.
"""

from __future__ import annotations

import json
import time

import dagster as dg
import pytest
import redis

from animehot_dagster.api.app import create_app
from animehot_dagster.defs import crawl as crawl_defs
from animehot_dagster.defs.resources import ClockResource, build_resources
from animehot_dagster.queue import keys
from animehot_dagster.settings import load_settings
from animehot_dagster.storage import open_engine
from animehot_dagster_tests.api.contract_check import ContractClient
from animehot_dagster_tests.defs import (
    TEST_ENV,
    add_ip_partitions,
    partition_key,
    past_hour,
    push,
    tick,
)
from animehot_dagster_tests.factories import make_ips, on_sale, response

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def outage_env(monkeypatch, private_mariadb, queue_redis):
    """The code location's environment, its database the private server (running)."""
    if private_mariadb.process is None:
        private_mariadb.start()
    url = private_mariadb.create_database(f"backoff_{int(time.time() * 1000) % 10**9}")
    monkeypatch.setenv("DATABASE_URL", url)
    for name, value in TEST_ENV.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    engine = open_engine(settings)  # migrated
    yield settings, engine
    engine.dispose()
    if private_mariadb.process is None:
        private_mariadb.start()


@pytest.fixture
def location(outage_env):
    from animehot_dagster.definitions import defs

    return defs(), build_resources(outage_env[0])


def _at(resources: dict, shift: float) -> dict:
    """The resources with the sensors' clock ``shift`` seconds ahead of the wall clock."""
    return {**resources, "clock": ClockResource(shift_seconds=shift)}


def _three_results(engine, instance, client: redis.Redis) -> list[int]:
    ips = make_ips(engine, "鬼滅の刃", "ちいかわ", "初音ミク")
    add_ip_partitions(instance, ips)
    push(client, *[response(ip, past_hour(2, 5 + n), [on_sale(f"m{n}")], task_id=f"t-{n}") for n, ip in enumerate(ips)])
    return ips


def test_while_the_database_is_down_the_results_sensor_backs_off_and_launches_nothing(
        location, outage_env, instance, private_mariadb, queue_redis):
    definitions, resources = location
    _settings, engine = outage_env
    _three_results(engine, instance, queue_redis)
    up = tick(definitions, "crawl_results_sensor", instance, resources)
    keys_before = sorted(r.run_key for r in up.run_requests)
    assert len(keys_before) == 3  # one run per (ip, hour) while the database answers

    private_mariadb.stop()
    cursor, shift, requested, probes, delays = None, 0.0, 0, 0, []
    # 66 s of ticks every 10 s, as the daemon would evaluate them (the issue saw 16 runs in 66 s).
    for _ in range(7):
        data = tick(definitions, "crawl_results_sensor", instance, _at(resources, shift), cursor=cursor)
        requested += len(data.run_requests)
        assert "database unavailable" in data.skip_message, data.skip_message
        assert "3 result(s) wait" in data.skip_message
        if data.cursor and data.cursor != cursor:
            state = json.loads(data.cursor)
            if "probing again" in data.skip_message:
                probes += 1
                delays.append(state["retry_at"] - int(time.time() + shift))
            cursor = data.cursor
        else:
            assert "backing off until" in data.skip_message
        shift += 10
    assert requested == 0
    assert probes == 3, (probes, delays)  # at 0 s, 10 s and 30 s; the next is due at 70 s
    assert [round(d, -1) for d in delays] == [10, 20, 40]
    assert queue_redis.llen(keys.RESULTS) == 3 and queue_redis.llen(keys.RESULTS_PROCESSING) == 0

    # The wait doubles up to 60 s.
    for _ in range(3):
        shift = json.loads(cursor)["retry_at"] - time.time() + 1
        data = tick(definitions, "crawl_results_sensor", instance, _at(resources, shift), cursor=cursor)
        assert not data.run_requests
        cursor = data.cursor
    state = json.loads(cursor)
    assert state["failures"] == 6 and round(state["retry_at"] - (time.time() + shift), -1) == 60

    # The database is back: the next probe finds it and the same runs are asked for.
    private_mariadb.start()
    shift = state["retry_at"] - time.time() + 1
    data = tick(definitions, "crawl_results_sensor", instance, _at(resources, shift), cursor=cursor)
    assert sorted(r.run_key for r in data.run_requests) == keys_before
    assert json.loads(data.cursor)["failures"] == 0


def test_a_run_failing_because_the_database_went_away_is_not_a_failed_result(
        location, outage_env, instance, private_mariadb, queue_redis):
    definitions, resources = location
    settings, engine = outage_env
    ips = _three_results(engine, instance, queue_redis)
    [request, *_] = tick(definitions, "crawl_results_sensor", instance, resources).run_requests
    private_mariadb.stop()  # after the sensor asked for the run, before the run took its results

    job = definitions.resolve_job_def("crawl_chain_job")
    outage = job.execute_in_process(partition_key=request.partition_key, run_config=request.run_config,
                                    instance=instance, raise_on_error=False)
    assert not outage.success
    [step_failure] = [e for e in outage.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "database unavailable" in step_failure.step_failure_data.user_failure_data.description
    assert crawl_defs.failed_for_database_outage([step_failure])

    # A run that fails for another reason (a past hour asked to crawl now) still counts.
    other = job.execute_in_process(partition_key=partition_key(ips[0], past_hour(5)), instance=instance,
                                   raise_on_error=False)
    assert not other.success

    sensor = definitions.resolve_sensor_def("crawl_run_failure_sensor")
    for result in (outage, other):
        [failure] = [e for e in result.all_events if e.event_type_value in ("RUN_FAILURE", "PIPELINE_FAILURE")]
        with dg.build_run_status_sensor_context(sensor_name=sensor.name, dagster_event=failure, dagster_instance=instance,
                                                dagster_run=instance.get_run_by_id(result.run_id),
                                                resources=resources) as context:
            sensor(context.for_run_failure())
    assert int(queue_redis.get(keys.FAILED_RUNS)) == 1

    # What the API reports once the database is back: one failed run, not two.
    private_mariadb.start()
    api_engine = open_engine(settings)
    try:
        with ContractClient(create_app(settings, api_engine, queue_redis)) as client:
            pipeline = client.get("/api/v1/system/status").json()["data"]["pipeline"]
    finally:
        api_engine.dispose()
    assert pipeline["failed"] == 1 and pipeline["processed"] == 0
