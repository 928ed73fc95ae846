"""The IP catalog: the ``ip_catalog`` asset, its freshness check, and the sensor that keeps the
``ip`` partitions equal to the active IPs."""

import json
from datetime import timedelta

import dagster as dg

from animehot_dagster.defs.metadata import preview_table
from animehot_dagster.defs.partitions import ip_partitions
from animehot_dagster.defs.resources import AnalyzerResource, ClockResource, DatabaseResource, QueueResource
from animehot_dagster.domain.cadence import FRESHNESS_SLACK
from animehot_dagster.domain.catalog import IpStatus
from animehot_dagster.domain.timebuckets import rfc3339_jst
from animehot_dagster.storage.ip_queries import active_ips, every_ip


@dg.asset(group_name="catalog", kinds={"mysql"}, description="The tracked IPs (ip_metadata) by status.")
def ip_catalog(database: DatabaseResource) -> dg.MaterializeResult:
    rows = every_ip(database.engine())
    by_status = {status: sum(1 for r in rows if r.status == status) for status in IpStatus}
    return dg.MaterializeResult(
        metadata={
            "ips": len(rows),
            **{f"{status}_ips": count for status, count in by_status.items()},
            "preview": preview_table(
                ("id", "name", "category", "weight", "status", "last_crawled_at"), [r._asdict() for r in rows[:100]]
            ),
        }
    )


@dg.asset_check(
    asset=ip_catalog,
    description=f"Every active IP was crawled within its interval (+{FRESHNESS_SLACK // timedelta(minutes=1)} min).",
)
def every_active_ip_fresh(
    database: DatabaseResource, analyzer: AnalyzerResource, clock: ClockResource
) -> dg.AssetCheckResult:
    policy, moment = analyzer.cadence(), clock.now()
    stale = []
    for ip in active_ips(database.engine()):
        if policy.is_stale(ip.weight, ip.crawl_interval_minutes, ip.last_crawled_at, moment):
            last = rfc3339_jst(ip.last_crawled_at) if ip.last_crawled_at else None
            stale.append({"id": ip.id, "name": ip.keyword, "last_crawled_at": last})
    return dg.AssetCheckResult(
        passed=not stale,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"stale_ips": len(stale), "stale": dg.MetadataValue.json(stale[:50])},
    )


@dg.sensor(
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Keeps the `ip` partitions equal to the active IPs and schedules new IPs at once.",
)
def ip_catalog_sensor(
    context: dg.SensorEvaluationContext,
    database: DatabaseResource,
    queue: QueueResource,
    analyzer: AnalyzerResource,
    clock: ClockResource,
) -> dg.SensorResult | dg.SkipReason:
    active = {str(ip.id): ip for ip in active_ips(database.engine())}
    known = set(context.instance.get_dynamic_partitions(ip_partitions.name))
    added = sorted(set(active) - known, key=int)
    removed = sorted(known - set(active), key=int)
    seeded = queue.schedule(clock.time).seed([active[key] for key in added], analyzer.cadence())
    context.update_cursor(json.dumps({IpStatus.ACTIVE: len(active)}))
    if not added and not removed:
        return dg.SkipReason(f"{len(active)} active IPs, partitions up to date")
    context.log.info(f"ip partitions: +{added} -{removed}; {seeded} newly scheduled")
    return dg.SensorResult(
        dynamic_partitions_requests=[
            ip_partitions.build_add_request(added),
            ip_partitions.build_delete_request(removed),
        ]
    )
