"""The HTTP API's writes: the IP catalog by hand (create, update, soft delete) and alert acks.
Each is one transaction; an IntegrityError (a duplicate name) reaches the caller."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, Row

from animehot_dagster.domain.catalog import IpStatus
from animehot_dagster.storage.api_reads import get_alert, get_ip
from animehot_dagster.storage.schema import ip_alerts, ip_metadata


def create_ip(engine: Engine, columns: dict[str, Any], now: datetime) -> Row:
    """A new active IP from its catalog ``columns``."""
    with engine.begin() as connection:
        result = connection.execute(
            ip_metadata.insert().values(**columns, status=IpStatus.ACTIVE, created_at=now, updated_at=now))
        return get_ip(connection, result.inserted_primary_key[0])


def update_ip(engine: Engine, ip_id: int, values_for: Callable[[Row], dict[str, Any]]) -> Row | None:
    """Lock the IP, write ``values_for(current row)``, return the row as written (None: no such IP).
    ``values_for`` may raise to abandon the update."""
    with engine.begin() as connection:
        row = connection.execute(sa.select(ip_metadata).where(ip_metadata.c.id == ip_id).with_for_update()).one_or_none()
        if row is None:
            return None
        connection.execute(ip_metadata.update().where(ip_metadata.c.id == ip_id).values(**values_for(row)))
        return get_ip(connection, ip_id)


def soft_delete_ip(engine: Engine, ip_id: int, now: datetime) -> Row | None:
    """Mark the IP deleted (once: deleting again changes nothing); None when there is no such IP."""
    with engine.begin() as connection:
        row = get_ip(connection, ip_id)
        if row is None or row.status == IpStatus.DELETED:
            return row
        connection.execute(ip_metadata.update().where(ip_metadata.c.id == ip_id)
                           .values(status=IpStatus.DELETED, deleted_at=now, updated_at=now))
        return get_ip(connection, ip_id)


def ack_alert(engine: Engine, alert_id: int, now: datetime) -> Row | None:
    """Acknowledge the alert (the first ack's time is kept); None when there is no such alert."""
    with engine.begin() as connection:
        found = connection.execute(
            sa.select(ip_alerts.c.acknowledged).where(ip_alerts.c.id == alert_id).with_for_update()).one_or_none()
        if found is None:
            return None
        if not found.acknowledged:
            connection.execute(ip_alerts.update().where(ip_alerts.c.id == alert_id)
                               .values(acknowledged=True, acknowledged_at=now))
        return get_alert(connection, alert_id)
