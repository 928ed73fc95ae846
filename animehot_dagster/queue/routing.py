"""What becomes of the results waiting in Redis: the runs the results sensor asks for, the run
keys that launch each of them once, and how long it leaves an unreachable database alone.

While few results wait, each (ip, hour) gets a run of the crawl chain, so the UI shows every
partition's own run; beyond PER_PARTITION_LIMIT, batch runs ingest BATCH_SIZE results each,
because a daemon-launched run costs ~10 s of queueing and process start and one run per result
would cap throughput.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
from collections.abc import Callable, Sequence
from datetime import datetime

from animehot_dagster.domain.timebuckets import from_unix, hour_bucket
from animehot_dagster.queue.reliable import Delivery

# A sensor tick looks at this many of the oldest waiting results.
RESULTS_SCAN = 200
PER_PARTITION_LIMIT = 8
BATCH_SIZE = 50
# The cadence sensor's backpressure wait (for the whole tick) must end well inside Dagster's 60 s
# sensor timeout; IPs it could not send stay due, and the next tick goes on with them.
DISPATCH_MAX_WAIT_SECONDS = 20
# How often a crawl asked for now looks for its result.
RESULT_POLL_SECONDS = 2.0
# While the database is unreachable the results sensor probes it again after these many seconds,
# doubling from the first to the most.
DATABASE_BACKOFF_FIRST_SECONDS = 10
DATABASE_BACKOFF_MAX_SECONDS = 60


@dataclasses.dataclass(frozen=True)
class PartitionRun:
    """A run of the crawl chain for the waiting results of one (ip, hour)."""

    ip_id: int
    hour: datetime
    task_ids: tuple[str, ...]
    results_key: str


@dataclasses.dataclass(frozen=True)
class BatchRun:
    """A batch run: it takes from the oldest end, records materializations only for partitions
    that exist, and dead-letters what cannot be decoded."""

    results_key: str
    max_results: int = BATCH_SIZE


def by_partition(waiting: Sequence[Delivery]) -> dict[tuple[int, datetime], list[Delivery]]:
    """The decoded results by the (ip, hour) they were crawled in, in the order they wait."""
    partitions = collections.defaultdict(list)
    for delivery in waiting:
        if delivery.message is not None:
            response = delivery.message
            partitions[(response.ip_id, hour_bucket(from_unix(response.crawled_at)))].append(delivery)
    return dict(partitions)


def route(
    waiting: Sequence[Delivery], partition_exists: Callable[[int, datetime], bool]
) -> BatchRun | list[PartitionRun]:
    """The runs for the ``waiting`` results (at least one): one per (ip, hour) while few wait
    and each has an existing partition; otherwise one batch, since a result that cannot be
    decoded or has no partition can only go through a batch."""
    partitions = by_partition(waiting)
    every_one_has_a_partition = sum(map(len, partitions.values())) == len(waiting) and all(
        partition_exists(ip_id, hour) for ip_id, hour in partitions
    )
    if len(waiting) > PER_PARTITION_LIMIT or not every_one_has_a_partition:
        return BatchRun(f"batch:{hashlib.sha1(waiting[0].raw).hexdigest()}")
    return [
        PartitionRun(
            ip_id=ip_id,
            hour=hour,
            task_ids=tuple(d.task_id for d in deliveries),
            # A result retried by the janitor comes back with retryCount + 1: new results, new key.
            results_key="crawl:" + ",".join(f"{d.task_id}:{d.message.retry_count}" for d in deliveries),
        )
        for (ip_id, hour), deliveries in partitions.items()
    ]


def run_key(results_key: str, finished_runs: int) -> str:
    """The run key for ``results_key`` (the results a run is to ingest), given how many runs for
    them have finished. While a run for them is queued or running the key repeats, so the daemon
    does not launch a second; once such a run has finished and the results still wait (it failed
    before taking them), a new key."""
    return results_key if not finished_runs else f"{results_key}#{finished_runs}"


def backoff_seconds(failures: int) -> int:
    """The wait before the next probe after ``failures`` failed probes in a row (at least one)."""
    return min(DATABASE_BACKOFF_FIRST_SECONDS * 2 ** (failures - 1), DATABASE_BACKOFF_MAX_SECONDS)


@dataclasses.dataclass(frozen=True)
class DatabaseBackoff:
    """The results sensor's probes of an unreachable database, kept in its cursor so that they
    survive from tick to tick: how many have failed in a row, since when, and when to probe
    again (Unix seconds). No failures: the database answered at the last probe."""

    failures: int = 0
    since: float = 0
    retry_at: float = 0

    @classmethod
    def from_cursor(cls, cursor: str | None) -> DatabaseBackoff:
        """The state a cursor holds; a cursor of another shape (none yet, or unreadable) is
        a database that answered."""
        try:
            state = json.loads(cursor) if cursor else {}
        except ValueError:
            return cls()
        if not isinstance(state, dict) or not state.get("failures"):
            return cls()
        return cls(int(state["failures"]), float(state.get("since") or 0), float(state.get("retry_at") or 0))

    def holds(self, at: float) -> bool:
        """Whether ``at`` is within the wait after a failed probe: no probe yet."""
        return self.failures > 0 and at < self.retry_at

    def failed(self, at: float) -> DatabaseBackoff:
        """The state after a probe at ``at`` failed: the wait doubled, the outage's start kept."""
        failures = self.failures + 1
        return DatabaseBackoff(failures, self.since or at, at + backoff_seconds(failures))

    @property
    def delay(self) -> int:
        """The wait this state's last failed probe began."""
        return backoff_seconds(self.failures)

    def down_seconds(self, at: float) -> float:
        return at - (self.since or at)

    def cursor(self) -> str:
        return json.dumps({"failures": self.failures, "since": int(self.since), "retry_at": int(self.retry_at)})


def recovered_cursor(at: float) -> str:
    """The cursor once a probe at ``at`` found the database answering again."""
    return json.dumps({"failures": 0, "recovered_at": int(at)})
