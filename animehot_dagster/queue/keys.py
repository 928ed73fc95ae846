"""Redis key names (SPEC §6). Crawler nodes of the original system use exactly these."""

from __future__ import annotations

import dataclasses

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


def pending_member(ip_id: int) -> str:
    return f"ip:{ip_id}"
