"""The answers of the API (SPEC §9), field by field: the OpenAPI document is generated from these
models and :mod:`animehot_dagster.api.views` builds the rows from their fields.

Fields without a default are the original analyzer's contract (``contract/*.json`` holds the
same, written from the SPEC); fields with a default are this project's additions. Adding an
optional field to :class:`HourlyStatRow` or :class:`LeaderboardItem` is one line here: the
views copy every field of the model from the row (hourly) or from the ranked entry (leaderboard).
"""

from __future__ import annotations

from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, Field

from animehot_dagster.domain.catalog import IP_STATUSES

T = TypeVar("T")

Time = str  # RFC 3339 with +09:00


class Envelope(BaseModel, Generic[T]):
    code: int = Field(description="0 on success")
    message: str
    data: T


class ListEnvelope(BaseModel, Generic[T]):
    """A list: the array itself in ``data``, the paging beside it."""

    code: int
    message: str
    data: list[T]
    total: int
    page: int
    page_size: int


class ErrorEnvelope(BaseModel):
    code: int = Field(description="the HTTP status")
    message: str


class Ip(BaseModel):
    id: int
    name: str
    name_en: str
    name_cn: str
    category: str
    tags: list[str]
    image_url: str
    external_id: str
    notes: str
    weight: float
    status: Literal[IP_STATUSES]
    last_crawled_at: Time | None
    created_at: Time
    updated_at: Time
    deleted_at: Time | None = None


class DeletedIp(Ip):
    deleted: bool


class Triggered(BaseModel):
    id: int
    triggered: bool
    task_id: str = ""
    keyword: str = ""
    pages_on_sale: int = 0
    pages_sold: int = 0


class Liquidity(BaseModel):
    ip_id: int
    ip_name: str
    on_sale_inflow: int = Field(description="inflow of the latest complete hour")
    on_sale_outflow: int = Field(description="outflow of that hour")
    on_sale_total: int = Field(description="items on sale at that hour's last crawl (active_count)")
    sold_inflow: int = Field(description="outflow of that hour, as the original reports it")
    sold_total: int = Field(description="items of the IP known sold")
    liquidity_index: float | None
    hot_score: float = Field(description="0 when the IP has no complete hour yet")
    updated_at: Time = Field(description="the hour")
    from_cache: bool
    cached_at: Time | None = None
    quality: Literal["exact", "counted", "estimated", "lower_bound"] | None = Field(
        default=None, description="an addition (SPEC §4.1): how the hour's figures were obtained"
    )


class PriceItem(BaseModel):
    source_id: str
    title: str
    price: int
    image_url: str
    item_url: str


class HourlyStatRow(BaseModel):
    id: int
    ip_id: int
    hour_bucket: Time
    inflow: int
    outflow: int
    liquidity_index: float | None
    active_count: int
    avg_price: float | None
    median_price: float | None
    min_price: int | None
    max_price: int | None
    price_stddev: float | None
    min_price_item: PriceItem | None
    max_price_item: PriceItem | None
    sample_count: int
    created_at: Time
    updated_at: Time | None = None
    hot_score: float = 0.0
    # An addition (SPEC §4.1): how the row was obtained — exact, counted, estimated, lower_bound.
    quality: Literal["exact", "counted", "estimated", "lower_bound"] | None = None


class HourlyStats(BaseModel):
    ip_id: int
    ip_name: str
    stats: list[HourlyStatRow]
    count: int
    from_cache: bool
    cached_at: Time | None = None
    start: Time | None = None
    end: Time | None = None
    limit: int = 24


class Item(BaseModel):
    id: int
    ip_id: int
    source_id: str
    title: str
    price: int
    status: Literal["on_sale", "sold", "deleted"]
    image_url: str
    item_url: str
    first_seen_at: Time
    last_seen_at: Time
    sold_at: Time | None
    price_changed: bool
    created_at: Time
    updated_at: Time


class ItemsEnvelope(ListEnvelope[Item]):
    from_cache: bool
    cached_at: Time | None = None


class TimeRange(BaseModel):
    start: Time
    end: Time


class LeaderboardItem(BaseModel):
    rank: int
    ip_id: int
    ip_name: str
    ip_name_en: str
    inflow: int
    outflow: int
    score: float
    ip_name_cn: str = ""
    image_url: str = ""
    liquidity_index: float | None = None
    hot_score: float = 0.0


class Leaderboard(BaseModel):
    type: Literal["hot", "inflow", "outflow"]
    hours: int
    time_range: TimeRange
    items: list[LeaderboardItem]
    count: int
    from_cache: bool
    cached_at: Time | None = None
    limit: int = 10
    source: Literal["hourly", "daily", "weekly"] = "hourly"


class Alert(BaseModel):
    id: int
    ip_id: int
    alert_type: str
    severity: Literal["info", "warning", "critical"]
    message: str
    metric_value: float
    threshold_value: float
    hour_bucket: Time
    acknowledged: bool
    acknowledged_at: Time | None
    created_at: Time
    ip_name: str
