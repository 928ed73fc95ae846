"""The HTTP API (SPEC §9): ``create_app(settings, engine, redis)``.

Every answer is the envelope ``{"code", "message", "data"}``; an error carries its HTTP status as
``code``. Reads of the leaderboard and of an IP's figures go through the Redis cache (see
:mod:`animehot_dagster.api.cache`): a hit is answered with the stored bytes as they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

import redis
import sqlalchemy as sa
from fastapi import Depends, FastAPI, Header, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from sqlalchemy.engine import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from animehot_dagster.api import cache as keys
from animehot_dagster.api import models as m
from animehot_dagster.api import queries as q
from animehot_dagster.api.cache import ReadCache, async_client_like, invalidate_after_crawl, invalidate_after_rollup
from animehot_dagster.domain.catalog import RecordError, parse_record
from animehot_dagster.domain.leaderboard import DAY_HOURS, MAX_LIMIT, WEEK_HOURS, LeaderboardType
from animehot_dagster.domain.messages import CrawlRequest
from animehot_dagster.domain.timebuckets import JST, day_bounds, jst_date, rfc3339_jst, to_unix, week_start
from animehot_dagster.queue import keys as queue_keys
from animehot_dagster.queue.reliable import TaskQueue
from animehot_dagster.queue.schedule import ScheduleStore
from animehot_dagster.settings import Settings, SettingsError
from animehot_dagster.storage.ip_catalog import import_ips
from animehot_dagster.storage.ip_queries import ActiveIp
from animehot_dagster.storage.rollups import rollup_day, rollup_week
from animehot_dagster.storage.schema import ip_metadata

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
BODY_LIMIT = 1 << 20  # 1 MiB
MAX_PAGE = 100_000
MAX_ID = 2**63 - 1
ROUTE_OTHER = "other"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def envelope_bytes(data: Any, code: int = 0, message: str = "success") -> bytes:
    return _dumps({"code": code, "message": message, "data": data})


def json_response(data: Any, status: int = 200) -> Response:
    return Response(envelope_bytes(data), status_code=status, media_type="application/json")


def error_response(status: int, message: str, headers: dict | None = None) -> Response:
    return Response(_dumps({"code": status, "message": message}), status_code=status,
                    media_type="application/json", headers=headers)


# Every operation may answer these besides its success status.
ERRORS = {
    400: {"model": m.ErrorEnvelope, "description": "invalid parameter or body"},
    404: {"model": m.ErrorEnvelope, "description": "not found"},
    413: {"model": m.ErrorEnvelope, "description": "request body too large"},
}
WITH_CONFLICT = {**ERRORS, 409: {"model": m.ErrorEnvelope, "description": "conflicts with the current state"}}
WITH_REDIS = {**ERRORS, 503: {"model": m.ErrorEnvelope, "description": "Redis unavailable"}}
ADMIN_ERRORS = {**ERRORS, 401: {"model": m.ErrorEnvelope, "description": "X-API-Key missing or wrong"}}

IpId = Annotated[int, Path(ge=1, le=MAX_ID, description="IP id")]
PageNo = Annotated[int, Query(ge=1, le=MAX_PAGE)]


def parse_time(name: str, text: str, end: bool = False) -> datetime:
    """RFC 3339, or YYYY-MM-DD (a Japan-time day: its start, or for ``end`` the next day's start)."""
    value = text.strip()
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            start, next_start = day_bounds(day)
            return next_start if end else start
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ApiError(400, f"invalid parameter {name}: {text!r} is neither RFC 3339 nor YYYY-MM-DD") from None
    if moment.tzinfo is None or "T" not in value.upper():
        raise ApiError(400, f"invalid parameter {name}: {text!r} needs a date, a time and a zone (RFC 3339)")
    return moment.astimezone(UTC)


def parse_day(name: str, text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ApiError(400, f"invalid parameter {name}: {text!r} is not a date (YYYY-MM-DD)") from None


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


def check_startup(settings: Settings) -> None:
    """Refuse to serve in production without an admin key."""
    if settings.app_env == "prod" and not settings.admin_api_key:
        raise SettingsError("ADMIN_API_KEY: required when APP_ENV=prod (the admin endpoints would be open)")


class _BodyTooLarge(Exception):
    pass


class EdgeMiddleware:
    """Outermost layer: rejects bodies over the limit with 413 and counts every request in the
    HTTP metrics by route template."""

    def __init__(self, app, body_limit: int, metrics=None) -> None:
        self.app = app
        self.body_limit = body_limit
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        state = {"status": 500, "too_large": False, "sent": False}
        too_large_body = _dumps({"code": 413, "message": f"request body larger than {self.body_limit} bytes"})

        async def send_413():
            await send({"type": "http.response.start", "status": 413,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(too_large_body)).encode()),
                                    (b"connection", b"close")]})
            await send({"type": "http.response.body", "body": too_large_body})
            state["status"], state["sent"] = 413, True

        try:
            declared = dict(scope["headers"]).get(b"content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.body_limit:
                await send_413()
                return
            received = 0

            async def limited_receive():
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > self.body_limit:
                        state["too_large"] = True
                        raise _BodyTooLarge()
                return message

            async def tracking_send(message):
                if state["too_large"]:
                    if not state["sent"]:
                        await send_413()
                    return
                if message["type"] == "http.response.start":
                    state["status"] = message["status"]
                    state["sent"] = True
                await send(message)

            try:
                await self.app(scope, limited_receive, tracking_send)
            except _BodyTooLarge:
                if not state["sent"]:
                    await send_413()
        finally:
            if self.metrics is not None:
                route = scope.get("route")
                path = getattr(route, "path", None) or ROUTE_OTHER
                self.metrics.observe(scope["method"], path, state["status"], time.perf_counter() - started)


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
    partitions = partitions or DagsterPartitions()
    caches: dict[int, ReadCache] = {}

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        for cache in list(caches.values()):
            await cache.close()
        caches.clear()

    app = FastAPI(
        lifespan=lifespan,
        title="Anime Hot API",
        version="1.0.0",
        description="Liquidity of anime IP merchandise on Mercari Japan. Every answer is "
        '`{"code", "message", "data"}`; times are RFC 3339 in +09:00.',
    )
    def read_cache() -> ReadCache:
        loop = id(asyncio.get_running_loop())
        if loop not in caches:
            caches[loop] = ReadCache(async_client_like(redis_client) if redis_client is not None else None)
        return caches[loop]

    app.state.read_cache = read_cache

    schedule = ScheduleStore(redis_client, lambda: clock().timestamp()) if redis_client is not None else None
    tasks = TaskQueue(redis_client, lambda: clock().timestamp()) if redis_client is not None else None

    # ------------------------------------------------------------------ errors

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

    @app.exception_handler(sa.exc.OperationalError)
    async def _database_down(request: Request, exc: sa.exc.OperationalError):
        log.error("database unavailable", extra={"error": str(exc.orig or exc), "path": request.url.path})
        return error_response(503, "database unavailable")

    # ------------------------------------------------------------------ helpers

    def require_ip(ip_id: int) -> Any:
        with engine.connect() as connection:
            row = q.get_ip(connection, ip_id)
        if row is None:
            raise ApiError(404, f"IP {ip_id} not found")
        return row

    async def cached(key: str, compute: Callable[[], dict], ttl: int) -> Response:
        """The stored envelope on a hit; else compute in a worker thread, store, answer."""
        store = read_cache()
        hit = await store.get(key)
        if hit is not None:
            return Response(hit, media_type="application/json")
        data = await run_in_threadpool(compute)
        cached_at = rfc3339_jst(clock())
        await store.set(key, envelope_bytes({**data, "from_cache": True, "cached_at": cached_at}), ttl)
        return json_response({**data, "from_cache": False, "cached_at": cached_at})

    def redis_or_503():
        if redis_client is None:
            raise ApiError(503, "Redis is not configured")

    def drop_ip_cache(ip_id: int) -> None:
        if redis_client is not None:
            invalidate_after_crawl(redis_client, ip_id)

    def seed(ip_ids: list[int]) -> None:
        """Schedule active IPs that have no time yet, as a rebuild would (last crawl + interval,
        or staggered from now)."""
        if schedule is None or not ip_ids:
            return
        with engine.connect() as connection:
            rows = connection.execute(
                sa.select(ip_metadata.c.id, ip_metadata.c.name, ip_metadata.c.weight,
                          ip_metadata.c.crawl_interval_minutes, ip_metadata.c.last_crawled_at)
                .where(ip_metadata.c.id.in_(ip_ids), ip_metadata.c.status == "active")
                .order_by(ip_metadata.c.id)
            ).all()
        try:
            schedule.seed([ActiveIp(*row) for row in rows], settings.cadence)
        except redis.RedisError as exc:
            log.warning("schedule update failed", extra={"ip_ids": ip_ids, "error": str(exc)})

    def reschedule(ip_id: int, status: str) -> None:
        if schedule is None:
            return
        if status == "active":
            seed([ip_id])
            return
        try:
            schedule.remove(ip_id)
        except redis.RedisError as exc:
            log.warning("schedule update failed", extra={"ip_id": ip_id, "error": str(exc)})

    def require_admin(x_api_key: Annotated[str | None, Header(alias="X-API-Key")] = None) -> None:
        expected = settings.admin_api_key
        if expected and not hmac.compare_digest((x_api_key or "").encode(), expected.encode()):
            raise ApiError(401, "X-API-Key missing or wrong")

    # ------------------------------------------------------------------ health

    @app.get("/health", response_model=m.Health, tags=["system"])
    async def health():
        return Response(_dumps({"status": "ok", "time": rfc3339_jst(clock())}), media_type="application/json")

    # ------------------------------------------------------------------ IPs

    @app.get("/api/v1/ips", response_model=m.Envelope[m.Page[m.Ip]], responses=ERRORS, tags=["ips"])
    def list_ips(
        page: PageNo = 1,
        page_size: Annotated[int, Query(ge=1, le=100)] = 20,
        status: Annotated[Literal["active", "paused", "deleted"] | None, Query()] = None,
        category: Annotated[str | None, Query(max_length=32)] = None,
        keyword: Annotated[str | None, Query(max_length=255, description="matches name, name_en, name_cn")] = None,
    ):
        return json_response(q.list_ips(engine, page, page_size, status, category, keyword))

    @app.post("/api/v1/ips", status_code=201, response_model=m.Envelope[m.Ip], responses=WITH_CONFLICT, tags=["ips"])
    def create_ip(body: m.IpCreate):
        record = _record(body.model_dump(exclude_none=True))
        now = clock()
        try:
            with engine.begin() as connection:
                result = connection.execute(
                    ip_metadata.insert().values(**record.columns(), status="active", created_at=now, updated_at=now)
                )
                row = q.get_ip(connection, result.inserted_primary_key[0])
        except sa.exc.IntegrityError:
            raise ApiError(409, f"an IP named {record.name!r} already exists") from None
        reschedule(row.id, "active")
        partitions.add([row.id])
        return json_response(q.ip_json(row), 201)

    @app.get("/api/v1/ips/{ip_id}", response_model=m.Envelope[m.Ip], responses=ERRORS, tags=["ips"])
    def get_ip(ip_id: IpId):
        return json_response(q.ip_json(require_ip(ip_id)))

    @app.put("/api/v1/ips/{ip_id}", response_model=m.Envelope[m.Ip], responses=WITH_CONFLICT, tags=["ips"])
    def update_ip(ip_id: IpId, body: m.IpUpdate):
        changes = body.model_dump(exclude_unset=True)
        status = changes.pop("status", None)
        now = clock()
        try:
            with engine.begin() as connection:
                row = connection.execute(
                    sa.select(ip_metadata).where(ip_metadata.c.id == ip_id).with_for_update()
                ).one_or_none()
                if row is None:
                    raise ApiError(404, f"IP {ip_id} not found")
                current = q.ip_json(row)
                merged = {k: current[k] for k in ("name", "name_en", "name_cn", "category", "tags",
                                                  "image_url", "external_id", "notes", "weight")}
                merged.update({k: v for k, v in changes.items()})
                merged = {k: v for k, v in merged.items() if v is not None or k == "notes"}
                record = _record(merged)
                values = {**record.columns(), "updated_at": now}
                if "weight" in changes and changes["weight"] is not None:
                    values["crawl_interval_minutes"] = None  # the operator's weight rules the cadence again
                if status is not None and status != row.status:
                    values["status"] = status
                    values["deleted_at"] = now if status == "deleted" else None
                connection.execute(ip_metadata.update().where(ip_metadata.c.id == ip_id).values(**values))
                row = q.get_ip(connection, ip_id)
        except sa.exc.IntegrityError:
            raise ApiError(409, f"another IP is named {changes.get('name')!r}") from None
        reschedule(ip_id, row.status)
        # The ip partitions are the active IPs (as ip_catalog_sensor keeps them).
        if status == "active":
            partitions.add([ip_id])
        elif status is not None:
            partitions.remove(ip_id)
        drop_ip_cache(ip_id)
        return json_response(q.ip_json(row))

    @app.delete("/api/v1/ips/{ip_id}", response_model=m.Envelope[m.Ip], responses=ERRORS, tags=["ips"])
    def delete_ip(ip_id: IpId):
        now = clock()
        with engine.begin() as connection:
            row = q.get_ip(connection, ip_id)
            if row is None:
                raise ApiError(404, f"IP {ip_id} not found")
            if row.status != "deleted":
                connection.execute(ip_metadata.update().where(ip_metadata.c.id == ip_id)
                                   .values(status="deleted", deleted_at=now, updated_at=now))
                row = q.get_ip(connection, ip_id)
        reschedule(ip_id, "deleted")
        partitions.remove(ip_id)
        drop_ip_cache(ip_id)
        return json_response(q.ip_json(row))

    @app.post("/api/v1/ips/{ip_id}/trigger", status_code=202, response_model=m.Envelope[m.TriggerResult],
              responses={**WITH_REDIS, 409: WITH_CONFLICT[409]}, tags=["ips"])
    def trigger(ip_id: IpId):
        row = require_ip(ip_id)
        if row.status == "deleted":
            raise ApiError(409, f"IP {ip_id} is deleted")
        redis_or_503()
        request = CrawlRequest(
            ip_id=ip_id, keyword=row.name, task_id=str(uuid.uuid4()), created_at=to_unix(clock()),
            pages_on_sale=settings.scheduler_pages_on_sale, pages_sold=settings.scheduler_pages_sold,
        )
        try:
            tasks.enqueue(request, force=True)
        except redis.RedisError as exc:
            raise ApiError(503, f"cannot queue the crawl: Redis unavailable ({exc.__class__.__name__})") from None
        log.info("crawl triggered", extra={"ip_id": ip_id, "task_id": request.task_id})
        return json_response({"ip_id": ip_id, "task_id": request.task_id, "keyword": row.name,
                              "pages_on_sale": request.pages_on_sale, "pages_sold": request.pages_sold}, 202)

    # ------------------------------------------------------------------ figures (cached)

    @app.get("/api/v1/ips/{ip_id}/liquidity", response_model=m.Envelope[m.Liquidity], responses=ERRORS,
             tags=["figures"])
    async def liquidity(ip_id: IpId):
        def compute():
            require_ip(ip_id)
            return q.latest_hour(engine, ip_id)

        return await cached(keys.liquidity_key(ip_id), compute, int(keys.DETAIL_TTL.total_seconds()))

    @app.get("/api/v1/ips/{ip_id}/stats/hourly", response_model=m.Envelope[m.HourlyStats], responses=ERRORS,
             tags=["figures"])
    async def hourly(
        ip_id: IpId,
        start: Annotated[str | None, Query(description="RFC 3339 or YYYY-MM-DD (Japan time)", max_length=40)] = None,
        end: Annotated[str | None, Query(description="RFC 3339 or YYYY-MM-DD (inclusive day)", max_length=40)] = None,
        limit: Annotated[int, Query(ge=1, le=168)] = 24,
    ):
        since = parse_time("start", start) if start else None
        until = parse_time("end", end, end=True) if end else None
        if since and until and since >= until:
            raise ApiError(400, "invalid parameter end: must be after start")

        def compute():
            require_ip(ip_id)
            return {"ip_id": ip_id, "start": q.t(since), "end": q.t(until), "limit": limit,
                    "items": q.hourly_stats(engine, ip_id, since, until, limit)}

        if since or until:
            data = await run_in_threadpool(compute)
            return json_response({**data, "from_cache": False, "cached_at": None})
        return await cached(keys.hourly_stats_key(ip_id, limit), compute, int(keys.DETAIL_TTL.total_seconds()))

    @app.get("/api/v1/ips/{ip_id}/items", response_model=m.Envelope[m.CachedPage[m.ItemSnapshot]],
             responses=ERRORS, tags=["figures"])
    async def items(
        ip_id: IpId,
        status: Annotated[Literal["on_sale", "sold"] | None, Query()] = None,
        page: PageNo = 1,
        page_size: Annotated[int, Query(ge=1, le=100)] = 50,
    ):
        def compute():
            require_ip(ip_id)
            return q.list_items(engine, ip_id, status, page, page_size)

        key = keys.items_key(ip_id, status or "all", page, page_size)
        return await cached(key, compute, int(keys.DETAIL_TTL.total_seconds()))

    @app.get("/api/v1/leaderboard", response_model=m.Envelope[m.Leaderboard], responses=ERRORS, tags=["figures"])
    async def leaderboard(
        type: Annotated[Literal["hot", "inflow", "outflow"], Query(description="ranking")] = "hot",
        hours: Annotated[int, Query(ge=1, le=WEEK_HOURS, description="1-23 (last complete hours), 24 (yesterday) or 168 (last week)")] = DAY_HOURS,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
    ):
        if not (1 <= hours <= DAY_HOURS or hours == WEEK_HOURS):
            raise ApiError(400, f"invalid parameter hours: {hours} (use 1-24 or 168)")
        key = keys.leaderboard_key(type, hours)
        store = read_cache()
        hit = await store.get(key)
        if hit is not None:
            data = json.loads(hit)
            data.update(from_cache=True, limit=limit, items=data["items"][:limit])
            return json_response(data)
        now = clock()
        data = await run_in_threadpool(q.leaderboard_json, engine, LeaderboardType(type), hours, MAX_LIMIT, now)
        data["cached_at"] = rfc3339_jst(now)
        await store.set(key, _dumps(data), keys.leaderboard_ttl(hours, now))
        data.update(from_cache=False, limit=limit, items=data["items"][:limit])
        return json_response(data)

    # ------------------------------------------------------------------ alerts

    @app.get("/api/v1/alerts", response_model=m.Envelope[m.Page[m.Alert]], responses=ERRORS, tags=["alerts"])
    def alerts(
        ip_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
        severity: Annotated[Literal["info", "warning", "critical"] | None, Query()] = None,
        acknowledged: Annotated[bool | None, Query()] = None,
        page: PageNo = 1,
        page_size: Annotated[int, Query(ge=1, le=100)] = 20,
    ):
        return json_response(q.list_alerts(engine, ip_id, severity, acknowledged, page, page_size))

    @app.post("/api/v1/alerts/{alert_id}/ack", response_model=m.Envelope[m.Alert], responses=ERRORS, tags=["alerts"])
    def ack(alert_id: Annotated[int, Path(ge=1, le=MAX_ID)]):
        alert = q.ack_alert(engine, alert_id, clock())
        if alert is None:
            raise ApiError(404, f"alert {alert_id} not found")
        return json_response(alert)

    # ------------------------------------------------------------------ system

    @app.get("/api/v1/system/status", response_model=m.Envelope[m.SystemStatus], responses=ERRORS, tags=["system"])
    def system_status():
        now = clock()
        try:
            figures = q.database_figures(engine)
            database = "ok"
        except sa.exc.SQLAlchemyError as exc:
            figures, database = {}, f"error: {exc.__class__.__name__}"
        redis_state, failed_runs, total_ips, overdue, queues = "ok", None, None, None, {}
        try:
            redis_or_503()
            with redis_client.pipeline(transaction=False) as pipe:
                pipe.get(queue_keys.FAILED_RUNS)
                pipe.zcard(queue_keys.SCHEDULE)
                pipe.zcount(queue_keys.SCHEDULE, "-inf", f"({now.timestamp()}")
                pipe.llen(queue_keys.TASKS)
                pipe.llen(queue_keys.RESULTS)
                pipe.llen(queue_keys.TASKS_DEADLETTER)
                pipe.llen(queue_keys.RESULTS_DEADLETTER)
                runs, total_ips, overdue, tasks_len, results_len, dead_t, dead_r = pipe.execute()
            failed_runs = int(runs or 0)
            queues = {"tasks": tasks_len, "results": results_len, "dead_letter": dead_t + dead_r}
        except (redis.RedisError, ApiError) as exc:
            redis_state = f"error: {getattr(exc, 'message', exc.__class__.__name__)}"
        processed = figures.get("processed")
        failed = None if processed is None else figures["errors"] + (failed_runs or 0)
        done = None if processed is None else processed + failed
        return json_response({
            "time": rfc3339_jst(now),
            "database": database,
            "redis": redis_state,
            "pipeline": {"processed": processed, "failed": failed,
                         "success_rate": (round(processed / done, 4) if done else None)},
            "scheduler": {"total_ips": total_ips, "overdue_ips": overdue},
            "queues": {"tasks": queues.get("tasks"), "results": queues.get("results"),
                       "dead_letter": queues.get("dead_letter")},
            "stats": {"unacked_alerts": figures.get("unacked_alerts"), "active_items": figures.get("active_items")},
        })

    @app.get("/api/v1/system/scheduler", response_model=m.Envelope[m.Scheduler], responses=WITH_REDIS,
             tags=["system"])
    def system_scheduler():
        redis_or_503()
        now = clock()
        try:
            entries = schedule.entries()
        except redis.RedisError as exc:
            raise ApiError(503, f"Redis unavailable ({exc.__class__.__name__})") from None
        names = q.names_of(engine, [ip_id for ip_id, _ in entries])
        stamp = now.timestamp()
        items = [
            {"ip_id": ip_id, "name": names.get(ip_id), "next_crawl_at": rfc3339_jst(datetime.fromtimestamp(at, UTC)),
             "seconds_until": int(at - stamp), "overdue": at < stamp}
            for ip_id, at in entries
        ]
        return json_response({"time": rfc3339_jst(now), "total_ips": len(items),
                              "overdue_ips": sum(1 for i in items if i["overdue"]), "items": items})

    # ------------------------------------------------------------------ admin

    @app.post("/api/v1/admin/import", response_model=m.Envelope[m.ImportResult], responses=ADMIN_ERRORS,
              tags=["admin"], dependencies=[Depends(require_admin)])
    def admin_import(body: m.ImportRequest):
        _check_text(body.ips)
        report = import_ips(engine, body.ips, upsert=body.upsert, now=clock())
        created = [row["id"] for row in report.created]
        seed(created)
        partitions.add(created)
        for row in report.updated:
            drop_ip_cache(row["id"])
        return json_response(report.summary())

    @app.post("/api/v1/admin/archive/daily", response_model=m.Envelope[m.Archive], responses=ADMIN_ERRORS,
              tags=["admin"], dependencies=[Depends(require_admin)])
    def archive_daily(date_: Annotated[str | None, Query(alias="date", description="YYYY-MM-DD, default yesterday (Japan time)")] = None):
        now = clock()
        day = parse_day("date", date_) if date_ else jst_date(now) - timedelta(days=1)
        with engine.begin() as connection:
            report = rollup_day(connection, day, now)
        if redis_client is not None:
            invalidate_after_rollup(redis_client, DAY_HOURS)
        return json_response(_archive("daily", report))

    @app.post("/api/v1/admin/archive/weekly", response_model=m.Envelope[m.Archive], responses=ADMIN_ERRORS,
              tags=["admin"], dependencies=[Depends(require_admin)])
    def archive_weekly(week_start_: Annotated[str | None, Query(alias="week_start", description="a Monday, YYYY-MM-DD; default last week")] = None):
        now = clock()
        monday = parse_day("week_start", week_start_) if week_start_ else week_start(jst_date(now)) - timedelta(days=7)
        if monday.weekday() != 0:
            raise ApiError(400, f"invalid parameter week_start: {monday} is not a Monday")
        with engine.begin() as connection:
            report = rollup_week(connection, monday, now)
        if redis_client is not None:
            invalidate_after_rollup(redis_client, WEEK_HOURS)
        return json_response(_archive("weekly", report))

    # ------------------------------------------------------------------ OpenAPI

    def openapi():
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                responses = operation.get("responses", {})
                responses.pop("422", None)
        components = schema.get("components", {}).get("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi
    app.add_middleware(EdgeMiddleware, body_limit=body_limit, metrics=metrics)
    return app


def _check_text(value: Any) -> None:
    """Text the database cannot store (lone surrogates) is the client's error."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(400, "invalid body: text is not valid Unicode") from None


def _record(fields: dict) -> Any:
    _check_text(fields)
    try:
        return parse_record(fields)
    except RecordError as exc:
        raise ApiError(400, f"invalid body: {exc}") from None


def _archive(kind: str, report) -> dict:
    return {"kind": kind, "bucket": report.bucket.isoformat(), "rows": report.rows,
            "total_inflow": report.total_inflow, "total_outflow": report.total_outflow}


def validation_message(errors: list[dict]) -> str:
    """``invalid parameter page_size: …`` naming each offending parameter (first three)."""
    parts = []
    for error in errors[:3]:
        loc = [str(p) for p in error.get("loc", ()) if p not in ("query", "path", "header")]
        if error.get("type") == "json_invalid":
            parts.append("invalid JSON body")
            continue
        where = ".".join(loc) or "request"
        kind = "body field" if loc and loc[0] == "body" else "parameter"
        if loc and loc[0] == "body":
            where = ".".join(loc[1:]) or "body"
        parts.append(f"invalid {kind} {where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


__all__ = ["ApiError", "DagsterPartitions", "check_startup", "create_app", "JST"]
