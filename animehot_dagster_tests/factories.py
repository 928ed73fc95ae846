"""Builders for test data that goes through the real code paths."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy.engine import Engine

from animehot_dagster.domain.messages import CrawlResponse, Item, ItemStatus
from animehot_dagster.storage.ip_catalog import import_ips

T0 = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)  # 09:00 in Japan


def make_ips(engine: Engine, *names: str, weight: float = 1.0) -> list[int]:
    report = import_ips(engine, [{"name": n, "weight": weight} for n in names], upsert=False, now=T0)
    assert not report.failed, report.failed
    return [row["id"] for row in report.created]


def on_sale(source_id: str, price: int = 1000, title: str = "") -> Item:
    return Item(source_id=source_id, title=title or f"item {source_id}", price=price,
                item_url=f"https://jp.mercari.com/item/{source_id}")


def sold(source_id: str, price: int = 1000, title: str = "") -> Item:
    return Item(source_id=source_id, title=title or f"item {source_id}", price=price,
                item_url=f"https://jp.mercari.com/item/{source_id}", status=ItemStatus.SOLD)


def response(ip_id: int, at: datetime, items: Iterable[Item], task_id: str | None = None, **fields) -> CrawlResponse:
    items = tuple(items)
    return CrawlResponse(
        ip_id=ip_id,
        task_id=task_id or str(uuid.uuid4()),
        crawled_at=int(at.timestamp()),
        items=items,
        total_found=len(items),
        pages_crawled=fields.pop("pages_crawled", 10),
        **fields,
    )
