"""Dagster's ``ip`` dynamic partitions, kept equal to the active IPs when the API changes one."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

log = logging.getLogger(__name__)


class DagsterPartitions:
    """The ``ip`` dynamic partitions on the Dagster instance of DAGSTER_HOME; nothing without it.
    Failures are logged, never raised: the catalog is the authority, a sensor can catch up."""

    def __init__(self, home: str | None = None) -> None:
        self.home = home if home is not None else os.environ.get("DAGSTER_HOME", "")

    def _instance(self):
        if not self.home:
            return None
        import dagster  # the import is heavy: only when an instance is configured

        return dagster.DagsterInstance.get()

    def add(self, ip_ids: list[int]) -> None:
        self._call("add", lambda i: i.add_dynamic_partitions("ip", [str(x) for x in ip_ids]), ip_ids)

    def remove(self, ip_id: int) -> None:
        self._call("remove", lambda i: i.delete_dynamic_partition("ip", str(ip_id)), [ip_id])

    def _call(self, what: str, action: Callable, ip_ids: list[int]) -> None:
        if not ip_ids:
            return
        try:
            instance = self._instance()
            if instance is not None:
                action(instance)
        except Exception as exc:  # noqa: BLE001 - Dagster being down must not fail the request
            log.warning("dagster partition update failed", extra={"action": what, "ip_ids": ip_ids, "error": str(exc)})
