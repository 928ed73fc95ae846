"""The request rate limit (APP_RATE_LIMIT requests/s, bursts of APP_RATE_BURST): one token
bucket in Redis that every node draws from, so adding nodes does not add load on Mercari.

A draw reserves the next token even when the bucket is empty (the balance goes negative) and
tells the caller how long to wait for it. Each request therefore costs one round trip, waiting
callers are served in the order they asked, and the rate holds whatever the number of callers.
The bucket's clock is Redis's own (TIME), so nodes' clocks need not agree.

Redis may restart under a running node: the pooled connections then fail once with
"Connection closed by server", and while it is away every draw fails to connect. A draw that
meets a connection error drops the pool's connections and tries again on a fresh one, with
backoff, for up to ``give_up_after`` seconds, so a Redis restart delays the crawl instead of
failing it. (The script is reloaded by redis-py when the new server does not know it.)
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from animehot_dagster.queue.keys import RATE_LIMIT

log = logging.getLogger(__name__)

# How long a draw keeps trying while Redis is unreachable, and the pauses between tries.
GIVE_UP_AFTER_SECONDS = 60.0
RETRY_DELAY_FIRST_SECONDS = 0.1
RETRY_DELAY_CAP_SECONDS = 2.0

# KEYS[1]: the bucket (hash: tokens, at). ARGV: rate per second, burst.
# Returns the milliseconds to wait before the reserved token is due (0: now).
_RESERVE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]), tonumber(state[2])
if tokens == nil or at == nil then tokens, at = burst, now end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate) - 1
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
-- Forget the bucket once it would be full again anyway.
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
if tokens >= 0 then return 0 end
return math.ceil(-tokens / rate * 1000)
"""


class RateLimiter(Protocol):
    async def acquire(self) -> float:
        """Wait until a request may be sent; returns the seconds waited."""


class RedisRateLimiter:
    """The shared bucket every crawler node uses."""

    def __init__(
        self,
        client: aioredis.Redis,
        rate: float,
        burst: int,
        key: str = RATE_LIMIT,
        give_up_after: float = GIVE_UP_AFTER_SECONDS,
    ) -> None:
        self._client = client
        self._reserve = client.register_script(_RESERVE)
        self._key = key
        self._rate = rate
        self._burst = burst
        self._give_up_after = give_up_after

    async def acquire(self) -> float:
        wait = await self._draw() / 1000
        if wait > 0:
            await asyncio.sleep(wait)
        return wait

    async def _draw(self) -> int:
        """Reserve a token: the milliseconds until it is due. Connection errors are retried on
        fresh connections until ``give_up_after`` seconds have passed, then raised."""
        deadline = time.monotonic() + self._give_up_after
        delay, attempt = RETRY_DELAY_FIRST_SECONDS, 0
        while True:
            try:
                return int(await self._reserve(keys=[self._key], args=[repr(self._rate), self._burst]))
            except (RedisConnectionError, RedisTimeoutError) as exc:
                attempt += 1
                if time.monotonic() + delay > deadline:
                    log.error("rate limiter: Redis unreachable, giving up",
                              extra={"attempts": attempt, "error": str(exc)})
                    raise
                if attempt == 1:
                    log.warning("rate limiter: Redis connection lost, retrying on a fresh connection",
                                extra={"error": str(exc)})
                # Connections to a server that went away are dead: never hand them out again.
                await self._client.connection_pool.disconnect(inuse_connections=True)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_DELAY_CAP_SECONDS)


class LocalRateLimiter:
    """The same bucket in process memory, for a one-off crawl without Redis (``animehot crawl``)."""

    def __init__(self, rate: float, burst: int) -> None:
        self._rate = rate
        self._burst = burst
        self._tokens = float(burst)
        self._at = time.monotonic()

    async def acquire(self) -> float:
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate) - 1
        self._at = now
        wait = max(0.0, -self._tokens / self._rate)
        if wait > 0:
            await asyncio.sleep(wait)
        return wait
