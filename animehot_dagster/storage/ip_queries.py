"""The catalog reads the schedule, the dispatcher and the catalog asset need."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from animehot_dagster.domain.catalog import IpStatus
from animehot_dagster.storage.schema import ip_metadata

_ID_CHUNK = 1_000


@dataclasses.dataclass(frozen=True)
class ActiveIp:
    id: int
    keyword: str
    weight: Decimal
    crawl_interval_minutes: int | None
    last_crawled_at: datetime | None


@dataclasses.dataclass(frozen=True)
class IpKeywordStatus:
    """An IP's search keyword and its catalog status."""

    keyword: str
    status: str

    @property
    def active(self) -> bool:
        return self.status == IpStatus.ACTIVE


def active_ips(engine: Engine) -> list[ActiveIp]:
    """Every active IP, by id (the order the rebuilt schedule staggers them in)."""
    query = (
        sa.select(
            ip_metadata.c.id,
            ip_metadata.c.name,
            ip_metadata.c.weight,
            ip_metadata.c.crawl_interval_minutes,
            ip_metadata.c.last_crawled_at,
        )
        .where(ip_metadata.c.status == IpStatus.ACTIVE)
        .order_by(ip_metadata.c.id)
    )
    with engine.connect() as connection:
        return [ActiveIp(*row) for row in connection.execute(query)]


def every_ip(engine: Engine) -> list[sa.Row]:
    """Every IP of the catalog whatever its status, by id."""
    query = sa.select(
        ip_metadata.c.id,
        ip_metadata.c.name,
        ip_metadata.c.category,
        ip_metadata.c.weight,
        ip_metadata.c.status,
        ip_metadata.c.last_crawled_at,
    ).order_by(ip_metadata.c.id)
    with engine.connect() as connection:
        return connection.execute(query).all()


def ip_statuses(engine: Engine, ip_ids: Iterable[int]) -> dict[int, IpKeywordStatus]:
    """Keyword and status of each of ``ip_ids`` the catalog holds; unknown ids are absent."""
    ids = sorted(set(ip_ids))
    statuses: dict[int, IpKeywordStatus] = {}
    with engine.connect() as connection:
        for start in range(0, len(ids), _ID_CHUNK):
            rows = connection.execute(
                sa.select(ip_metadata.c.id, ip_metadata.c.name, ip_metadata.c.status).where(
                    ip_metadata.c.id.in_(ids[start : start + _ID_CHUNK])
                )
            )
            statuses.update({ip_id: IpKeywordStatus(name, status) for ip_id, name, status in rows})
    return statuses
