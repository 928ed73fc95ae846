"""What the routes share: settings, the database, Redis (queues, schedule, read cache), the
clock and Dagster's partitions, with the helpers the routes have in common. One per app, at
``app.state.services``; a route takes it with ``Depends(services)``."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any

import redis
from fastapi import Depends, Header, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.engine import Engine
from starlette.responses import Response

from animehot_dagster.api.cache import ReadCache, async_client_like, invalidate_after_crawl
from animehot_dagster.api.envelope import JSON, ApiError, dumps, json_response
from animehot_dagster.api.partitions import DagsterPartitions
from animehot_dagster.domain.catalog import IpStatus
from animehot_dagster.domain.timebuckets import rfc3339_jst
from animehot_dagster.queue.reliable import TaskQueue
from animehot_dagster.queue.schedule import ScheduleStore
from animehot_dagster.settings import Settings
from animehot_dagster.storage import api_reads

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


class Services:
    def __init__(self, settings: Settings, engine: Engine, redis_client: redis.Redis | None, clock: Clock,
                 partitions: DagsterPartitions) -> None:
        self.settings = settings
        self.engine = engine
        self.redis = redis_client
        self.clock = clock
        self.partitions = partitions
        stamp = lambda: clock().timestamp()  # noqa: E731
        self.schedule = ScheduleStore(redis_client, stamp) if redis_client is not None else None
        self.tasks = TaskQueue(redis_client, stamp) if redis_client is not None else None
        self._caches: dict[int, ReadCache] = {}

    # ------------------------------------------------------------------ reads

    def read_cache(self) -> ReadCache:
        """The asyncio cache client of the running event loop (one per loop)."""
        loop = id(asyncio.get_running_loop())
        if loop not in self._caches:
            client = async_client_like(self.redis) if self.redis is not None else None
            self._caches[loop] = ReadCache(client)
        return self._caches[loop]

    async def close(self) -> None:
        for cache in list(self._caches.values()):
            await cache.close()
        self._caches.clear()

    def require_ip(self, ip_id: int) -> Any:
        row = api_reads.find_ip(self.engine, ip_id)
        if row is None:
            raise ApiError(404, f"IP {ip_id} not found")
        return row

    def require_redis(self) -> redis.Redis:
        if self.redis is None:
            raise ApiError(503, "Redis is not configured")
        return self.redis

    async def cached(self, key: str, compute: Callable[[], dict], ttl: int, *, in_data: bool = True) -> Response:
        """The stored answer on a hit; else ``compute()`` (an envelope) in a worker thread,
        stored with ``from_cache`` true, answered with it false. ``in_data``: the cache flags
        go in ``data`` (objects) or beside it (lists)."""
        store = self.read_cache()
        hit = await store.get(key)
        if hit is not None:
            return Response(hit, media_type=JSON)
        body = await run_in_threadpool(compute)
        cached_at = rfc3339_jst(self.clock())
        target = body["data"] if in_data else body
        target.update(from_cache=True, cached_at=cached_at)
        stored = dumps(body)
        target["from_cache"] = False
        await store.set(key, stored, ttl)
        return json_response(body)

    # ------------------------------------------------------------------ writes

    def ip_changed(self, ip_ids: Sequence[int], status: str | None) -> None:
        """Everything that follows an IP's change, in one place. With its ``status`` (None: the
        status did not change): the crawl schedule (an active IP not yet scheduled is, from its
        last crawl and weight; any other leaves it) and Dagster's ``ip`` partitions (the active
        IPs, as ip_catalog_sensor keeps them). Always: its cached figures are dropped."""
        ids = list(ip_ids)
        if not ids:
            return
        if status is not None:
            self._reschedule(ids, status)
            if status == IpStatus.ACTIVE:
                self.partitions.add(ids)
            else:
                for ip_id in ids:
                    self.partitions.remove(ip_id)
        if self.redis is not None:
            for ip_id in ids:
                invalidate_after_crawl(self.redis, ip_id)

    def _reschedule(self, ip_ids: list[int], status: str) -> None:
        if self.schedule is None:
            return
        try:
            if status == IpStatus.ACTIVE:
                self.schedule.seed(api_reads.active_ips_among(self.engine, ip_ids), self.settings.cadence)
            else:
                for ip_id in ip_ids:
                    self.schedule.remove(ip_id)
        except redis.RedisError as exc:
            log.warning("schedule update failed", extra={"ip_ids": ip_ids, "error": str(exc)})


def services(request: Request) -> Services:
    return request.app.state.services


Svc = Annotated[Services, Depends(services)]


def require_admin(request: Request, x_api_key: Annotated[str | None, Header(alias="X-API-Key")] = None) -> None:
    """``X-API-Key`` must equal ADMIN_API_KEY when that is set."""
    expected = request.app.state.services.settings.admin_api_key
    if expected and not hmac.compare_digest((x_api_key or "").encode(), expected.encode()):
        raise ApiError(401, "X-API-Key missing or wrong")
