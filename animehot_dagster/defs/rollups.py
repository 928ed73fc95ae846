"""Days, weeks and leaderboards: rollups of the hourly figures, on their schedules."""

import dataclasses
from datetime import date

import dagster as dg
from sqlalchemy.engine import Connection

from animehot_dagster.api.cache import invalidate_after_rollup
from animehot_dagster.defs.metadata import preview_table
from animehot_dagster.defs.partitions import day_partitions, week_partitions
from animehot_dagster.defs.resources import ClockResource, DatabaseResource, QueueResource
from animehot_dagster.domain.leaderboard import DAY_HOURS, LEADERBOARD_WINDOWS, WEEK_HOURS, LeaderboardType
from animehot_dagster.domain.rollups import Totals, mismatched_ips, pooled
from animehot_dagster.storage.leaderboard import ip_names, leaderboard
from animehot_dagster.storage.rollups import (
    RollupReport,
    TotalsAgainstHours,
    day_totals,
    rollup_day,
    rollup_week,
    week_totals,
)


def _rollup_metadata(report: RollupReport) -> dict:
    return {
        "rows": report.rows,
        "total_inflow": report.total_inflow,
        "total_outflow": report.total_outflow,
        "preview": preview_table(("ip_id", "total_inflow", "total_outflow", "avg_liquidity"), report.preview),
    }


@dg.asset(
    partitions_def=day_partitions,
    deps=["hourly_liquidity"],
    group_name="rollups",
    kinds={"mysql"},
    description="Each IP's Japan-time day (ip_stats_daily), from its hourly rows and sold items.",
)
def daily_liquidity(
    context: dg.AssetExecutionContext, database: DatabaseResource, queue: QueueResource, clock: ClockResource
) -> dg.MaterializeResult:
    day = date.fromisoformat(context.partition_key)
    with database.engine().begin() as connection:
        report = rollup_day(connection, day, clock.now())
    invalidate_after_rollup(queue.client(), DAY_HOURS)
    return dg.MaterializeResult(metadata=_rollup_metadata(report))


@dg.asset(
    partitions_def=week_partitions,
    deps=["daily_liquidity"],
    group_name="rollups",
    kinds={"mysql"},
    description="Each IP's Monday-based week (ip_stats_weekly).",
)
def weekly_liquidity(
    context: dg.AssetExecutionContext, database: DatabaseResource, queue: QueueResource, clock: ClockResource
) -> dg.MaterializeResult:
    week_start = date.fromisoformat(context.partition_key)
    with database.engine().begin() as connection:
        report = rollup_week(connection, week_start, clock.now())
    invalidate_after_rollup(queue.client(), WEEK_HOURS)
    return dg.MaterializeResult(metadata=_rollup_metadata(report))


# The mismatched IPs a check's metadata names; the count covers them all.
SHOWN_MISMATCHES = 20


def _in_out(totals: Totals) -> str:
    return f"{totals[0]} in / {totals[1]} out"


def _totals_match(connection: Connection, totals: TotalsAgainstHours) -> dg.AssetCheckResult:
    """Passes when every IP's rollup row equals the sums of its hourly rows; the metadata names
    the IPs that differ and gives the totals pooled over every IP."""
    mismatches = mismatched_ips(totals.rolled, totals.hourly)
    names = ip_names(connection) if mismatches else {}
    return dg.AssetCheckResult(
        passed=not mismatches,
        metadata={
            "rollup": _in_out(pooled(totals.rolled)),
            "hourly": _in_out(pooled(totals.hourly)),
            "mismatched_ips": len(mismatches),
            "mismatches": dg.MetadataValue.json([
                {
                    "id": m.ip_id,
                    "name": names.get(m.ip_id, str(m.ip_id)),
                    "rollup": "no row" if m.rolled is None else _in_out(m.rolled),
                    "hourly": "no hourly rows" if m.hourly is None else _in_out(m.hourly),
                }
                for m in mismatches[:SHOWN_MISMATCHES]
            ]),
        },
    )


@dg.asset_check(asset=daily_liquidity, partitions_def=day_partitions, description="Each IP's daily totals equal the sums of its hourly rows.")
def daily_totals_match_hours(context: dg.AssetCheckExecutionContext, database: DatabaseResource) -> dg.AssetCheckResult:
    with database.engine().connect() as connection:
        return _totals_match(connection, day_totals(connection, date.fromisoformat(context.partition_key)))


@dg.asset_check(asset=weekly_liquidity, partitions_def=week_partitions, description="Each IP's weekly totals equal the sums of its hourly rows.")
def weekly_totals_match_hours(context: dg.AssetCheckExecutionContext, database: DatabaseResource) -> dg.AssetCheckResult:
    with database.engine().connect() as connection:
        return _totals_match(connection, week_totals(connection, date.fromisoformat(context.partition_key)))


@dg.asset(
    deps=["daily_liquidity", "weekly_liquidity"],
    group_name="rollups",
    kinds={"mysql"},
    description="The hot / inflow / outflow leaderboards of the last hour, yesterday and last week.",
)
def leaderboards(database: DatabaseResource, clock: ClockResource) -> dg.MaterializeResult:
    moment = clock.now()
    metadata = {}
    with database.engine().connect() as connection:
        names = ip_names(connection)
        for hours in LEADERBOARD_WINDOWS:
            span, entries = leaderboard(connection, LeaderboardType.HOT, hours, 10, moment)
            metadata[f"hot_{hours}h"] = preview_table(
                ("rank", "ip", "inflow", "outflow", "hot_score"),
                [{**dataclasses.asdict(e), "ip": names.get(e.ip_id, str(e.ip_id)), "hot_score": round(e.hot_score, 3)}
                 for e in entries],
            )
            metadata[f"entries_{hours}h"] = len(entries)
    return dg.MaterializeResult(metadata=metadata)


daily_rollup_job = dg.define_asset_job("daily_rollup_job", selection=["daily_liquidity"])
weekly_rollup_job = dg.define_asset_job("weekly_rollup_job", selection=["weekly_liquidity"])
leaderboards_job = dg.define_asset_job("leaderboards_job", selection=["leaderboards"])

# Japan 00:10 for yesterday, Monday 00:30 for last week (the schedules target the partition
# that has just ended), and the leaderboards a few minutes past every hour.
daily_rollup_schedule = dg.build_schedule_from_partitioned_job(
    daily_rollup_job, hour_of_day=0, minute_of_hour=10, default_status=dg.DefaultScheduleStatus.RUNNING
)
weekly_rollup_schedule = dg.build_schedule_from_partitioned_job(
    weekly_rollup_job, day_of_week=1, hour_of_day=0, minute_of_hour=30, default_status=dg.DefaultScheduleStatus.RUNNING
)
leaderboards_schedule = dg.ScheduleDefinition(
    job=leaderboards_job, cron_schedule="5 * * * *", execution_timezone="Asia/Tokyo",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
