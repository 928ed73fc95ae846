"""Request bodies and the documented shapes of the responses (the OpenAPI document).

Handlers build their JSON themselves (the cache serves stored bytes); these models describe
what they build, and the schemathesis test holds the two together.
"""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")

Time = str  # RFC 3339 with +09:00
Status = Literal["active", "paused", "deleted"]
Category = Literal["anime", "game", "vocaloid", "vtuber", "character", "manga", "idol", "other", ""]


class Envelope(BaseModel, Generic[T]):
    code: int = Field(0, description="0 on success")
    message: str = "success"
    data: T


class ErrorEnvelope(BaseModel):
    code: int = Field(description="the HTTP status")
    message: str


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    page: int
    page_size: int


class CachedPage(Page[T], Generic[T]):
    from_cache: bool
    cached_at: Time | None


# ----------------------------------------------------------------------------- bodies

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
    upsert: bool = False


# ----------------------------------------------------------------------------- responses

class Ip(BaseModel):
    id: int
    name: str
    name_en: str
    name_cn: str
    category: str
    tags: list[str]
    image_url: str
    external_id: str
    notes: str | None
    weight: float
    status: Status
    last_crawled_at: Time | None
    created_at: Time
    updated_at: Time
    deleted_at: Time | None


class TriggerResult(BaseModel):
    ip_id: int
    task_id: str
    keyword: str
    pages_on_sale: int
    pages_sold: int


class Liquidity(BaseModel):
    ip_id: int
    hour: Time | None
    inflow: int | None
    outflow: int | None
    liquidity_index: float | None
    hot_score: float | None
    active_count: int | None
    from_cache: bool
    cached_at: Time | None


class PriceItem(BaseModel):
    source_id: str
    title: str
    price: int
    item_url: str
    image_url: str


class HourStats(BaseModel):
    hour: Time
    inflow: int
    outflow: int
    liquidity_index: float | None
    hot_score: float
    active_count: int
    sample_count: int
    avg_price: float | None
    median_price: float | None
    min_price: int | None
    max_price: int | None
    price_stddev: float | None
    min_price_item: PriceItem | None
    max_price_item: PriceItem | None


class HourlyStats(BaseModel):
    ip_id: int
    start: Time | None
    end: Time | None
    limit: int
    items: list[HourStats]
    from_cache: bool
    cached_at: Time | None


class ItemSnapshot(BaseModel):
    source_id: str
    title: str
    price: int
    status: Literal["on_sale", "sold", "deleted"]
    image_url: str
    item_url: str
    first_seen_at: Time
    last_seen_at: Time
    sold_at: Time | None


class TimeRange(BaseModel):
    start: Time
    end: Time


class LeaderboardEntry(BaseModel):
    rank: int
    ip_id: int
    name: str
    name_en: str
    name_cn: str
    image_url: str
    inflow: int
    outflow: int
    liquidity_index: float | None
    hot_score: float
    score: float


class Leaderboard(BaseModel):
    type: Literal["hot", "inflow", "outflow"]
    hours: int
    limit: int
    source: Literal["hourly", "daily", "weekly"]
    time_range: TimeRange
    from_cache: bool
    cached_at: Time | None
    items: list[LeaderboardEntry]


class Alert(BaseModel):
    id: int
    ip_id: int
    alert_type: str
    severity: Literal["info", "warning", "critical"]
    message: str
    threshold: float
    actual_value: float
    hour_bucket: Time
    acknowledged: bool
    acknowledged_at: Time | None
    created_at: Time


class Health(BaseModel):
    status: Literal["ok"]
    time: Time


class Pipeline(BaseModel):
    processed: int | None
    failed: int | None
    success_rate: float | None


class SchedulerSummary(BaseModel):
    total_ips: int | None
    overdue_ips: int | None


class SystemStats(BaseModel):
    unacked_alerts: int | None
    active_items: int | None


class Queues(BaseModel):
    tasks: int | None
    results: int | None
    dead_letter: int | None


class SystemStatus(BaseModel):
    time: Time
    database: str
    redis: str
    pipeline: Pipeline
    scheduler: SchedulerSummary
    queues: Queues
    stats: SystemStats


class ScheduleEntry(BaseModel):
    ip_id: int
    name: str | None
    next_crawl_at: Time
    seconds_until: int
    overdue: bool


class Scheduler(BaseModel):
    time: Time
    total_ips: int
    overdue_ips: int
    items: list[ScheduleEntry]


class ImportRow(BaseModel):
    index: int
    id: int | None = None
    name: Any = None
    reason: str | None = None


class ImportDetails(BaseModel):
    created: list[ImportRow]
    updated: list[ImportRow]
    failed: list[ImportRow]


class ImportResult(BaseModel):
    created: int
    updated: int
    failed: int
    details: ImportDetails


class Archive(BaseModel):
    kind: Literal["daily", "weekly"]
    bucket: str
    rows: int
    total_inflow: int
    total_outflow: int
