"""The request rate limit (APP_RATE_LIMIT requests/s, bursts of APP_RATE_BURST): one token
bucket in Redis that every node draws from, so adding nodes does not add load on Mercari.

A draw reserves the next token even when the bucket is empty (the balance goes negative) and
tells the caller how long to wait for it. Each request therefore costs one round trip, waiting
callers are served in the order they asked, and the rate holds whatever the number of callers.
The bucket's clock is Redis's own (TIME), so nodes' clocks need not agree.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

import redis.asyncio as aioredis

RATE_LIMIT_KEY = "animetop:crawler:rate_limit"

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

    def __init__(self, client: aioredis.Redis, rate: float, burst: int, key: str = RATE_LIMIT_KEY) -> None:
        self._client = client
        self._reserve = client.register_script(_RESERVE)
        self._key = key
        self._rate = rate
        self._burst = burst

    async def acquire(self) -> float:
        wait = int(await self._reserve(keys=[self._key], args=[repr(self._rate), self._burst])) / 1000
        if wait > 0:
            await asyncio.sleep(wait)
        return wait


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
