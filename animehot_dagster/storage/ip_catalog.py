"""The IP catalog: imports in the ``ips_*.json`` format, shared by the CLI and the admin API."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from animehot_dagster.domain.catalog import IpRecord, IpStatus, RecordError, parse_record
from animehot_dagster.storage.db import insert_many
from animehot_dagster.storage.schema import ip_metadata


class ImportFileError(ValueError):
    """The import file as a whole cannot be read."""


@dataclasses.dataclass
class ImportReport:
    created: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    updated: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    failed: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "created": len(self.created),
            "updated": len(self.updated),
            "failed": len(self.failed),
            "details": {"created": self.created, "updated": self.updated, "failed": self.failed},
        }


def read_import_file(path: str | Path) -> list[Any]:
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ImportFileError(f"{path}: cannot read ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise ImportFileError(f"{path}: not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    if not isinstance(document, dict) or not isinstance(document.get("ips"), list):
        raise ImportFileError(f'{path}: expected an object with a list under "ips"')
    return document["ips"]


def import_ips(engine: Engine, rows: Sequence[Any], upsert: bool, now: datetime) -> ImportReport:
    """Create new IPs; with ``upsert`` update existing ones (matched by name), otherwise report
    them as failed. Bad rows are reported with their index and reason; good rows still land."""
    report = ImportReport()
    records: dict[str, tuple[int, IpRecord]] = {}
    for index, row in enumerate(rows):
        name = row.get("name") if isinstance(row, dict) else None
        try:
            record = parse_record(row)
        except RecordError as exc:
            report.failed.append({"index": index, "name": name, "reason": str(exc)})
            continue
        if record.name in records:
            report.failed.append(
                {"index": index, "name": record.name, "reason": f"duplicate of row {records[record.name][0]} in this file"}
            )
            continue
        records[record.name] = (index, record)
    if not records:
        return report
    with engine.begin() as connection:
        existing = dict(
            connection.execute(
                sa.select(ip_metadata.c.name, ip_metadata.c.id).where(ip_metadata.c.name.in_(list(records)))
            ).all()
        )
        new_rows = []
        for name, (index, record) in records.items():
            if name not in existing:
                new_rows.append({**record.columns(), "status": IpStatus.ACTIVE, "created_at": now, "updated_at": now})
            elif upsert:
                connection.execute(
                    ip_metadata.update()
                    .where(ip_metadata.c.id == existing[name])
                    # The operator's weight now rules the cadence again.
                    .values(**record.columns(), crawl_interval_minutes=None, updated_at=now)
                )
                report.updated.append({"index": index, "id": existing[name], "name": name})
            else:
                report.failed.append(
                    {"index": index, "name": name, "reason": f"already exists as IP {existing[name]} (use upsert to update it)"}
                )
        insert_many(connection, ip_metadata, new_rows)
        created_ids = dict(
            connection.execute(
                sa.select(ip_metadata.c.name, ip_metadata.c.id).where(
                    ip_metadata.c.name.in_([row["name"] for row in new_rows])
                )
            ).all()
        ) if new_rows else {}
    for row in new_rows:
        index = records[row["name"]][0]
        report.created.append({"index": index, "id": created_ids[row["name"]], "name": row["name"]})
    report.created.sort(key=lambda r: r["index"])
    return report
