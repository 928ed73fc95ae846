"""Administration (``X-API-Key`` when ADMIN_API_KEY is set): bulk import, rollups now."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from animehot_dagster.api import bodies
from animehot_dagster.api import models as m
from animehot_dagster.api import system_models as sm
from animehot_dagster.api.cache import invalidate_after_rollup
from animehot_dagster.api.envelope import ADMIN_ERRORS, ApiError, data_response
from animehot_dagster.api.params import parse_day
from animehot_dagster.api.routes.ips import check_text
from animehot_dagster.api.services import Svc, require_admin
from animehot_dagster.api.views import archive_json, import_json
from animehot_dagster.domain.catalog import IpStatus
from animehot_dagster.domain.leaderboard import DAY_HOURS, WEEK_HOURS
from animehot_dagster.domain.timebuckets import is_week_start, previous_day, previous_week_start
from animehot_dagster.storage.ip_catalog import import_ips
from animehot_dagster.storage.rollups import rollup_day, rollup_week

router = APIRouter(prefix="/api/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)],
                   responses=ADMIN_ERRORS)


@router.post("/import", response_model=m.Envelope[sm.ImportResult])
def admin_import(svc: Svc, body: bodies.ImportRequest):
    """Create the IPs of ``ips``; existing ones (by name) are updated unless ``upsert`` is false."""
    check_text(body.ips)
    report = import_ips(svc.engine, body.ips, upsert=body.upsert, now=svc.clock())
    svc.ip_changed([row["id"] for row in report.created], IpStatus.ACTIVE)
    svc.ip_changed([row["id"] for row in report.updated], None)
    return data_response(import_json(report))


@router.post("/archive/daily", response_model=m.Envelope[sm.Archive])
def archive_daily(svc: Svc, date_: Annotated[str | None, Query(
        alias="date", description="YYYY-MM-DD, default yesterday (Japan time)")] = None):
    now = svc.clock()
    day = parse_day("date", date_) if date_ else previous_day(now)
    with svc.engine.begin() as connection:
        report = rollup_day(connection, day, now)
    if svc.redis is not None:
        invalidate_after_rollup(svc.redis, DAY_HOURS)
    return data_response(archive_json("daily", report))


@router.post("/archive/weekly", response_model=m.Envelope[sm.Archive])
def archive_weekly(svc: Svc, week_start_: Annotated[str | None, Query(
        alias="week_start", description="a Monday, YYYY-MM-DD; default last week")] = None):
    now = svc.clock()
    monday = parse_day("week_start", week_start_) if week_start_ else previous_week_start(now)
    if not is_week_start(monday):
        raise ApiError(400, f"invalid parameter week_start: {monday} is not a Monday")
    with svc.engine.begin() as connection:
        report = rollup_week(connection, monday, now)
    if svc.redis is not None:
        invalidate_after_rollup(svc.redis, WEEK_HOURS)
    return data_response(archive_json("weekly", report))
