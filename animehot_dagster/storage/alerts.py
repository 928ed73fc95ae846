"""Alerts in ``ip_alerts``: one row per (ip, hour, type), however often the hour is reprocessed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from animehot_dagster.domain.alerts import Alert
from animehot_dagster.storage.db import upsert
from animehot_dagster.storage.schema import ip_alerts


def write_alerts(connection: Connection, ip_id: int, hour: datetime, alerts: Sequence[Alert], now: datetime) -> None:
    """Raise each alert once; a later crawl of the same hour refreshes its figures and message
    but keeps its acknowledgement."""
    upsert(
        connection,
        ip_alerts,
        [
            {
                "ip_id": ip_id,
                "alert_type": alert.alert_type.value,
                "severity": alert.severity.value,
                "message": alert.message[:512],
                "threshold": alert.threshold,
                "actual_value": alert.actual_value,
                "hour_bucket": hour,
                "created_at": now,
            }
            for alert in alerts
        ],
        update_columns=("severity", "message", "threshold", "actual_value"),
        conflict_columns=("ip_id", "hour_bucket", "alert_type"),
    )


def stored_alert_types(connection: Connection, ip_id: int, hour: datetime) -> list[str]:
    return list(
        connection.execute(
            sa.select(ip_alerts.c.alert_type).where(ip_alerts.c.ip_id == ip_id, ip_alerts.c.hour_bucket == hour)
        ).scalars()
    )
