"""Every Redis key the system uses (SPEC §6), and which cached keys a write makes stale.

Crawler nodes of the original system use exactly these names. The cache keys are here, not in
the API, because the writers that make them stale (the result processor, the rollups, the API's
own writes) must drop the same keys the API reads, and the queue layer may not import the API.
Invalidation swallows Redis errors: a Redis outage means uncached reads, not failed writes.
"""

from __future__ import annotations

import dataclasses
import logging

import redis

from animehot_dagster.domain.leaderboard import DAY_HOURS, LeaderboardType

log = logging.getLogger(__name__)

SCHEDULE = "animetop:schedule:pending"
PROCESSED = "animetop:processed"

TASKS = "animetop:queue:tasks"
TASKS_PROCESSING = "animetop:queue:tasks:processing"
TASKS_PENDING = "animetop:queue:tasks:pending"
TASKS_STARTED = "animetop:queue:tasks:started"
TASKS_DEADLETTER = "animetop:queue:tasks:deadletter"

RESULTS = "animetop:queue:results"
RESULTS_PROCESSING = "animetop:queue:results:processing"
RESULTS_STARTED = "animetop:queue:results:started"
RESULTS_DEADLETTER = "animetop:queue:results:deadletter"

# Added by this project: Dagster runs of the crawl chain that failed, counted for the metrics.
FAILED_RUNS = "animetop:stats:failed_runs"
# The token bucket every crawler node draws from (a hash: tokens, at).
RATE_LIMIT = "animetop:crawler:rate_limit"


@dataclasses.dataclass(frozen=True)
class QueueKeys:
    """The keys of one reliable queue. ``done_set`` is the set its ack updates: tasks remove
    their IP's ``ip:<id>`` from the pending set, results add their task id to the processed set."""

    name: str
    queue: str
    processing: str
    started: str
    deadletter: str
    done_set: str


TASK_KEYS = QueueKeys("tasks", TASKS, TASKS_PROCESSING, TASKS_STARTED, TASKS_DEADLETTER, TASKS_PENDING)
RESULT_KEYS = QueueKeys("results", RESULTS, RESULTS_PROCESSING, RESULTS_STARTED, RESULTS_DEADLETTER, PROCESSED)

# Every list, set, hash and ZSET of SPEC §6 with the command that measures it.
MEASURED_KEYS = (
    (SCHEDULE, "zcard"),
    (TASKS, "llen"),
    (TASKS_PROCESSING, "llen"),
    (TASKS_PENDING, "scard"),
    (TASKS_STARTED, "hlen"),
    (TASKS_DEADLETTER, "llen"),
    (RESULTS, "llen"),
    (RESULTS_PROCESSING, "llen"),
    (RESULTS_STARTED, "hlen"),
    (RESULTS_DEADLETTER, "llen"),
    (PROCESSED, "scard"),
)


# Members of TASKS_PENDING are this prefix and the IP id; the pending reconcile script builds
# them inside Redis from the same prefix.
PENDING_MEMBER_PREFIX = "ip:"


def pending_member(ip_id: int) -> str:
    return f"{PENDING_MEMBER_PREFIX}{ip_id}"


# The API's read cache (SPEC §6, §9).
LEADERBOARD_TYPES = tuple(t.value for t in LeaderboardType)
HOURLY_WINDOWS = range(1, DAY_HOURS)


def leaderboard_key(kind: str, hours: int) -> str:
    return f"animetop:leaderboard:{kind}:{hours}"


def liquidity_key(ip_id: int) -> str:
    return f"animetop:ip:{ip_id}:liquidity"


def hourly_stats_key(ip_id: int, limit: int) -> str:
    return f"animetop:ip:{ip_id}:hourly_stats:{limit}"


def items_key(ip_id: int, status: str, page: int, size: int) -> str:
    return f"animetop:ip:{ip_id}:items:{status}:{page}:{size}"


def ip_detail_pattern(ip_id: int) -> str:
    """Every cached detail key of ``ip_id`` (liquidity, hourly stats, items pages)."""
    return f"animetop:ip:{ip_id}:*"


def _delete(client: redis.Redis, names: list[str], what: str) -> int:
    try:
        return int(client.delete(*names)) if names else 0
    except redis.RedisError as exc:
        log.warning("cache invalidation failed", extra={"what": what, "error": str(exc)})
        return 0


def invalidate_after_crawl(client: redis.Redis, ip_id: int) -> int:
    """After a crawl of ``ip_id`` was applied: its detail keys and the 1–23 h leaderboards.
    Returns how many keys were deleted (0 when Redis is unreachable)."""
    try:
        detail = list(client.scan_iter(match=ip_detail_pattern(ip_id), count=1000))
    except redis.RedisError as exc:
        log.warning("cache invalidation failed", extra={"what": "ip detail", "ip_id": ip_id, "error": str(exc)})
        detail = []
    boards = [leaderboard_key(kind, hours) for kind in LEADERBOARD_TYPES for hours in HOURLY_WINDOWS]
    return _delete(client, detail + boards, "after crawl")


def invalidate_after_rollup(client: redis.Redis, hours: int) -> int:
    """After a rollup: the leaderboards of its window (24 for daily, 168 for weekly)."""
    return _delete(client, [leaderboard_key(kind, hours) for kind in LEADERBOARD_TYPES], f"after rollup {hours}")
