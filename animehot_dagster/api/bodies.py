"""Request bodies: what a client may send (unknown fields are refused with a 400 naming them)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from animehot_dagster.domain.catalog import IP_STATUSES

Status = Literal[IP_STATUSES]
Category = Literal["anime", "game", "vocaloid", "vtuber", "character", "manga", "idol", "other", ""]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IpFields(_Body):
    name_en: str | None = Field(None, max_length=255)
    name_cn: str | None = Field(None, max_length=255)
    category: Category | None = None
    tags: list[str] | None = None
    image_url: str | None = Field(None, max_length=1024)
    external_id: str | None = Field(None, max_length=64)
    notes: str | None = Field(None, max_length=10_000)
    weight: float | None = Field(None, gt=0, le=999.99, allow_inf_nan=False)


class IpCreate(IpFields):
    name: str = Field(min_length=1, max_length=255, description="Japanese name, the search keyword; unique")


class IpUpdate(IpFields):
    name: str | None = Field(None, min_length=1, max_length=255)
    status: Status | None = Field(None, description="paused/deleted leave the schedule; active rejoins it")


class ImportRequest(_Body):
    ips: list[Any] = Field(max_length=10_000, description="IP records in the ips_*.json format")
    upsert: bool = Field(True, description="update IPs that exist (matched by name); false reports them as failed")
