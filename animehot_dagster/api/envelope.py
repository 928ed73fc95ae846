"""The envelope of every answer (SPEC §9): ``{"code":0,"message":"success","data":…}``; lists put
the array itself in ``data`` with ``total``, ``page`` and ``page_size`` beside it; errors are
``{"code":<http status>,"message":…}`` with that status."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

from animehot_dagster.api import models as m

JSON = "application/json"


class ApiError(Exception):
    """Answered as the error envelope with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def envelope(data: Any, **beside: Any) -> dict:
    return {"code": 0, "message": "success", "data": data, **beside}


def page_envelope(rows: list, total: int, page: int, page_size: int, **beside: Any) -> dict:
    """A list answer: the rows in ``data``, the paging beside it at the top level."""
    return envelope(rows, total=total, page=page, page_size=page_size, **beside)


def json_response(body: dict, status: int = 200) -> Response:
    """``body`` is a whole envelope (see :func:`envelope`)."""
    return Response(dumps(body), status_code=status, media_type=JSON)


def data_response(data: Any, status: int = 200) -> Response:
    return json_response(envelope(data), status)


def error_response(status: int, message: str, headers: dict | None = None) -> Response:
    return Response(dumps({"code": status, "message": message}), status_code=status, media_type=JSON,
                    headers=headers)


# What an operation may answer besides its success status (the OpenAPI document).
ERRORS = {
    400: {"model": m.ErrorEnvelope, "description": "invalid parameter or body"},
    404: {"model": m.ErrorEnvelope, "description": "not found"},
    413: {"model": m.ErrorEnvelope, "description": "request body too large"},
}
WITH_CONFLICT = {**ERRORS, 409: {"model": m.ErrorEnvelope, "description": "conflicts with the current state"}}
WITH_REDIS = {**ERRORS, 503: {"model": m.ErrorEnvelope, "description": "Redis unavailable"}}
UNAUTHORIZED = {401: {"model": m.ErrorEnvelope, "description": "X-API-Key missing or wrong"}}
ADMIN_ERRORS = {**ERRORS, **UNAUTHORIZED}
