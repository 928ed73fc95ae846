"""Keeping the pipeline healthy: the queue janitor on its schedule and the run-failure sensor."""

import logging
from datetime import timedelta

import dagster as dg

from animehot_dagster.defs.crawl import crawl_chain_job, failed_for_database_outage, ingest_results_job
from animehot_dagster.defs.resources import ClockResource, QueueResource
from animehot_dagster.domain.cron import every
from animehot_dagster.queue import janitor
from animehot_dagster.queue.keys import FAILED_RUNS
from animehot_dagster.settings import SettingsError, process_settings

log = logging.getLogger(__name__)


@dg.op(description="Return messages held past JANITOR_TIMEOUT to their queue, or dead-letter them.")
def sweep_queues(context: dg.OpExecutionContext, queue: QueueResource, clock: ClockResource) -> dg.Output:
    report = janitor.sweep(queue.client(), queue.janitor_timeout_seconds, clock=clock.time)
    context.log.info(f"janitor: {report.as_dict()}")
    return dg.Output(None, metadata={"sweep": dg.MetadataValue.json(report.as_dict())})


@dg.job(description="One janitor sweep of the task and result queues.")
def queue_janitor_job() -> None:
    sweep_queues()


def _janitor_cron(interval: timedelta) -> str:
    try:
        return every(interval)
    except ValueError as exc:
        raise SettingsError(f"JANITOR_INTERVAL={exc}") from None


queue_janitor_schedule = dg.ScheduleDefinition(
    job=queue_janitor_job,
    cron_schedule=_janitor_cron(process_settings().janitor_interval),
    default_status=dg.DefaultScheduleStatus.RUNNING,
)


@dg.run_failure_sensor(
    monitored_jobs=[crawl_chain_job, ingest_results_job],
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Logs each failed crawl-chain or ingest run and counts it for the metrics (not one that "
                "failed because the database could not be reached: its results still wait).",
)
def crawl_run_failure_sensor(context: dg.RunFailureSensorContext, queue: QueueResource) -> None:
    if failed_for_database_outage(context.get_step_failure_events()):
        log.warning("task processing deferred: database unavailable",
                    extra={"run_id": context.dagster_run.run_id, "job": context.dagster_run.job_name})
        return
    failures = queue.client().incr(FAILED_RUNS)
    log.error(
        "task processing failed",
        extra={"run_id": context.dagster_run.run_id, "job": context.dagster_run.job_name,
               "error": context.failure_event.message, "failed_runs": failures},
    )
