"""The crawl chain's source: ``mercari_crawl[ip, hour]``, and the sensors that drive crawling —
the cadence (due IPs → tasks) and the results (waiting results → runs).

Which runs the waiting results get, their run keys and the backoff are decided in
:mod:`animehot_dagster.queue.routing`; this module asks Dagster and the database what they need.

While the database is down or hung the results sensor launches nothing: it probes the database
before it asks for runs and, when the probe fails, backs off (a doubling wait, kept in its
cursor) with the results left waiting. A run that fails all the same because the database went
away under it says so (``database_unavailable`` in its failure's metadata), and the run-failure
sensor does not count it as a failed result: its results are still queued (issue 17 #9).
"""

import collections
import contextlib
import json
import logging
import time

import dagster as dg
from sqlalchemy.engine import Engine

from animehot_dagster.defs.metadata import preview_table
from animehot_dagster.defs.partitions import (
    crawl_partition_exists,
    crawl_partition_key,
    crawl_partitions,
    parse_crawl_partition,
)
from animehot_dagster.defs.resources import AnalyzerResource, ClockResource, DatabaseResource, QueueResource
from animehot_dagster.domain.messages import CrawlRequest
from animehot_dagster.domain.pages import stopped_short
from animehot_dagster.domain.timebuckets import from_unix, hour_bucket, rfc3339_jst
from animehot_dagster.queue.dispatcher import dispatch
from animehot_dagster.queue.processor import ProcessReport
from animehot_dagster.queue.routing import (
    BATCH_SIZE,
    DISPATCH_MAX_WAIT_SECONDS,
    RESULT_POLL_SECONDS,
    RESULTS_SCAN,
    BatchRun,
    DatabaseBackoff,
    recovered_cursor,
    route,
    run_key,
)
from animehot_dagster.storage.db import OUTAGE_ERRORS, names_an_outage, reachable
from animehot_dagster.storage.ip_queries import ip_statuses
from animehot_dagster.storage.stats import crawls_in_hour

# The metadata key of a run failure caused by an unreachable database.
DATABASE_UNAVAILABLE = "database_unavailable"

log = logging.getLogger(__name__)


def _outage_failure(cause: object) -> dg.Failure:
    return dg.Failure(
        description=f"database unavailable ({cause}); the results stay queued and are ingested when it answers again",
        metadata={DATABASE_UNAVAILABLE: True},
    )


@contextlib.contextmanager
def _database_outage_is_a_failure(database: DatabaseResource):
    """A database error while the database cannot be reached becomes a Failure marked
    ``database_unavailable``; any other error passes unchanged."""
    try:
        yield
    except OUTAGE_ERRORS as exc:
        if reachable(database.engine()):
            raise
        raise _outage_failure(type(exc).__name__) from exc


def _failed_results(database: DatabaseResource, report: ProcessReport) -> dg.Failure:
    if not reachable(database.engine()):
        return _outage_failure(f"{report.failed} result(s) could not be applied")
    return dg.Failure(f"{report.failed} result(s) failed to apply; the janitor returns them to the queue")


def failed_for_database_outage(step_failures) -> bool:
    """Whether every step of a failed run failed because the database could not be reached:
    marked so by this module, or a database error with an outage code (the figure steps)."""
    if not step_failures:
        return False
    for event in step_failures:
        data = event.step_failure_data
        metadata = data.user_failure_data.metadata if data.user_failure_data else {}
        marked = metadata.get(DATABASE_UNAVAILABLE)
        if marked is not None and getattr(marked, "value", marked) is True:
            continue
        error, outage = data.error, False
        while error is not None and not outage:
            outage = names_an_outage(error.cls_name, error.message)
            error = error.cause or error.context
        if not outage:
            return False
    return True


class CrawlResultsConfig(dg.Config):
    task_ids: list[str] = []  # the results to ingest; none: crawl the IP now (current hour only)


def _crawl_metadata(engine: Engine, ip_id: int, hour, report: ProcessReport, seconds: float) -> dict:
    with engine.connect() as connection:
        crawls = crawls_in_hour(connection, ip_id, hour)
    return {
        "ingested_now": len(report.applied),
        "crawls_in_hour": len(crawls),
        "items": sum(c.items_count for c in crawls),
        "pages": sum(c.pages_crawled for c in crawls),
        "new_listings": sum(c.inflow for c in crawls),
        "sold": sum(c.outflow for c in crawls),
        "crawler_nodes": ", ".join(sorted({c.crawler_node for c in crawls if c.crawler_node})) or "—",
        "duration_seconds": round(seconds, 3),
        "crawls": preview_table(
            ("task_id", "crawled_at", "crawler_node", "pages_crawled", "items_count", "inflow", "outflow", "baseline",
             "error_message"),
            [c._asdict() for c in crawls],
        ),
    }


