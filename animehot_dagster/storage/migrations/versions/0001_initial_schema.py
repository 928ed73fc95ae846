"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-28 10:35:17.340290
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ip_metadata',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=255).with_variant(mysql.VARCHAR(collation='utf8mb4_bin', length=255), 'mysql'), nullable=False),
    sa.Column('name_en', sa.String(length=255), server_default='', nullable=False),
    sa.Column('name_cn', sa.String(length=255), server_default='', nullable=False),
    sa.Column('category', sa.String(length=32), server_default='', nullable=False),
    sa.Column('tags', sa.JSON(), nullable=True),
    sa.Column('image_url', sa.String(length=1024), server_default='', nullable=False),
    sa.Column('external_id', sa.String(length=64), server_default='', nullable=False),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('weight', sa.Numeric(precision=5, scale=2), server_default='1.00', nullable=False),
    sa.Column('crawl_interval_minutes', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), server_default='active', nullable=False),
    sa.Column('last_crawled_at', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
    sa.Column('updated_at', sa.DateTime(), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
    sa.Column('deleted_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("status IN ('active', 'paused', 'deleted')", name='ck_ip_metadata_status'),
    sa.CheckConstraint('weight > 0', name='ck_ip_metadata_weight'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name', name='uq_ip_metadata_name'),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci',
    mysql_engine='InnoDB'
    )
    op.create_index('ix_ip_metadata_status', 'ip_metadata', ['status'], unique=False)

    op.create_table('crawl_log',
    sa.Column('task_id', sa.String(length=64), nullable=False),
    sa.Column('ip_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('crawled_at', sa.DateTime(), nullable=False),
    sa.Column('hour_bucket', sa.DateTime(), nullable=False),
    sa.Column('processed_at', sa.DateTime(), nullable=False),
    sa.Column('baseline', sa.Boolean(), server_default=sa.text('0'), nullable=False),
    sa.Column('error_message', sa.String(length=512), server_default='', nullable=False),
    sa.Column('items_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('on_sale_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('sold_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('inflow', sa.Integer(), server_default='0', nullable=False),
    sa.Column('outflow', sa.Integer(), server_default='0', nullable=False),
    sa.Column('total_found', sa.Integer(), server_default='0', nullable=False),
    sa.Column('pages_crawled', sa.Integer(), server_default='0', nullable=False),
    sa.Column('retry_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('crawler_node', sa.String(length=128), server_default='', nullable=False),
    sa.Column('interval_minutes', sa.Integer(), nullable=False),
    sa.Column('weight_after', sa.Numeric(precision=5, scale=2), nullable=False),
    sa.Column('next_crawl_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['ip_id'], ['ip_metadata.id'], ),
    sa.PrimaryKeyConstraint('task_id'),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci',
    mysql_engine='InnoDB'
    )
    op.create_index('ix_crawl_log_ip_hour', 'crawl_log', ['ip_id', 'hour_bucket'], unique=False)
    op.create_index('ix_crawl_log_processed', 'crawl_log', ['processed_at'], unique=False)

    op.create_table('ip_alerts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('ip_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('alert_type', sa.String(length=32), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('message', sa.String(length=512), nullable=False),
    sa.Column('threshold', sa.Numeric(precision=12, scale=4), nullable=False),
    sa.Column('actual_value', sa.Numeric(precision=12, scale=4), nullable=False),
    sa.Column('hour_bucket', sa.DateTime(), nullable=False),
    sa.Column('acknowledged', sa.Boolean(), server_default=sa.text('0'), nullable=False),
    sa.Column('acknowledged_at', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
    sa.ForeignKeyConstraint(['ip_id'], ['ip_metadata.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('ip_id', 'hour_bucket', 'alert_type', name='uq_ip_alerts_ip_hour_type'),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci',
    mysql_engine='InnoDB'
    )
    op.create_index('ix_ip_alerts_ack_created', 'ip_alerts', ['acknowledged', 'created_at'], unique=False)

    op.create_table('ip_stats_daily',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('ip_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('date_bucket', sa.Date(), nullable=False),
    sa.Column('total_inflow', sa.Integer(), server_default='0', nullable=False),
    sa.Column('total_outflow', sa.Integer(), server_default='0', nullable=False),
    sa.Column('avg_liquidity', sa.Numeric(precision=8, scale=4), nullable=True),
    sa.Column('min_price', sa.Integer(), nullable=True),
    sa.Column('max_price', sa.Integer(), nullable=True),
    sa.Column('median_price', sa.Numeric(precision=12, scale=2), nullable=True),
    sa.Column('avg_price', sa.Numeric(precision=12, scale=2), nullable=True),
    sa.Column('min_price_item', sa.JSON(), nullable=True),
    sa.Column('max_price_item', sa.JSON(), nullable=True),
    sa.Column('sample_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('hourly_records', sa.Integer(), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
    sa.Column('updated_at', sa.DateTime(), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
    sa.ForeignKeyConstraint(['ip_id'], ['ip_metadata.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('ip_id', 'date_bucket', name='uq_ip_stats_daily_ip_date_bucket'),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci',
    mysql_engine='InnoDB'
    )
    op.create_index('ix_ip_stats_daily_date_bucket', 'ip_stats_daily', ['date_bucket'], unique=False)

    op.create_table('ip_stats_hourly',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('ip_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('hour_bucket', sa.DateTime(), nullable=False),
    sa.Column('inflow', sa.Integer(), server_default='0', nullable=False),
    sa.Column('outflow', sa.Integer(), server_default='0', nullable=False),
    sa.Column('liquidity_index', sa.Numeric(precision=8, scale=4), nullable=True),
    sa.Column('active_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('avg_price', sa.Numeric(precision=12, scale=2), nullable=True),
    sa.Column('median_price', sa.Numeric(precision=12, scale=2), nullable=True),
    sa.Column('min_price', sa.Integer(), nullable=True),
    sa.Column('max_price', sa.Integer(), nullable=True),
    sa.Column('price_stddev', sa.Numeric(precision=12, scale=2), nullable=True),
    sa.Column('min_price_item', sa.JSON(), nullable=True),
    sa.Column('max_price_item', sa.JSON(), nullable=True),
    sa.Column('sample_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('crawl_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
    sa.Column('updated_at', sa.DateTime(), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
    sa.ForeignKeyConstraint(['ip_id'], ['ip_metadata.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('ip_id', 'hour_bucket', name='uq_ip_stats_hourly_ip_hour'),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci',
    mysql_engine='InnoDB'
    )
    op.create_index('ix_ip_stats_hourly_hour', 'ip_stats_hourly', ['hour_bucket'], unique=False)

    op.create_table('ip_stats_weekly',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('ip_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('week_start', sa.Date(), nullable=False),
    sa.Column('total_inflow', sa.Integer(), server_default='0', nullable=False),
    sa.Column('total_outflow', sa.Integer(), server_default='0', nullable=False),
    sa.Column('avg_liquidity', sa.Numeric(precision=8, scale=4), nullable=True),
    sa.Column('min_price', sa.Integer(), nullable=True),
    sa.Column('max_price', sa.Integer(), nullable=True),
    sa.Column('median_price', sa.Numeric(precision=12, scale=2), nullable=True),
    sa.Column('avg_price', sa.Numeric(precision=12, scale=2), nullable=True),
    sa.Column('min_price_item', sa.JSON(), nullable=True),
    sa.Column('max_price_item', sa.JSON(), nullable=True),
    sa.Column('sample_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('daily_records', sa.Integer(), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
    sa.Column('updated_at', sa.DateTime(), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
    sa.ForeignKeyConstraint(['ip_id'], ['ip_metadata.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('ip_id', 'week_start', name='uq_ip_stats_weekly_ip_week_start'),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci',
    mysql_engine='InnoDB'
    )
    op.create_index('ix_ip_stats_weekly_week_start', 'ip_stats_weekly', ['week_start'], unique=False)

    op.create_table('item_snapshots',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('ip_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('source_id', sa.String(length=64), nullable=False),
    sa.Column('title', sa.String(length=512), server_default='', nullable=False),
    sa.Column('price', sa.Integer(), server_default='0', nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('image_url', sa.String(length=1024), server_default='', nullable=False),
    sa.Column('item_url', sa.String(length=1024), server_default='', nullable=False),
    sa.Column('first_seen_at', sa.DateTime(), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(), nullable=False),
    sa.Column('sold_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("status IN ('on_sale', 'sold', 'deleted')", name='ck_item_snapshots_status'),
    sa.ForeignKeyConstraint(['ip_id'], ['ip_metadata.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('ip_id', 'source_id', name='uq_item_snapshots_ip_source'),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci',
    mysql_engine='InnoDB'
    )
    op.create_index('ix_item_snapshots_ip_status_seen', 'item_snapshots', ['ip_id', 'status', 'last_seen_at'], unique=False)

    op.create_table('item_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('task_id', sa.String(length=64), nullable=False),
    sa.Column('ip_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('hour_bucket', sa.DateTime(), nullable=False),
    sa.Column('source_id', sa.String(length=64), nullable=False),
    sa.Column('transition', sa.String(length=16), nullable=False),
    sa.Column('price', sa.Integer(), server_default='0', nullable=False),
    sa.Column('title', sa.String(length=512), server_default='', nullable=False),
    sa.Column('item_url', sa.String(length=1024), server_default='', nullable=False),
    sa.Column('image_url', sa.String(length=1024), server_default='', nullable=False),
    sa.ForeignKeyConstraint(['task_id'], ['crawl_log.task_id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('task_id', 'source_id', name='uq_item_events_task_source'),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci',
    mysql_engine='InnoDB'
    )
    op.create_index('ix_item_events_ip_hour', 'item_events', ['ip_id', 'hour_bucket', 'transition'], unique=False)



def downgrade() -> None:
    # Dropping a table drops its indexes.
    op.drop_table('item_events')
    op.drop_table('item_snapshots')
    op.drop_table('ip_stats_weekly')
    op.drop_table('ip_stats_hourly')
    op.drop_table('ip_stats_daily')
    op.drop_table('ip_alerts')
    op.drop_table('crawl_log')
    op.drop_table('ip_metadata')
