"""The figures, read through the Redis cache: an IP's latest complete hour, its hourly history,
its items, and the leaderboards."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool

from animehot_dagster.api import cache as keys
from animehot_dagster.api import models as m
from animehot_dagster.api.envelope import ERRORS, ApiError, dumps, envelope, json_response, page_envelope
from animehot_dagster.api.params import (
    MAX_HOURLY_LIMIT,
    MAX_PAGE_SIZE,
    IpId,
    PageParam,
    clamp,
    leaderboard_hours,
    page_number,
    parse_time,
    size_param,
)
from animehot_dagster.api.services import Svc
from animehot_dagster.api.views import hour_json, item_json, leaderboard_json, liquidity_json, t
from animehot_dagster.domain.leaderboard import MAX_LIMIT, LeaderboardType
from animehot_dagster.domain.timebuckets import rfc3339_jst
from animehot_dagster.storage import api_reads

router = APIRouter(tags=["figures"])

DETAIL_TTL = int(keys.DETAIL_TTL.total_seconds())
HOURLY_LIMIT = 24
ITEM_PAGE_SIZE = 50
LEADERBOARD_LIMIT = 10


@router.get("/api/v1/ips/{ip_id}/liquidity", response_model=m.Envelope[m.Liquidity], responses=ERRORS)
async def liquidity(svc: Svc, ip_id: IpId):
    """The latest complete hour (the current one is still being counted)."""
    def compute() -> dict:
        ip = svc.require_ip(ip_id)
        now = svc.clock()
        row, sold_total = api_reads.latest_complete_hour(svc.engine, ip_id, now)
        return envelope(liquidity_json(ip, row, sold_total, now))

    return await svc.cached(keys.liquidity_key(ip_id), compute, DETAIL_TTL)


@router.get("/api/v1/ips/{ip_id}/stats/hourly", response_model=m.Envelope[m.HourlyStats], responses=ERRORS)
async def hourly(
    svc: Svc,
    ip_id: IpId,
    start: Annotated[str | None, Query(description="RFC 3339 or YYYY-MM-DD (Japan time), inclusive", max_length=40)] = None,
    end: Annotated[str | None, Query(description="RFC 3339 (inclusive) or YYYY-MM-DD (the whole day)", max_length=40)] = None,
    limit: size_param(HOURLY_LIMIT, MAX_HOURLY_LIMIT, "hours, newest first") = None,
):
    """Complete hours only, newest first."""
    rows_limit = clamp(limit, HOURLY_LIMIT, MAX_HOURLY_LIMIT)
    since, _ = parse_time("start", start) if start else (None, True)
    until, inclusive = parse_time("end", end, end=True) if end else (None, True)
    if since and until and (since > until or (since == until and not inclusive)):
        raise ApiError(400, "invalid parameter end: must be after start")

    def compute() -> dict:
        ip = svc.require_ip(ip_id)
        rows = api_reads.complete_hours(svc.engine, ip_id, svc.clock(), since, until, rows_limit, inclusive)
        stats = [hour_json(r) for r in rows]
        return envelope({"ip_id": ip_id, "ip_name": ip.name, "stats": stats, "count": len(stats),
                         "start": t(since), "end": t(until), "limit": rows_limit})

    if since or until:  # ranged reads are not cached (as the original)
        body = await run_in_threadpool(compute)
        body["data"].update(from_cache=False, cached_at=None)
        return json_response(body)
    return await svc.cached(keys.hourly_stats_key(ip_id, rows_limit), compute, DETAIL_TTL)


@router.get("/api/v1/ips/{ip_id}/items", response_model=m.ItemsEnvelope, responses=ERRORS)
async def items(
    svc: Svc,
    ip_id: IpId,
    status: Annotated[Literal["on_sale", "sold"] | None, Query()] = None,
    page: PageParam = None,
    page_size: size_param(ITEM_PAGE_SIZE, MAX_PAGE_SIZE) = None,
):
    number, size = page_number(page), clamp(page_size, ITEM_PAGE_SIZE, MAX_PAGE_SIZE)

    def compute() -> dict:
        svc.require_ip(ip_id)
        rows, total = api_reads.item_page(svc.engine, ip_id, status, number, size)
        return page_envelope([item_json(r) for r in rows], total, number, size)

    key = keys.items_key(ip_id, status or "all", number, size)
    return await svc.cached(key, compute, DETAIL_TTL, in_data=False)


@router.get("/api/v1/leaderboard", response_model=m.Envelope[m.Leaderboard], responses=ERRORS)
async def leaderboard(
    svc: Svc,
    type: Annotated[Literal["hot", "inflow", "outflow"] | None, Query(description="ranking, default hot")] = None,
    hours: Annotated[int | None, Query(description="1-23: the last complete hours; 24-167 → 24 (yesterday); "
                                                   "≥ 168 → 168 (last week); default 24")] = None,
    limit: size_param(LEADERBOARD_LIMIT, MAX_LIMIT, "entries") = None,
):
    kind, window = type or "hot", leaderboard_hours(hours)
    count = clamp(limit, LEADERBOARD_LIMIT, MAX_LIMIT)
    key = keys.leaderboard_key(kind, window)
    store = svc.read_cache()
    hit = await store.get(key)
    if hit is not None:
        data, from_cache = json.loads(hit), True
    else:
        now = svc.clock()
        span, entries, names = await run_in_threadpool(
            api_reads.ranked, svc.engine, LeaderboardType(kind), window, MAX_LIMIT, now)
        data, from_cache = leaderboard_json(kind, window, span, entries, names), False
        data["cached_at"] = rfc3339_jst(now)
        await store.set(key, dumps(data), keys.leaderboard_ttl(window, now))
    top = data["items"][:count]
    data.update(items=top, count=len(top), limit=count, from_cache=from_cache)
    return json_response(envelope(data))