def _crawl_now(
    context: dg.AssetExecutionContext,
    ip_id: int,
    database: DatabaseResource,
    queue: QueueResource,
    analyzer: AnalyzerResource,
    clock: ClockResource,
) -> ProcessReport:
    """Force a task for the IP, wait for its result up to the task timeout, ingest it."""
    status = ip_statuses(database.engine(), [ip_id]).get(ip_id)
    if status is None:
        raise dg.Failure(f"IP {ip_id} is not in the catalog")
    request = CrawlRequest.new_task(ip_id, status.keyword, analyzer.cadence(), clock.time())
    queue.tasks().enqueue(request, force=True)
    context.log.info(f"crawl of {status.keyword} queued as task {request.task_id}; waiting for its result")
    processor = analyzer.processor(database, queue, clock)
    deadline = time.monotonic() + queue.task_timeout_seconds
    while time.monotonic() < deadline:
        report = processor.process_tasks([request.task_id], scan=RESULTS_SCAN)
        if report.taken:
            return report
        time.sleep(RESULT_POLL_SECONDS)
    raise dg.Failure(
        f"no result for task {request.task_id} within {queue.task_timeout_seconds:.0f} s: is a crawler node "
        "running? The task stays queued; its result will be ingested when it arrives."
    )


@dg.asset(
    partitions_def=crawl_partitions,
    group_name="crawl",
    kinds={"redis", "mysql"},
    description=(
        "The crawls of one IP in one Japan-time hour: the crawl log and the item observations, "
        "ingested exactly once. Materializing the current hour from the UI crawls the IP now."
    ),
)
def mercari_crawl(
    context: dg.AssetExecutionContext,
    config: CrawlResultsConfig,
    database: DatabaseResource,
    queue: QueueResource,
    analyzer: AnalyzerResource,
    clock: ClockResource,
) -> dg.MaterializeResult:
    started = time.perf_counter()
    ip_id, hour = parse_crawl_partition(context.partition_key)
    if not config.task_ids:
        current = hour_bucket(clock.now())
        if hour != current:
            raise dg.Failure(
                f"hour {rfc3339_jst(hour)} is not the current hour ({rfc3339_jst(current)}): the past cannot "
                "be crawled. Its facts come only from crawls made then; to recompute figures from them, "
                "materialize hourly_liquidity instead."
            )
    with _database_outage_is_a_failure(database):
        if config.task_ids:
            report = analyzer.processor(database, queue, clock).process_tasks(config.task_ids, scan=RESULTS_SCAN)
        else:
            report = _crawl_now(context, ip_id, database, queue, analyzer, clock)
        if report.failed:
            raise _failed_results(database, report)
        # This run materializes the figures of its own hour; the other hours the results revised
        # (event-time figures, SPEC §4.1) are recorded here.
        _record_revised_hours(context, report.applied, skip=crawl_partition_key(ip_id, hour))
        metadata = _crawl_metadata(database.engine(), ip_id, hour, report, time.perf_counter() - started)
    return dg.MaterializeResult(metadata=metadata)


@dg.asset_check(
    asset=mercari_crawl,
    partitions_def=crawl_partitions,
    description="Each crawl of the hour read the pages it was asked for, unless the results ran out.",
)
def crawl_pages_complete(
    context: dg.AssetCheckExecutionContext, database: DatabaseResource, analyzer: AnalyzerResource
) -> dg.AssetCheckResult:
    ip_id, hour = parse_crawl_partition(context.partition_key)
    policy = analyzer.cadence()
    asked = policy.pages_on_sale + policy.pages_sold
    with database.engine().connect() as connection:
        crawls = crawls_in_hour(connection, ip_id, hour)
    short = [
        {"task_id": c.task_id, "pages_crawled": c.pages_crawled, "total_found": c.total_found}
        for c in crawls
        if stopped_short(bool(c.error_message), c.pages_crawled, asked, c.total_found)
    ]
    return dg.AssetCheckResult(
        passed=not short,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "crawls": len(crawls),
            "pages_asked": asked,
            "short_crawls": len(short),
            "short": dg.MetadataValue.json(short),
        },
    )


