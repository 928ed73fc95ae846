"""The catalog reads, on MariaDB: what the ``ip_catalog`` asset shows."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from animehot_dagster.domain.catalog import IpStatus
from animehot_dagster.storage.ip_queries import active_ips, every_ip
from animehot_dagster.storage.schema import ip_metadata
from animehot_dagster_tests.factories import T0, make_ips


def test_every_ip_is_the_whole_catalog_by_id_whatever_its_status(mysql_engine):
    first, paused, deleted = make_ips(mysql_engine, "ちいかわ", "呪術廻戦", "葬送のフリーレン", weight=1.5)
    with mysql_engine.begin() as connection:
        connection.execute(ip_metadata.update().where(ip_metadata.c.id == paused).values(status="paused"))
        connection.execute(ip_metadata.update().where(ip_metadata.c.id == deleted).values(status="deleted"))
        connection.execute(ip_metadata.update().where(ip_metadata.c.id == first).values(last_crawled_at=T0))
    rows = every_ip(mysql_engine)
    assert [tuple(r) for r in rows] == [
        (first, "ちいかわ", "", Decimal("1.50"), "active", T0),
        (paused, "呪術廻戦", "", Decimal("1.50"), "paused", None),
        (deleted, "葬送のフリーレン", "", Decimal("1.50"), "deleted", None),
    ]
    assert list(rows[0]._fields) == ["id", "name", "category", "weight", "status", "last_crawled_at"]
    assert [ip.id for ip in active_ips(mysql_engine)] == [first]


def test_the_database_holds_exactly_the_ip_statuses_of_the_enum(mysql_engine):
    """The migrated MariaDB schema (its CHECK constraint) and the enum agree: each status is stored
    and read back as itself, and a status outside the enum is refused."""
    (ip,) = make_ips(mysql_engine, "ちいかわ")
    for status in IpStatus:
        with mysql_engine.begin() as connection:
            connection.execute(ip_metadata.update().where(ip_metadata.c.id == ip).values(status=status))
            stored = connection.execute(sa.select(ip_metadata.c.status).where(ip_metadata.c.id == ip)).scalar_one()
        assert IpStatus(stored) is status
    with pytest.raises(sa.exc.DBAPIError, match="ck_ip_metadata_status"), mysql_engine.begin() as connection:
        connection.execute(ip_metadata.update().where(ip_metadata.c.id == ip).values(status="archived"))
