"""The project's tables (SPEC §2 plus the crawl log and item events), as SQLAlchemy Core.

The Alembic migrations create exactly these; a test compares the two.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from animehot_dagster.domain.catalog import IP_STATUSES, IpStatus

metadata = sa.MetaData()


class UTCDateTime(sa.types.TypeDecorator):
    """Aware datetimes in Python, naive UTC in the database (MariaDB's DATETIME drops zones)."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


# BIGINT ids on MySQL; SQLite only auto-increments an INTEGER PRIMARY KEY.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# IP names are search keywords: unique as written, not under a collation's case/kana folding.
ExactName = sa.String(255).with_variant(mysql.VARCHAR(255, collation="utf8mb4_bin"), "mysql")
TABLE_OPTIONS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", UTCDateTime, nullable=False, server_default=sa.func.current_timestamp()),
        sa.Column("updated_at", UTCDateTime, nullable=False, server_default=sa.func.current_timestamp()),
    ]


ip_metadata = sa.Table(
    "ip_metadata",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("name", ExactName, nullable=False),
    sa.Column("name_en", sa.String(255), nullable=False, server_default=""),
    sa.Column("name_cn", sa.String(255), nullable=False, server_default=""),
    sa.Column("category", sa.String(32), nullable=False, server_default=""),
    sa.Column("tags", sa.JSON(none_as_null=True), nullable=True),
    sa.Column("image_url", sa.String(1024), nullable=False, server_default=""),
    sa.Column("external_id", sa.String(64), nullable=False, server_default=""),
    sa.Column("notes", sa.Text, nullable=True),
    sa.Column("weight", sa.Numeric(5, 2), nullable=False, server_default="1.00"),
    # The cadence's own interval. Two-decimal weights cannot express every whole-minute interval
    # (120 / 116 min = 1.034… is stored as 1.03, read back as 117 min), so the interval the
    # cadence set is kept exactly; NULL when an operator set the weight, which then rules.
    sa.Column("crawl_interval_minutes", sa.Integer, nullable=True),
    sa.Column("status", sa.String(16), nullable=False, server_default=IpStatus.ACTIVE.value),
    sa.Column("last_crawled_at", UTCDateTime, nullable=True),
    *_timestamps(),
    sa.Column("deleted_at", UTCDateTime, nullable=True),
    sa.UniqueConstraint("name", name="uq_ip_metadata_name"),
    sa.CheckConstraint(f"status IN ({', '.join(map(repr, IP_STATUSES))})", name="ck_ip_metadata_status"),
    sa.CheckConstraint("weight > 0", name="ck_ip_metadata_weight"),
    sa.Index("ix_ip_metadata_status", "status"),
    **TABLE_OPTIONS,
)