# The assets whose (ip, hour) partitions a result can revise beyond its own crawl hour.
FIGURE_ASSETS = ("hourly_liquidity", "liquidity_alerts")


def _figure_metadata(figures) -> dict:
    return {
        "hour_inflow": figures.inflow,
        "hour_outflow": figures.outflow,
        "liquidity_index": None if figures.liquidity_index is None else float(figures.liquidity_index),
        "quality": figures.quality.value,
    }


def _record_revised_hours(context, results, skip: dg.MultiPartitionKey | None = None) -> int:
    """A materialization of the figure assets for every existing (ip, hour) partition whose figures
    the results recomputed, once per partition with its latest figures; returns how many."""
    latest = {}
    for result in results:
        for figures in result.hours:
            latest[crawl_partition_key(result.ip_id, figures.hour_bucket)] = figures
    recorded = 0
    for key, figures in sorted(latest.items(), key=lambda item: str(item[0])):
        if key == skip or not crawl_partition_exists(context.instance, key):
            continue
        for asset in FIGURE_ASSETS:
            context.log_event(
                dg.AssetMaterialization(asset_key=asset, partition=str(key), metadata=_figure_metadata(figures))
            )
        recorded += 1
    return recorded


# The assets of one (ip, hour), in order: the facts, the figures, the alerts.
CRAWL_CHAIN = ("mercari_crawl", "hourly_liquidity", "liquidity_alerts")

crawl_chain_job = dg.define_asset_job(
    "crawl_chain_job",
    selection=dg.AssetSelection.assets(*CRAWL_CHAIN),
    description="Ingest the results of one (ip, hour) and recompute its figures and alerts.",
)


class IngestBatchConfig(dg.Config):
    max_results: int = BATCH_SIZE


@dg.op(description="Ingest the oldest waiting results and record a materialization per partition written.")
def ingest_waiting_results(
    context: dg.OpExecutionContext,
    config: IngestBatchConfig,
    database: DatabaseResource,
    queue: QueueResource,
    analyzer: AnalyzerResource,
    clock: ClockResource,
) -> None:
    with _database_outage_is_a_failure(database):
        report = analyzer.processor(database, queue, clock).process_batch(max_results=config.max_results)
    partitions = collections.defaultdict(list)
    for result in report.applied:
        partitions[(result.ip_id, result.hour_bucket)].append(result)
    for (ip_id, hour), results in sorted(partitions.items()):
        key = crawl_partition_key(ip_id, hour)
        if not crawl_partition_exists(context.instance, key):
            continue  # an IP no longer active, or an hour before the window: ingested, not shown
        metadata = {
            "ingested_now": len(results),
            "new_listings": sum(r.inflow for r in results),
            "sold": sum(r.outflow for r in results),
            "items": sum(r.items for r in results),
        }
        context.log_event(dg.AssetMaterialization(asset_key="mercari_crawl", partition=str(key), metadata=metadata))
    _record_revised_hours(context, report.applied)
    context.log.info(f"batch: {json.dumps(report.as_dict() | {'applied_task_ids': len(report.applied)})}")
    if report.failed:
        raise _failed_results(database, report)


@dg.job(description="Ingest a batch of waiting results (used when many wait).")
def ingest_results_job() -> None:
    ingest_waiting_results()


RESULTS_TAG = "animehot/results"
# dagster.yaml limits runs with this tag to one at a time.
BATCH_TAG = "animehot/ingest"
_FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


def _run_key(instance: dg.DagsterInstance, results_key: str) -> str:
    """The run key for ``results_key``: it changes with each run for these results that finished."""
    finished = instance.get_runs_count(dg.RunsFilter(tags={RESULTS_TAG: results_key}, statuses=_FINISHED))
    return run_key(results_key, finished)


