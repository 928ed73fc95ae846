"""Validation of IP records in the import format of ``shared/data/ips_*.json``."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

CATEGORIES = frozenset({"anime", "game", "vocaloid", "vtuber", "character", "manga", "idol", "other"})
MAX_WEIGHT = Decimal("999.99")
_TEXT_LIMITS = {"name": 255, "name_en": 255, "name_cn": 255, "image_url": 1024, "external_id": 64}


class IpStatus(enum.StrEnum):
    """Where an IP stands in the catalog: crawled on its cadence, kept but not crawled, or gone
    from every list (its history stays)."""

    ACTIVE = "active"
    PAUSED = "paused"
    DELETED = "deleted"


# The statuses as the wire and the database spell them, for Literal types and constraints.
IP_STATUSES = tuple(status.value for status in IpStatus)


class RecordError(ValueError):
    """An IP record that cannot be imported; the text names the field."""


@dataclasses.dataclass(frozen=True)
class IpRecord:
    name: str
    name_en: str = ""
    name_cn: str = ""
    category: str = ""
    tags: tuple[str, ...] = ()
    image_url: str = ""
    external_id: str = ""
    notes: str | None = None
    weight: Decimal = Decimal("1.00")

    def columns(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["tags"] = list(self.tags)
        return values


def _text(record: Mapping[str, Any], field: str) -> str:
    value = record.get(field)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise RecordError(f"{field}: expected text, got {type(value).__name__}")
    text = str(value).strip()
    limit = _TEXT_LIMITS.get(field)
    if limit and len(text) > limit:
        raise RecordError(f"{field}: longer than {limit} characters")
    return text


def parse_record(record: Any) -> IpRecord:
    """One IP of an import file; raises :class:`RecordError` naming the bad field."""
    if not isinstance(record, Mapping):
        raise RecordError(f"expected an object, got {type(record).__name__}")
    unknown = sorted(set(record) - {f.name for f in dataclasses.fields(IpRecord)})
    if unknown:
        raise RecordError(f"unknown field(s): {', '.join(unknown)}")
    name = _text(record, "name")
    if not name:
        raise RecordError("name: required")
    category = _text(record, "category").lower()
    if category and category not in CATEGORIES:
        raise RecordError(f"category: {category!r} is not one of {', '.join(sorted(CATEGORIES))}")
    tags = record.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise RecordError("tags: expected a list of strings")
    raw_weight = record.get("weight", 1)
    try:
        if isinstance(raw_weight, bool):
            raise InvalidOperation
        weight = Decimal(str(raw_weight)).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        raise RecordError(f"weight: {raw_weight!r} is not a number") from None
    if not Decimal(0) < weight <= MAX_WEIGHT:
        raise RecordError(f"weight: {raw_weight} must be above 0 and at most {MAX_WEIGHT}")
    notes = record.get("notes")
    if notes is not None and not isinstance(notes, str):
        raise RecordError("notes: expected text")
    return IpRecord(
        name=name,
        name_en=_text(record, "name_en"),
        name_cn=_text(record, "name_cn"),
        category=category,
        tags=tuple(t.strip() for t in tags if t.strip()),
        image_url=_text(record, "image_url"),
        external_id=_text(record, "external_id"),
        notes=notes,
        weight=weight,
    )