ip_stats_hourly = sa.Table(
    "ip_stats_hourly",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("ip_id", Id, sa.ForeignKey("ip_metadata.id"), nullable=False),
    sa.Column("hour_bucket", UTCDateTime, nullable=False),
    sa.Column("inflow", sa.Integer, nullable=False, server_default="0"),
    sa.Column("outflow", sa.Integer, nullable=False, server_default="0"),
    sa.Column("liquidity_index", sa.Numeric(8, 4), nullable=True),
    sa.Column("active_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("avg_price", sa.Numeric(12, 2), nullable=True),
    sa.Column("median_price", sa.Numeric(12, 2), nullable=True),
    sa.Column("min_price", sa.Integer, nullable=True),
    sa.Column("max_price", sa.Integer, nullable=True),
    sa.Column("price_stddev", sa.Numeric(12, 2), nullable=True),
    sa.Column("min_price_item", sa.JSON(none_as_null=True), nullable=True),
    sa.Column("max_price_item", sa.JSON(none_as_null=True), nullable=True),
    sa.Column("sample_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("crawl_count", sa.Integer, nullable=False, server_default="0"),
    # How the row was obtained (domain.estimator.Quality): exact, counted, estimated, lower_bound.
    sa.Column("quality", sa.String(16), nullable=True),
    *_timestamps(),
    sa.UniqueConstraint("ip_id", "hour_bucket", name="uq_ip_stats_hourly_ip_hour"),
    sa.Index("ix_ip_stats_hourly_hour", "hour_bucket"),
    **TABLE_OPTIONS,
)


def _rollup_table(name: str, bucket: str, records: str) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("ip_id", Id, sa.ForeignKey("ip_metadata.id"), nullable=False),
        sa.Column(bucket, sa.Date, nullable=False),
        sa.Column("total_inflow", sa.Integer, nullable=False, server_default="0"),
        sa.Column("total_outflow", sa.Integer, nullable=False, server_default="0"),
        sa.Column("avg_liquidity", sa.Numeric(8, 4), nullable=True),
        sa.Column("min_price", sa.Integer, nullable=True),
        sa.Column("max_price", sa.Integer, nullable=True),
        sa.Column("median_price", sa.Numeric(12, 2), nullable=True),
        sa.Column("avg_price", sa.Numeric(12, 2), nullable=True),
        sa.Column("min_price_item", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("max_price_item", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("sample_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column(records, sa.Integer, nullable=False, server_default="0"),
        *_timestamps(),
        sa.UniqueConstraint("ip_id", bucket, name=f"uq_{name}_ip_{bucket}"),
        sa.Index(f"ix_{name}_{bucket}", bucket),
        **TABLE_OPTIONS,
    )


ip_stats_daily = _rollup_table("ip_stats_daily", "date_bucket", "hourly_records")
ip_stats_weekly = _rollup_table("ip_stats_weekly", "week_start", "daily_records")

item_snapshots = sa.Table(
    "item_snapshots",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("ip_id", Id, sa.ForeignKey("ip_metadata.id"), nullable=False),
    sa.Column("source_id", sa.String(64), nullable=False),
    sa.Column("title", sa.String(512), nullable=False, server_default=""),
    sa.Column("price", sa.Integer, nullable=False, server_default="0"),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("image_url", sa.String(1024), nullable=False, server_default=""),
    sa.Column("item_url", sa.String(1024), nullable=False, server_default=""),
    sa.Column("first_seen_at", UTCDateTime, nullable=False),
    sa.Column("last_seen_at", UTCDateTime, nullable=False),
    sa.Column("sold_at", UTCDateTime, nullable=True),
    sa.UniqueConstraint("ip_id", "source_id", name="uq_item_snapshots_ip_source"),
    sa.CheckConstraint("status IN ('on_sale', 'sold', 'deleted')", name="ck_item_snapshots_status"),
    # The baseline check (any live state?) and the API's item lists by status, newest first.
    sa.Index("ix_item_snapshots_ip_status_seen", "ip_id", "status", "last_seen_at"),
    **TABLE_OPTIONS,
)

crawl_log = sa.Table(
    "crawl_log",
    metadata,
    sa.Column("task_id", sa.String(64), primary_key=True),
    sa.Column("ip_id", Id, sa.ForeignKey("ip_metadata.id"), nullable=False),
    sa.Column("crawled_at", UTCDateTime, nullable=False),
    sa.Column("hour_bucket", UTCDateTime, nullable=False),
    sa.Column("processed_at", UTCDateTime, nullable=False),
    sa.Column("baseline", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("error_message", sa.String(512), nullable=False, server_default=""),
    sa.Column("items_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("on_sale_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("sold_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("inflow", sa.Integer, nullable=False, server_default="0"),
    sa.Column("outflow", sa.Integer, nullable=False, server_default="0"),
    sa.Column("total_found", sa.Integer, nullable=False, server_default="0"),
    sa.Column("pages_crawled", sa.Integer, nullable=False, server_default="0"),
    sa.Column("retry_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("crawler_node", sa.String(128), nullable=False, server_default=""),
    sa.Column("interval_minutes", sa.Integer, nullable=False),
    sa.Column("weight_after", sa.Numeric(5, 2), nullable=False),
    sa.Column("next_crawl_at", UTCDateTime, nullable=False),
    # The search's result counts (SPEC §4.1); NULL for results of nodes that do not report them.
    sa.Column("found_on_sale", sa.BigInteger, nullable=True),
    sa.Column("found_sold", sa.BigInteger, nullable=True),
    # Where a cut on-sale window ended in the created-time order; NULL when it reached the end.
    sa.Column("on_sale_boundary", UTCDateTime, nullable=True),
    # The share of the sold results' slots its pages served: the search counts listings it then
    # filters from its pages, and inflow from what the pages showed is scaled back up by it.
    sa.Column("visible_share", sa.Numeric(5, 4), nullable=True),
    sa.Index("ix_crawl_log_ip_hour", "ip_id", "hour_bucket"),
    sa.Index("ix_crawl_log_ip_crawled", "ip_id", "crawled_at"),
    sa.Index("ix_crawl_log_processed", "processed_at"),
    **TABLE_OPTIONS,
)

item_events = sa.Table(
    "item_events",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("task_id", sa.String(64), sa.ForeignKey("crawl_log.task_id"), nullable=False),
    sa.Column("ip_id", Id, nullable=False),
    sa.Column("hour_bucket", UTCDateTime, nullable=False),
    sa.Column("source_id", sa.String(64), nullable=False),
    sa.Column("transition", sa.String(16), nullable=False),
    sa.Column("price", sa.Integer, nullable=False, server_default="0"),
    sa.Column("title", sa.String(512), nullable=False, server_default=""),
    sa.Column("item_url", sa.String(1024), nullable=False, server_default=""),
    sa.Column("image_url", sa.String(1024), nullable=False, server_default=""),
    sa.UniqueConstraint("task_id", "source_id", name="uq_item_events_task_source"),
    sa.Index("ix_item_events_ip_hour", "ip_id", "hour_bucket", "transition"),
    **TABLE_OPTIONS,
)

# Every listing a crawl with listing times counted as new, once per (ip, listing), at its own
# creation time: the facts of event-time inflow (SPEC §4.1).
listings_seen = sa.Table(
    "listings_seen",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("ip_id", Id, sa.ForeignKey("ip_metadata.id"), nullable=False),
    sa.Column("source_id", sa.String(64), nullable=False),
    sa.Column("listed_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("ip_id", "source_id", name="uq_listings_seen_ip_source"),
    sa.Index("ix_listings_seen_ip_listed", "ip_id", "listed_at"),
    **TABLE_OPTIONS,
)

ip_alerts = sa.Table(
    "ip_alerts",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("ip_id", Id, sa.ForeignKey("ip_metadata.id"), nullable=False),
    sa.Column("alert_type", sa.String(32), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("message", sa.String(512), nullable=False),
    sa.Column("threshold", sa.Numeric(12, 4), nullable=False),
    sa.Column("actual_value", sa.Numeric(12, 4), nullable=False),
    sa.Column("hour_bucket", UTCDateTime, nullable=False),
    sa.Column("acknowledged", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("acknowledged_at", UTCDateTime, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False, server_default=sa.func.current_timestamp()),
    sa.UniqueConstraint("ip_id", "hour_bucket", "alert_type", name="uq_ip_alerts_ip_hour_type"),
    sa.Index("ix_ip_alerts_ack_created", "acknowledged", "created_at"),
    **TABLE_OPTIONS,
)
