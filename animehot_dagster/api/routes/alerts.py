"""Alerts: list with filters, acknowledge (with the admin key when APP_ENV=prod)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from animehot_dagster.api import models as m
from animehot_dagster.api.envelope import ERRORS, UNAUTHORIZED, ApiError, data_response, json_response, page_envelope
from animehot_dagster.api.params import MAX_ID, MAX_PAGE_SIZE, AlertId, PageParam, clamp, page_number, size_param
from animehot_dagster.api.routes.ips import WRITER
from animehot_dagster.api.services import Svc
from animehot_dagster.api.views import alert_json
from animehot_dagster.storage import api_reads, api_writes

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])

ALERT_PAGE_SIZE = 20


@router.get("", response_model=m.ListEnvelope[m.Alert], responses=ERRORS)
def alerts(
    svc: Svc,
    ip_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    severity: Annotated[Literal["info", "warning", "critical"] | None, Query()] = None,
    acknowledged: Annotated[bool | None, Query(description="absent: both")] = None,
    page: PageParam = None,
    page_size: size_param(ALERT_PAGE_SIZE, MAX_PAGE_SIZE) = None,
):
    """Newest first."""
    number, size = page_number(page), clamp(page_size, ALERT_PAGE_SIZE, MAX_PAGE_SIZE)
    rows, total = api_reads.alert_page(svc.engine, ip_id, severity, acknowledged, number, size)
    return json_response(page_envelope([alert_json(r) for r in rows], total, number, size))


@router.post("/{alert_id}/ack", response_model=m.Envelope[m.Alert], responses={**ERRORS, **UNAUTHORIZED},
             dependencies=WRITER)
def ack(svc: Svc, alert_id: AlertId):
    row = api_writes.ack_alert(svc.engine, alert_id, svc.clock())
    if row is None:
        raise ApiError(404, f"alert {alert_id} not found")
    return data_response(alert_json(row))
