"""Hourly figures and alerts of each (ip, hour), recomputed from the stored facts: re-materializing
or backfilling any range gives the same rows and never double counts."""

import dagster as dg

from animehot_dagster.defs.metadata import preview_table
from animehot_dagster.defs.partitions import FIGURE_HOURS_FROM_CRAWLS, crawl_partitions, parse_crawl_partition
from animehot_dagster.defs.resources import AnalyzerResource, ClockResource, DatabaseResource
from animehot_dagster.domain.alerts import evaluate, missing_alerts
from animehot_dagster.domain.scores import hot_score, hour_row_problems
from animehot_dagster.domain.timebuckets import rfc3339_jst
from animehot_dagster.storage.alerts import stored_alert_types, write_alerts
from animehot_dagster.storage.stats import hour_figures, recompute_hour, stored_hour


def _figures_metadata(figures) -> dict:
    prices = figures.prices
    return {
        "inflow": figures.inflow,
        "outflow": figures.outflow,
        "liquidity_index": None if figures.liquidity_index is None else float(figures.liquidity_index),
        "hot_score": round(hot_score(figures.inflow, figures.outflow), 4),
        "active_count": figures.active_count,
        "crawls": figures.crawl_count,
        "sold_sample_count": prices.sample_count,
        "sold_price_avg": None if prices.avg is None else float(prices.avg),
        "sold_price_median": None if prices.median is None else float(prices.median),
        "sold_price_min": prices.min,
        "sold_price_max": prices.max,
        "quality": figures.quality.value,
    }


@dg.asset(
    partitions_def=crawl_partitions,
    deps=[dg.AssetDep("mercari_crawl", partition_mapping=FIGURE_HOURS_FROM_CRAWLS)],
    group_name="liquidity",
    kinds={"mysql"},
    description=(
        "Inflow, outflow, liquidity index and sold prices of one (ip, hour) (ip_stats_hourly), and how they "
        "were obtained (exact, counted, estimated, lower bound). Crawls of the following hours revise it."
    ),
)
def hourly_liquidity(
    context: dg.AssetExecutionContext, database: DatabaseResource, clock: ClockResource
) -> dg.MaterializeResult:
    ip_id, hour = parse_crawl_partition(context.partition_key)
    with database.engine().begin() as connection:
        figures = recompute_hour(connection, ip_id, hour, clock.now())
    if figures is None:
        return dg.MaterializeResult(metadata={"crawls": 0, "note": f"no crawl observed {rfc3339_jst(hour)}"})
    return dg.MaterializeResult(metadata=_figures_metadata(figures))


@dg.asset(
    partitions_def=crawl_partitions,
    deps=["hourly_liquidity"],
    group_name="liquidity",
    kinds={"mysql"},
    description="The alerts (SPEC §7) one (ip, hour) raises; one per type, however often recomputed.",
)
def liquidity_alerts(
    context: dg.AssetExecutionContext, database: DatabaseResource, analyzer: AnalyzerResource, clock: ClockResource
) -> dg.MaterializeResult:
    ip_id, hour = parse_crawl_partition(context.partition_key)
    with database.engine().begin() as connection:
        figures = hour_figures(connection, ip_id, hour)
        alerts = [] if figures is None else evaluate(
            figures.inflow, figures.outflow, figures.liquidity_index, analyzer.ingest_config().thresholds
        )
        write_alerts(connection, ip_id, hour, alerts, clock.now())
    return dg.MaterializeResult(
        metadata={
            "alerts": len(alerts),
            "types": ", ".join(a.alert_type.value for a in alerts) or "—",
            "preview": preview_table(
                ("alert_type", "severity", "message"),
                [{"alert_type": a.alert_type.value, "severity": a.severity.value, "message": a.message} for a in alerts],
            ),
        }
    )


@dg.asset_check(
    asset=hourly_liquidity,
    partitions_def=crawl_partitions,
    description=(
        "The stored hourly row has non-negative counts, liquidity = outflow / inflow (NULL at inflow 0), "
        "and matches its facts (crawl log and item events)."
    ),
)
def hourly_figures_consistent(context: dg.AssetCheckExecutionContext, database: DatabaseResource) -> dg.AssetCheckResult:
    ip_id, hour = parse_crawl_partition(context.partition_key)
    with database.engine().connect() as connection:
        row = stored_hour(connection, ip_id, hour)
        facts = hour_figures(connection, ip_id, hour)
    problems = hour_row_problems(row, facts)
    if row is None:
        return dg.AssetCheckResult(passed=not problems, metadata={"row": "missing", "crawls": facts.crawl_count if facts else 0})
    return dg.AssetCheckResult(
        passed=not problems,
        metadata={"problems": "; ".join(problems) or "none", "inflow": row.inflow, "outflow": row.outflow},
    )


@dg.asset_check(
    asset=liquidity_alerts,
    partitions_def=crawl_partitions,
    description="The stored alerts of the hour include every one the rules raise on its stored figures.",
)
def alerts_match_rules(
    context: dg.AssetCheckExecutionContext, database: DatabaseResource, analyzer: AnalyzerResource
) -> dg.AssetCheckResult:
    ip_id, hour = parse_crawl_partition(context.partition_key)
    with database.engine().connect() as connection:
        row = stored_hour(connection, ip_id, hour)
        stored = set(stored_alert_types(connection, ip_id, hour))
    raised = [] if row is None else evaluate(
        row.inflow, row.outflow, row.liquidity_index, analyzer.ingest_config().thresholds
    )
    expected = {a.alert_type.value for a in raised}
    return dg.AssetCheckResult(
        passed=not missing_alerts(raised, stored),
        metadata={"expected": ", ".join(sorted(expected)) or "—", "stored": ", ".join(sorted(stored)) or "—"},
    )
