"""Shared helpers of the queue tests: a fake clock, a crawl request, readers of Redis lists.

The bytes Redis client the queues take (``queue_redis``) is a fixture of the top-level conftest."""

from __future__ import annotations

import dataclasses
import json

import redis

from animehot_dagster.domain.messages import CrawlRequest
from animehot_dagster_tests.factories import T0


@dataclasses.dataclass
class FakeClock:
    """Unix seconds that move only when told; ``sleep`` advances them."""

    now: float = T0.timestamp()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    sleep = advance


def request(ip_id: int, task_id: str | None = None, retry_count: int = 0) -> CrawlRequest:
    return CrawlRequest(
        ip_id=ip_id,
        keyword=f"ip {ip_id}",
        task_id=task_id or f"task-{ip_id}",
        created_at=int(T0.timestamp()),
        retry_count=retry_count,
        pages_on_sale=5,
        pages_sold=5,
    )


def lrange(client: redis.Redis, key: str) -> list[bytes]:
    return client.lrange(key, 0, -1)


def json_list(client: redis.Redis, key: str) -> list[dict]:
    return [json.loads(entry) for entry in lrange(client, key)]
