"""event-time figures: result counts in the crawl log, listings seen, hourly quality

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 23:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    with op.batch_alter_table('crawl_log') as batch:
        batch.add_column(sa.Column('found_on_sale', sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column('found_sold', sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column('on_sale_boundary', sa.DateTime(), nullable=True))
        batch.add_column(sa.Column('visible_share', sa.Numeric(precision=5, scale=4), nullable=True))
        batch.create_index('ix_crawl_log_ip_crawled', ['ip_id', 'crawled_at'], unique=False)
    with op.batch_alter_table('ip_stats_hourly') as batch:
        batch.add_column(sa.Column('quality', sa.String(length=16), nullable=True))
    op.create_table('listings_seen',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('ip_id', _ID, nullable=False),
    sa.Column('source_id', sa.String(length=64), nullable=False),
    sa.Column('listed_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['ip_id'], ['ip_metadata.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('ip_id', 'source_id', name='uq_listings_seen_ip_source'),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci',
    mysql_engine='InnoDB'
    )
    op.create_index('ix_listings_seen_ip_listed', 'listings_seen', ['ip_id', 'listed_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_listings_seen_ip_listed', table_name='listings_seen')
    op.drop_table('listings_seen')
    with op.batch_alter_table('ip_stats_hourly') as batch:
        batch.drop_column('quality')
    with op.batch_alter_table('crawl_log') as batch:
        batch.drop_index('ix_crawl_log_ip_crawled')
        batch.drop_column('visible_share')
        batch.drop_column('on_sale_boundary')
        batch.drop_column('found_sold')
        batch.drop_column('found_on_sale')
