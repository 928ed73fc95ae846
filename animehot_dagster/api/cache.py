"""The API's read cache in Redis (SPEC §6, §9): keys, lifetimes and invalidation.

| key | holds | lifetime |
|---|---|---|
| ``animetop:leaderboard:{type}:{hours}`` | the top 100 of a window | 10 min for 1–23 h, 1 h for 24/168 |
| ``animetop:ip:{id}:liquidity`` | the IP's latest hour | 10 min |
| ``animetop:ip:{id}:hourly_stats:{limit}`` | the latest ``limit`` hours | 10 min |
| ``animetop:ip:{id}:items:{status}:{page}:{size}`` | one page of items | 10 min |

A cached window never outlives the window itself: an entry expires at the next hour (1–23 h),
the next Japan-time midnight (24 h) or the next Monday (168 h) if that comes first.

The key names and the invalidation after a crawl or a rollup are defined in
:mod:`animehot_dagster.queue.keys`, where the result processor, which may not import the API,
uses them too; they are exported here with the lifetimes, so the API's cache is one module.
Every cache operation swallows Redis errors: a Redis outage means uncached reads, not errors.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from animehot_dagster.domain.leaderboard import DAY_HOURS, WEEK_HOURS
from animehot_dagster.domain.timebuckets import hour_bucket, next_day_boundary, next_week_boundary
from animehot_dagster.queue.keys import (
    hourly_stats_key,
    invalidate_after_crawl,
    invalidate_after_rollup,
    items_key,
    leaderboard_key,
    liquidity_key,
)

__all__ = [
    "DETAIL_TTL", "HOURLY_LEADERBOARD_TTL", "ROLLUP_LEADERBOARD_TTL", "ReadCache", "async_client_like",
    "hourly_stats_key", "invalidate_after_crawl", "invalidate_after_rollup", "items_key", "leaderboard_key",
    "leaderboard_ttl", "liquidity_key",
]

log = logging.getLogger(__name__)

DETAIL_TTL = timedelta(minutes=10)
HOURLY_LEADERBOARD_TTL = timedelta(minutes=10)
ROLLUP_LEADERBOARD_TTL = timedelta(hours=1)


def leaderboard_ttl(hours: int, now: datetime) -> int:
    """Seconds a leaderboard of ``hours`` computed at ``now`` stays valid (at least 1)."""
    if hours == DAY_HOURS:
        boundary, limit = next_day_boundary(now), ROLLUP_LEADERBOARD_TTL
    elif hours == WEEK_HOURS:
        boundary, limit = next_week_boundary(now), ROLLUP_LEADERBOARD_TTL
    else:
        boundary, limit = hour_bucket(now) + timedelta(hours=1), HOURLY_LEADERBOARD_TTL
    return max(1, int(min(limit, boundary - now).total_seconds()))


class ReadCache:
    """Asynchronous get/set for the request handlers; errors become misses and no-ops."""

    def __init__(self, client: aioredis.Redis | None) -> None:
        self.client = client

    async def get(self, key: str) -> bytes | None:
        if self.client is None:
            return None
        try:
            return await self.client.get(key)
        except (redis.RedisError, OSError) as exc:
            log.debug("cache read failed", extra={"key": key, "error": str(exc)})
            return None

    async def set(self, key: str, value: bytes, ttl_seconds: int) -> None:
        if self.client is None:
            return
        try:
            await self.client.set(key, value, ex=max(1, int(ttl_seconds)))
        except (redis.RedisError, OSError) as exc:
            log.debug("cache write failed", extra={"key": key, "error": str(exc)})

    async def close(self) -> None:
        if self.client is not None:
            try:
                await self.client.aclose()
            except (redis.RedisError, OSError):
                pass


_ASYNC_KWARGS = ("host", "port", "db", "username", "password", "path")


def async_client_like(client: redis.Redis, timeout: float = 1.0) -> aioredis.Redis:
    """An asyncio client for the same server and database as the synchronous ``client``, with
    short timeouts and no retries, so an unreachable Redis costs a request little: a cache
    miss is cheaper than waiting for Redis to come back."""
    kwargs = client.connection_pool.connection_kwargs
    options = {k: kwargs[k] for k in _ASYNC_KWARGS if k in kwargs and kwargs[k] is not None}
    if "path" in options:
        options["unix_socket_path"] = options.pop("path")
    return aioredis.Redis(
        **options, socket_timeout=timeout, socket_connect_timeout=timeout, max_connections=64,
        retry=Retry(NoBackoff(), 0),
    )
