"""The HTTP API (SPEC §9), a drop-in for the original analyzer's: ``create_app(settings, engine, redis)``.

Every answer is the envelope of :mod:`~animehot_dagster.api.envelope`; the routes are one
router per resource in :mod:`animehot_dagster.api.routes`; reads of the leaderboard and of an
IP's figures go through the Redis cache (:mod:`~animehot_dagster.api.cache`), a hit answered
with the stored bytes as they are. The wire contract is ``api/contract/*.json``.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime

import redis
import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from sqlalchemy.engine import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException

from animehot_dagster.api.envelope import ApiError, error_response
from animehot_dagster.api.middleware import BODY_LIMIT, EdgeMiddleware
from animehot_dagster.api.params import validation_message
from animehot_dagster.api.partitions import DagsterPartitions
from animehot_dagster.api.routes import ROUTERS
from animehot_dagster.api.services import Clock, Services
from animehot_dagster.api.static import add_cors, add_frontend, dashboard_links
from animehot_dagster.settings import Settings, SettingsError

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def check_startup(settings: Settings) -> None:
    """Refuse to serve in production without an admin key."""
    if settings.app_env == "prod" and not settings.admin_api_key:
        raise SettingsError("ADMIN_API_KEY: required when APP_ENV=prod (the admin endpoints would be open)")


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return error_response(exc.status, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        message = exc.detail if isinstance(exc.detail, str) else "error"
        if exc.status_code == 404 and message == "Not Found":
            message = f"no route {request.url.path}"
        return error_response(exc.status_code, message, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        return error_response(400, validation_message(exc.errors()))

    async def _database_down(request: Request, exc: sa.exc.SQLAlchemyError):
        log.error("database unavailable", extra={"error": str(getattr(exc, "orig", None) or exc),
                                                 "path": request.url.path})
        return error_response(503, "database unavailable")

    # Down, hung (a read or connect timeout), gone away, or every pooled connection held by
    # requests waiting on it (the pool's timeout): 503, never a plain-text 500.
    for kind in (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError):
        app.add_exception_handler(kind, _database_down)

    # Anything else: still the error envelope (a client parsing JSON never meets a plain-text 500);
    # the server logs the traceback.
    @app.exception_handler(Exception)
    async def _internal_error(request: Request, exc: Exception):
        return error_response(500, "internal error")


def _openapi(app: FastAPI):
    """The document of the routes' models, without FastAPI's 422 (validation answers 400)."""
    def openapi():
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                operation.get("responses", {}).pop("422", None)
        components = schema.get("components", {}).get("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        app.openapi_schema = schema
        return schema

    return openapi


def create_app(
    settings: Settings,
    engine: Engine,
    redis_client: redis.Redis | None,
    clock: Clock = _utcnow,
    *,
    metrics=None,
    partitions: DagsterPartitions | None = None,
    body_limit: int = BODY_LIMIT,
) -> FastAPI:
    """The API over ``engine`` and ``redis_client`` (a bytes client; the queues need one).
    ``metrics`` is an :class:`~animehot_dagster.observability.metrics.HttpMetrics`."""
    check_startup(settings)
    services = Services(settings, engine, redis_client, clock, partitions or DagsterPartitions())

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        await services.close()

    app = FastAPI(
        lifespan=lifespan,
        title="Anime Hot API",
        version="1.0.0",
        description="Liquidity of anime IP merchandise on Mercari Japan, with the original analyzer's wire "
        'contract. Every answer is `{"code", "message", "data"}`; lists put the array in `data` with '
        "`total`, `page`, `page_size` beside it; times are RFC 3339 in +09:00.",
    )
    app.state.services = services
    app.state.read_cache = services.read_cache
    _error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    add_frontend(app, settings.static_dir, dashboard_links(settings.dashboard_links))  # the dashboard unless STATIC_DIR
    app.openapi = _openapi(app)
    if settings.enable_cors:
        add_cors(app)
    app.add_middleware(EdgeMiddleware, body_limit=body_limit, metrics=metrics)
    return app


__all__ = ["ApiError", "DagsterPartitions", "check_startup", "create_app"]
