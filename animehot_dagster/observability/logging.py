"""One JSON object per line (SPEC §10): time (RFC 3339, +09:00), level, msg, service, context."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime
from typing import TextIO

from animehot_dagster.domain.timebuckets import JST

# Attributes every LogRecord has; anything else was passed in ``extra`` and is context.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


# The manual's log events name the warning level WARN, as the original Go service wrote it.
_LEVEL_NAMES = {"WARNING": "WARN"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, JST).isoformat(timespec="milliseconds"),
            "level": _LEVEL_NAMES.get(record.levelname, record.levelname),
            "msg": record.getMessage(),
            "service": getattr(record, "service", self.service),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key != "service":
                entry[key] = value
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(service: str, debug: bool = False, stream: TextIO | None = None) -> None:
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    # Alembic narrates every migration step and httpx every request at INFO, which would bury
    # the events that matter (the storage layer logs the revision reached).
    for chatty in ("alembic", "httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
