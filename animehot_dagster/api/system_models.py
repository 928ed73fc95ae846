"""The answers of the system and admin operations (SPEC §9), field by field; fields with a
default are this project's additions (see :mod:`animehot_dagster.api.models`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Time = str  # RFC 3339 with +09:00


class Health(BaseModel):
    status: Literal["ok"]
    time: Time


class DatabaseState(BaseModel):
    connected: bool
    ip_count: int
    error: str | None = None


class PipelineState(BaseModel):
    running: bool
    processed: int
    failed: int
    success_rate: float = Field(ge=0, le=1, description="a fraction; 1.0 when nothing ran")


class SchedulerState(BaseModel):
    running: bool
    total_ips: int
    overdue_ips: int


class SystemStats(BaseModel):
    unacked_alerts: int
    active_items: int


class Queues(BaseModel):
    tasks: int | None
    results: int | None
    dead_letter: int | None


class SystemStatus(BaseModel):
    status: str = Field(description='"ok" when the database and Redis answer, else "degraded"')
    timestamp: Time
    database: DatabaseState
    pipeline: PipelineState
    scheduler: SchedulerState
    stats: SystemStats
    redis: str = "ok"
    queues: Queues | None = None


class ScheduleEntry(BaseModel):
    ip_id: int
    ip_name: str
    next_schedule: Time
    time_until: str = Field(description='a duration like "1h30m", negative when overdue')
    is_overdue: bool
    seconds_until: int = 0


class Scheduler(BaseModel):
    running: bool
    total_ips: int
    overdue_ips: int
    schedules: list[ScheduleEntry]
    timestamp: Time | None = None


class ImportDetail(BaseModel):
    name: str
    status: Literal["created", "updated", "failed"]
    id: int | None
    error: str | None
    index: int = 0


class ImportResult(BaseModel):
    created: int
    updated: int
    failed: int
    details: list[ImportDetail]


class Archive(BaseModel):
    kind: Literal["daily", "weekly"]
    bucket: str
    rows: int
    total_inflow: int
    total_outflow: int
