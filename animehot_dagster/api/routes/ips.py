"""The IP catalog: list, read, create, update, soft delete, and crawl now.

Writes of the catalog (create, update, delete, trigger; and alert acks, in alerts.py) need the
admin key (``X-API-Key`` = ADMIN_API_KEY) when APP_ENV=prod; in development they are open, as
the original's are. Reads are always open.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any, Literal

import redis
import sqlalchemy as sa
from fastapi import APIRouter, Depends, Header, Query, Request

from animehot_dagster.api import bodies
from animehot_dagster.api import models as m
from animehot_dagster.api.envelope import (
    ERRORS,
    UNAUTHORIZED,
    WITH_CONFLICT,
    WITH_REDIS,
    ApiError,
    data_response,
    json_response,
    page_envelope,
)
from animehot_dagster.api.params import MAX_PAGE_SIZE, IpId, PageParam, clamp, page_number, size_param
from animehot_dagster.api.services import Svc, require_admin
from animehot_dagster.api.views import ip_json
from animehot_dagster.domain.catalog import IP_STATUSES, IpStatus, RecordError, parse_record
from animehot_dagster.domain.messages import CrawlRequest
from animehot_dagster.domain.timebuckets import to_unix
from animehot_dagster.storage import api_reads, api_writes

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/ips", tags=["ips"])

IP_PAGE_SIZE = 20


def require_writer(request: Request, x_api_key: Annotated[str | None, Header(
        alias="X-API-Key", description="ADMIN_API_KEY; required when APP_ENV=prod")] = None) -> None:
    """A write of the catalog: with APP_ENV=prod, ``X-API-Key`` must equal ADMIN_API_KEY (which
    prod requires at start); otherwise open."""
    if request.app.state.services.settings.app_env == "prod":
        require_admin(request, x_api_key)


WRITER = [Depends(require_writer)]

EDITABLE = ("name", "name_en", "name_cn", "category", "tags", "image_url", "external_id", "notes", "weight")


def check_text(value: Any) -> None:
    """Text the database cannot store (lone surrogates) is the client's error."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(400, "invalid body: text is not valid Unicode") from None


def _record(fields: dict) -> Any:
    check_text(fields)
    try:
        return parse_record(fields)
    except RecordError as exc:
        raise ApiError(400, f"invalid body: {exc}") from None


@router.get("", response_model=m.ListEnvelope[m.Ip], responses=ERRORS)
def list_ips(
    svc: Svc,
    page: PageParam = None,
    page_size: size_param(IP_PAGE_SIZE, MAX_PAGE_SIZE) = None,
    status: Annotated[Literal[IP_STATUSES] | None, Query()] = None,
    category: Annotated[str | None, Query(max_length=32)] = None,
    keyword: Annotated[str | None, Query(max_length=255, description="matches name, name_en, name_cn")] = None,
):
    number, size = page_number(page), clamp(page_size, IP_PAGE_SIZE, MAX_PAGE_SIZE)
    rows, total = api_reads.ip_page(svc.engine, number, size, status, category, keyword)
    return json_response(page_envelope([ip_json(r) for r in rows], total, number, size))


@router.post("", status_code=201, response_model=m.Envelope[m.Ip], responses={**WITH_CONFLICT, **UNAUTHORIZED},
             dependencies=WRITER)
def create_ip(svc: Svc, body: bodies.IpCreate):
    record = _record(body.model_dump(exclude_none=True))
    try:
        row = api_writes.create_ip(svc.engine, record.columns(), svc.clock())
    except sa.exc.IntegrityError:
        raise ApiError(409, f"an IP named {record.name!r} already exists") from None
    svc.ip_changed([row.id], IpStatus.ACTIVE)
    return data_response(ip_json(row), 201)


@router.get("/{ip_id}", response_model=m.Envelope[m.Ip], responses=ERRORS)
def get_ip(svc: Svc, ip_id: IpId):
    return data_response(ip_json(svc.require_ip(ip_id)))


@router.put("/{ip_id}", response_model=m.Envelope[m.Ip], responses={**WITH_CONFLICT, **UNAUTHORIZED},
            dependencies=WRITER)
def update_ip(svc: Svc, ip_id: IpId, body: bodies.IpUpdate):
    changes = body.model_dump(exclude_unset=True)
    status = changes.pop("status", None)
    now = svc.clock()

    def values_for(row) -> dict:
        current = ip_json(row)
        merged = {k: current[k] for k in EDITABLE}
        merged.update(changes)
        record = _record({k: v for k, v in merged.items() if v is not None or k == "notes"})
        values = {**record.columns(), "updated_at": now}
        if changes.get("weight") is not None:
            values["crawl_interval_minutes"] = None  # the operator's weight rules the cadence again
        if status is not None and status != row.status:
            values["status"] = status
            values["deleted_at"] = now if status == IpStatus.DELETED else None
        return values

    try:
        row = api_writes.update_ip(svc.engine, ip_id, values_for)
    except sa.exc.IntegrityError:
        raise ApiError(409, f"another IP is named {changes.get('name')!r}") from None
    if row is None:
        raise ApiError(404, f"IP {ip_id} not found")
    svc.ip_changed([ip_id], row.status)
    return data_response(ip_json(row))


@router.delete("/{ip_id}", response_model=m.Envelope[m.DeletedIp], responses={**ERRORS, **UNAUTHORIZED},
               dependencies=WRITER)
def delete_ip(svc: Svc, ip_id: IpId):
    row = api_writes.soft_delete_ip(svc.engine, ip_id, svc.clock())
    if row is None:
        raise ApiError(404, f"IP {ip_id} not found")
    svc.ip_changed([ip_id], IpStatus.DELETED)
    return data_response({**ip_json(row), "deleted": True})


@router.post("/{ip_id}/trigger", response_model=m.Envelope[m.Triggered],
             responses={**WITH_REDIS, 409: WITH_CONFLICT[409], **UNAUTHORIZED}, dependencies=WRITER)
def trigger(svc: Svc, ip_id: IpId):
    """Crawl now, outside the cadence (a forced task: never deduplicated)."""
    row = svc.require_ip(ip_id)
    if row.status == IpStatus.DELETED:
        raise ApiError(409, f"IP {ip_id} is deleted")
    svc.require_redis()
    request = CrawlRequest.new_task(ip_id, row.name, svc.settings.cadence, to_unix(svc.clock()))
    try:
        svc.tasks.enqueue(request, force=True)
    except redis.RedisError as exc:
        raise ApiError(503, f"cannot queue the crawl: Redis unavailable ({exc.__class__.__name__})") from None
    log.info("crawl triggered", extra={"ip_id": ip_id, "task_id": request.task_id})
    return data_response({"id": ip_id, "triggered": True, "task_id": request.task_id, "keyword": row.name,
                          "pages_on_sale": request.pages_on_sale, "pages_sold": request.pages_sold})