def _database_down(context: dg.SensorEvaluationContext, database: DatabaseResource, at: float,
                   waiting: int) -> dg.SkipReason | None:
    """None when the database answers (after an outage: logged, the backoff cleared). Otherwise a
    skip: within the backoff without touching the database, after it with a probe that failed
    (the next wait doubled, up to the most)."""
    backoff = DatabaseBackoff.from_cursor(context.cursor)
    if backoff.holds(at):
        return dg.SkipReason(
            f"database unavailable since {rfc3339_jst(from_unix(int(backoff.since)))}: backing off until "
            f"{rfc3339_jst(from_unix(int(backoff.retry_at)))}; {waiting} result(s) wait"
        )
    if reachable(database.engine()):
        if backoff.failures:
            log.warning("database reachable again: results sensor resumes",
                        extra={"down_seconds": round(backoff.down_seconds(at)), "probes": backoff.failures})
            context.update_cursor(recovered_cursor(at))
        return None
    backoff = backoff.failed(at)
    context.update_cursor(backoff.cursor())
    log.warning("database unavailable: results sensor backs off",
                extra={"probes": backoff.failures, "retry_in_seconds": backoff.delay, "results_waiting": waiting})
    return dg.SkipReason(f"database unavailable: no runs launched; probing again in {backoff.delay} s; "
                         f"{waiting} result(s) wait")


@dg.sensor(
    jobs=[crawl_chain_job, ingest_results_job],
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Waiting crawl results → runs of the crawl chain per (ip, hour), or batch runs when many wait.",
)
def crawl_results_sensor(
    context: dg.SensorEvaluationContext,
    database: DatabaseResource,
    queue: QueueResource,
    analyzer: AnalyzerResource,
    clock: ClockResource,
):
    results = queue.results()
    waiting = results.waiting(RESULTS_SCAN)
    if not waiting:
        return dg.SkipReason("no results waiting")
    # A run launched while the database is unreachable fails at once and, its results still
    # waiting, is followed by another the next tick: back off instead (issue 17 #9).
    down = _database_down(context, database, clock.time(), len(waiting))
    if down is not None:
        return down
    # A redelivered result that was applied before changes nothing: ack it here, so that it
    # neither waits for a run nor holds up the ones behind it.
    redelivered = [d.task_id for d in waiting if d.message is not None and results.is_processed(d.task_id)]
    if redelivered:
        analyzer.processor(database, queue, clock).process_tasks(redelivered, scan=RESULTS_SCAN)
        waiting = [d for d in waiting if d.task_id not in set(redelivered)]
    if not waiting:
        return dg.SkipReason(f"no results waiting ({len(redelivered)} redelivered ones acked)" if redelivered else "no results waiting")
    runs = route(waiting, lambda ip_id, hour: crawl_partition_exists(context.instance, crawl_partition_key(ip_id, hour)))
    if isinstance(runs, BatchRun):
        return dg.RunRequest(
            job_name=ingest_results_job.name,
            run_key=_run_key(context.instance, runs.results_key),
            run_config={"ops": {"ingest_waiting_results": {"config": {"max_results": runs.max_results}}}},
            tags={RESULTS_TAG: runs.results_key, BATCH_TAG: "batch", "results_waiting": str(len(waiting))},
        )
    requests = []
    for run in runs:
        key = crawl_partition_key(run.ip_id, run.hour)
        requests.append(
            dg.RunRequest(
                job_name=crawl_chain_job.name,
                partition_key=key,
                run_key=_run_key(context.instance, run.results_key),
                run_config={"ops": {"mercari_crawl": {"config": {"task_ids": list(run.task_ids)}}}},
                tags={RESULTS_TAG: run.results_key, "ip_id": key.keys_by_dimension["ip"]},
            )
        )
    return requests


@dg.sensor(
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="The adaptive cadence: due IPs in the schedule ZSET → crawl tasks, with backpressure.",
)
def crawl_cadence_sensor(
    context: dg.SensorEvaluationContext,
    database: DatabaseResource,
    queue: QueueResource,
    analyzer: AnalyzerResource,
    clock: ClockResource,
) -> dg.SkipReason:
    engine = database.engine()
    rebuilt = queue.schedule(clock.time).rebuild(engine, analyzer.cadence())
    report = dispatch(queue.client(), engine, analyzer.dispatch_config(DISPATCH_MAX_WAIT_SECONDS), clock=clock.time)
    summary = {
        "rebuilt": rebuilt,
        "due": report.due,
        "enqueued": len(report.enqueued),
        "already_pending": len(report.already_pending),
        "dropped": len(report.dropped),
        "failed": len(report.failed),
        "deferred": len(report.deferred),
        "batches": report.batches,
        "waited_seconds": round(report.waited_seconds, 1),
    }
    context.update_cursor(json.dumps(summary | {"at": int(clock.time())}))
    if report.enqueued:
        context.log.info(f"dispatched IPs {report.enqueued}")
    # The cadence requests no runs of its own: its work is the tasks it queued, reported here.
    return dg.SkipReason(json.dumps(summary))
