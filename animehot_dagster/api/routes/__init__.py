"""One router per resource, in the order they are mounted."""

from __future__ import annotations

from animehot_dagster.api.routes import admin, alerts, figures, ips, system

ROUTERS = (system.router, ips.router, figures.router, alerts.router, admin.router)
