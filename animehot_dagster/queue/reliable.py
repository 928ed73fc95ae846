"""Reliable queues on Redis lists (SPEC §6): the task queue and the result queue.

A message is always in exactly one place: its queue, its processing list, its dead-letter list,
or gone because it was acknowledged. Every step that touches two keys is one Lua script (or one
Redis command, for the take), so a process killed at any instant leaves no message in two
places and none in no place. Only the take's start time is a second command: a message found in
processing without one gets a start time from the janitor when it first sees it.

The Redis client must return bytes (``decode_responses=False``): a message is acknowledged by
its exact bytes, and a malformed one need not even be UTF-8.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import redis

from animehot_dagster.domain.messages import (
    CrawlRequest,
    CrawlResponse,
    MessageError,
    OutOfBounds,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)
from animehot_dagster.queue.keys import (
    PENDING_MEMBER_PREFIX,
    RESULT_KEYS,
    SCHEDULE,
    TASK_KEYS,
    QueueKeys,
    pending_member,
)
from animehot_dagster.queue.payloads import dead_letter_entry, with_retry_count

log = logging.getLogger(__name__)

Clock = Callable[[], float]  # unix seconds
MAX_RETRIES = 3
# A blocking take must return before the client's socket timeout (redis-py's default is 5 s),
# or redis-py gives up on a healthy connection while Redis may still move a message for it.
MAX_BLOCK_SECONDS = 4.0

# Dedup by IP. SISMEMBER before the push and SADD after it (rather than SADD first, as the
# original did) gives the same answer, but if the push fails (a wrong-type key) the script stops
# before marking the IP pending: Redis does not roll a script back, and a pending mark without a
# task would keep the IP from ever being enqueued again. ``force`` skips the check and puts the
# task at the consuming end, so a manual trigger is crawled next.
_ENQUEUE = """
local force = ARGV[3] == '1'
if not force and redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 0 end
if force then redis.call('RPUSH', KEYS[2], ARGV[2]) else redis.call('LPUSH', KEYS[2], ARGV[2]) end
redis.call('SADD', KEYS[1], ARGV[1])
return 1
"""

# Only whoever removes the message from processing clears its bookkeeping: if the janitor has
# already moved it, the copy it moved still needs its pending mark and start time.
_ACK = """
local removed = redis.call('LREM', KEYS[1], 1, ARGV[1])
if removed == 1 then
  redis.call('HDEL', KEYS[2], ARGV[2])
  if ARGV[3] == 'SADD' then redis.call('SADD', KEYS[3], ARGV[4]) else redis.call('SREM', KEYS[3], ARGV[4]) end
end
return removed
"""

# Move one message out of processing (back to its queue, or to the dead-letter list) if it is
# still there and, when a cutoff is given, was taken at or before the cutoff. A message with no
# start time gets one now and waits for a later sweep. KEYS[4], when given, is a set to remove
# ARGV[6] from (a dead-lettered task's pending mark). KEYS[5], when given, is the schedule: a
# task returned to its queue pushes its IP's entry (ARGV[7]) to at least ARGV[8], never earlier
# and never adding an IP the schedule no longer has (XX GT).
_RELEASE = """
if not redis.call('LPOS', KEYS[1], ARGV[1]) then return 'gone' end
if ARGV[4] ~= '' then
  local started = redis.call('HGET', KEYS[2], ARGV[2])
  if not started then
    redis.call('HSET', KEYS[2], ARGV[2], ARGV[5])
    return 'stamped'
  end
  if tonumber(started) > tonumber(ARGV[4]) then return 'held' end
end
redis.call('LREM', KEYS[1], 1, ARGV[1])
redis.call('RPUSH', KEYS[3], ARGV[3])
if ARGV[2] ~= '' then redis.call('HDEL', KEYS[2], ARGV[2]) end
if KEYS[4] and ARGV[6] ~= '' then redis.call('SREM', KEYS[4], ARGV[6]) end
if KEYS[5] then redis.call('ZADD', KEYS[5], 'XX', 'GT', ARGV[8], ARGV[7]) end
return 'moved'
"""

# Forget a start time nobody holds any more, unless it changed since it was read.
_FORGET_START = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
"""

# Move an entry from a dead-letter list back to its queue (and mark a task's IP pending).
_REQUEUE_DEAD = """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[2])
if KEYS[3] then redis.call('SADD', KEYS[3], ARGV[3]) end
return 1
"""

# Make the pending set exactly the IPs with a task queued or held. Marks without a task are
# left by someone deleting a list by hand (or by a node of another implementation) and would
# make the dedup refuse the IP forever; tasks without a mark are left by a forced enqueue whose
# twin was acknowledged first. One script, so no task moves between the look and the fix; the
# lists hold about one task per IP, so it stays short. ARGV[1]: the prefix of a pending mark.
_RECONCILE_PENDING = """
local held, added, removed = {}, {}, {}
for _, key in ipairs({KEYS[2], KEYS[3]}) do
  for _, message in ipairs(redis.call('LRANGE', key, 0, -1)) do
    local ok, body = pcall(cjson.decode, message)
    if ok and type(body) == 'table' then
      local ip = body['ipId'] or body['ip_id']
      if ip ~= nil then held[ARGV[1] .. tostring(ip)] = true end
    end
  end
end
for member in pairs(held) do
  if redis.call('SADD', KEYS[1], member) == 1 then table.insert(added, member) end
end
for _, member in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if not held[member] then
    redis.call('SREM', KEYS[1], member)
    table.insert(removed, member)
  end
end
return {added, removed}
"""


# Take chosen results (by task id) from among the oldest ``ARGV[2]`` waiting into processing, as a
# Dagster run for one (ip, hour) partition does. Scanning decodes messages inside Redis, so it is
# bounded: a deep queue is drained in batches by the processor instead.
_CLAIM = """
local wanted = {}
for i = 3, #ARGV do wanted[ARGV[i]] = true end
local claimed = {}
local oldest = redis.call('LRANGE', KEYS[1], -tonumber(ARGV[2]), -1)
-- From the consuming (right) end: results of one IP must apply in the order they came.
for i = #oldest, 1, -1 do
  local message = oldest[i]
  local ok, body = pcall(cjson.decode, message)
  if ok and type(body) == 'table' then
    local task = body['taskId'] or body['task_id']
    if task ~= nil and wanted[task] and redis.call('LREM', KEYS[1], 1, message) == 1 then
      redis.call('LPUSH', KEYS[2], message)
      redis.call('HSET', KEYS[3], task, ARGV[1])
      table.insert(claimed, message)
      wanted[task] = nil
    end
  end
end
return claimed
"""


def require_bytes_client(client: redis.Redis) -> redis.Redis:
    if client.connection_pool.connection_kwargs.get("decode_responses"):
        raise ValueError("the queues need a Redis client with decode_responses=False")
    return client


def open_redis(url: str, pool_size: int = 10) -> redis.Redis:
    return redis.Redis.from_url(url, max_connections=pool_size, health_check_interval=30)


def rejection(exc: MessageError) -> str:
    """The dead-letter reason of a message that cannot be used: out of bounds (SPEC §6) or
    undecodable. Either way it is dead-lettered at once: retrying cannot change it."""
    return f"{'out of bounds' if isinstance(exc, OutOfBounds) else 'undecodable'}: {exc}"


@dataclasses.dataclass(frozen=True)
class Delivery:
    """A message taken into processing. ``message`` is None when it could not be decoded or is
    out of bounds; ``error`` then says why and ``reason`` is its dead-letter reason."""

    raw: bytes
    message: Any = None
    error: str = ""
    out_of_bounds: bool = False

    @property
    def task_id(self) -> str:
        return self.message.task_id if self.message is not None else ""

    @property
    def reason(self) -> str:
        return f"{'out of bounds' if self.out_of_bounds else 'undecodable'}: {self.error}"

    @classmethod
    def rejected(cls, raw: bytes, exc: MessageError) -> Delivery:
        return cls(raw=raw, error=str(exc), out_of_bounds=isinstance(exc, OutOfBounds))


class Release(enum.Enum):
    MOVED = "moved"
    STAMPED = "stamped"  # had no start time: given one now
    HELD = "held"  # not past the timeout
    GONE = "gone"  # acknowledged or moved by someone else meanwhile


@dataclasses.dataclass(frozen=True)
class ReleasePlan:
    """Where a held message goes if released, decided from the message alone."""

    payload: bytes  # what is pushed: the message with its new retry count, or its dead-letter entry
    to_deadletter: bool
    task_id: str  # "" when undecodable
    reason: str = ""
    pending_mark: str | None = None  # removed from the pending set along with the message
    schedule_member: str | None = None  # a task's IP in the schedule, whose lease a requeue extends


@dataclasses.dataclass
class SweepReport:
    requeued: int = 0
    dead_lettered: int = 0
    stamped: int = 0
    held: int = 0
    gone: int = 0
    forgotten_start_times: int = 0

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


class ReliableQueue:
    """What the task and result queues share; subclasses say how a message is decoded and what
    its ack and dead-lettering update."""

    keys: QueueKeys
    decode: Callable[[bytes], Any]  # the wire decoder (static: ``TaskQueue.decode(raw)`` works)

    def __init__(self, client: redis.Redis, clock: Clock = time.time) -> None:
        self.client = require_bytes_client(client)
        self.clock = clock
        self._ack = client.register_script(_ACK)
        self._release = client.register_script(_RELEASE)
        self._forget_start = client.register_script(_FORGET_START)
        self._requeue_dead = client.register_script(_REQUEUE_DEAD)

    def _decode(self, raw: bytes) -> Any:
        """The message, bounds checked against this queue's clock; MessageError if unusable."""
        return self.decode(raw)

    # -- what differs between tasks and results ------------------------------------------

    def _ack_update(self, message: Any) -> tuple[str, str]:
        raise NotImplementedError

    def _pending_mark(self, message: Any) -> str | None:
        """The pending mark a dead-lettered message leaves behind, if the queue keeps one."""
        return None

    def _schedule_member(self, message: Any) -> str | None:
        """The schedule entry whose lease a requeue of ``message`` extends, if any."""
        return None

    # -- the reliable queue --------------------------------------------------------------

    def take(self, block_seconds: float = 0) -> Delivery | None:
        """Move the oldest message into processing and record when; None when the queue stays
        empty for ``block_seconds`` (0: do not wait; at most MAX_BLOCK_SECONDS)."""
        keys = self.keys
        if block_seconds > 0:
            timeout = min(block_seconds, MAX_BLOCK_SECONDS)
            raw = self.client.blmove(keys.queue, keys.processing, timeout, "RIGHT", "LEFT")
        else:
            raw = self.client.lmove(keys.queue, keys.processing, "RIGHT", "LEFT")
        if raw is None:
            return None
        try:
            message = self._decode(raw)
        except MessageError as exc:
            return Delivery.rejected(raw, exc)
        self.client.hset(keys.started, message.task_id, int(self.clock()))
        return Delivery(raw=raw, message=message)

    def ack(self, delivery: Delivery) -> bool:
        """Done with ``delivery``; False when it was no longer in processing (the janitor had
        moved it after a timeout). An undecodable delivery is dead-lettered, never acked."""
        if delivery.message is None:
            raise ValueError(f"cannot ack an undecodable {self.keys.name} message: dead-letter it")
        operation, member = self._ack_update(delivery.message)
        keys = self.keys
        removed = self._ack(keys=[keys.processing, keys.started, keys.done_set],
                            args=[delivery.raw, delivery.task_id, operation, member])
        return removed == 1

    def dead_letter(self, delivery: Delivery, reason: str) -> bool:
        """Move a held message to the dead-letter list now, wrapped with ``reason``."""
        plan = self._dead_letter_plan(delivery.raw, delivery.message, reason, self.clock())
        return self._move(delivery.raw, plan, cutoff=None) is Release.MOVED

    def plan_release(self, raw: bytes, now: float) -> ReleasePlan:
        """Back to the queue with retryCount + 1, or to the dead-letter list once that would
        exceed MAX_RETRIES; an undecodable message goes to the dead-letter list at once."""
        try:
            message = self._decode(raw)
        except MessageError as exc:
            return self._dead_letter_plan(raw, None, rejection(exc), now)
        retry = message.retry_count + 1
        if retry > MAX_RETRIES:
            reason = f"retries exhausted: held past the timeout with retryCount {message.retry_count}"
            return self._dead_letter_plan(raw, message, reason, now)
        return ReleasePlan(with_retry_count(raw, retry), False, message.task_id,
                           schedule_member=self._schedule_member(message))

    def release(self, delivery: Delivery) -> bool:
        """Give a held message back now, as the janitor would after the timeout (retryCount + 1,
        or the dead-letter list past the retries): a node shutting down mid-task does this."""
        return self._move(delivery.raw, self.plan_release(delivery.raw, self.clock()), cutoff=None) is Release.MOVED

    def release_stale(self, timeout_seconds: float) -> SweepReport:
        """The janitor's sweep: release every message held longer than ``timeout_seconds``.

        A task put back on its queue also pushes its IP's schedule entry to at least now +
        ``timeout_seconds``: the recovered task is the IP's crawl, and the dispatcher must not
        add a second one while it is crawled and its result applied (issue 17 #11)."""
        return self._sweep(cutoff=self.clock() - timeout_seconds, lease_seconds=timeout_seconds)

    def recover(self) -> SweepReport:
        """Release everything in processing: its holder is known to be gone (a processor that
        starts again). Counts as a retry, so a message that kills its processor every time
        ends in the dead-letter list instead of looping."""
        return self._sweep(cutoff=None)

    def depth(self) -> int:
        """Messages waiting plus messages held."""
        with self.client.pipeline(transaction=False) as pipe:
            pipe.llen(self.keys.queue)
            pipe.llen(self.keys.processing)
            return sum(pipe.execute())

    def requeue_dead(self, entry: bytes, payload: bytes, message: Any) -> bool:
        """Put a dead-letter entry's message back on the queue with retryCount reset. A task is
        queued even if its IP has another one pending, as a forced enqueue would be."""
        keys = [self.keys.deadletter, self.keys.queue]
        args = [entry, with_retry_count(payload, 0)]
        mark = self._pending_mark(message)
        if mark is not None:
            keys.append(self.keys.done_set)
            args.append(mark)
        return self._requeue_dead(keys=keys, args=args) == 1

    # -- internals -----------------------------------------------------------------------

    def _sweep(self, cutoff: float | None, lease_seconds: float | None = None) -> SweepReport:
        report = SweepReport()
        now = self.clock()
        held_task_ids: set[str] = set()
        lease_until = now + lease_seconds if lease_seconds else None
        # Newest first, each pushed to the consuming end: the oldest is taken again first.
        for raw in self.client.lrange(self.keys.processing, 0, -1):
            plan = self.plan_release(raw, now)
            released = self._move(raw, plan, cutoff, lease_until)
            self._count(report, released, plan)
            if released in (Release.HELD, Release.STAMPED):
                held_task_ids.add(plan.task_id)
        if cutoff is not None:
            report.forgotten_start_times = self._forget_orphan_start_times(held_task_ids, cutoff)
        return report

    def _dead_letter_plan(self, raw: bytes, message: Any, reason: str, now: float) -> ReleasePlan:
        return ReleasePlan(
            payload=dead_letter_entry(raw, reason, now),
            to_deadletter=True,
            task_id=message.task_id if message is not None else "",
            reason=reason,
            pending_mark=self._pending_mark(message) if message is not None else None,
        )

    def _move(self, raw: bytes, plan: ReleasePlan, cutoff: float | None, lease_until: float | None = None) -> Release:
        keys = self.keys
        destination = keys.deadletter if plan.to_deadletter else keys.queue
        key_list = [keys.processing, keys.started, destination, keys.done_set]
        timed = cutoff is not None and plan.task_id  # an undecodable message cannot wait: it has no start time
        args = [raw, plan.task_id, plan.payload, repr(cutoff) if timed else "", int(self.clock()),
                plan.pending_mark or ""]
        if lease_until is not None and plan.schedule_member is not None and not plan.to_deadletter:
            key_list.append(SCHEDULE)
            args += [plan.schedule_member, int(lease_until)]
        released = Release(self._release(keys=key_list, args=args).decode())
        if released is Release.MOVED:
            log.warning(
                "message dead-lettered" if plan.to_deadletter else "message returned to its queue",
                extra={"queue": keys.name, "task_id": plan.task_id, "reason": plan.reason},
            )
        return released

    @staticmethod
    def _count(report: SweepReport, released: Release, plan: ReleasePlan) -> None:
        if released is Release.MOVED:
            if plan.to_deadletter:
                report.dead_lettered += 1
            else:
                report.requeued += 1
        else:
            setattr(report, released.value, getattr(report, released.value) + 1)

    def _forget_orphan_start_times(self, held_task_ids: Iterable[str], cutoff: float) -> int:
        """Start times older than the timeout of tasks no longer in processing (left by a
        holder that was too slow to notice the janitor had moved its message)."""
        held = set(held_task_ids)
        forgotten = 0
        for task_id, seen in self.client.hgetall(self.keys.started).items():
            if task_id.decode() in held or float(seen) > cutoff:
                continue
            forgotten += self._forget_start(keys=[self.keys.started], args=[task_id, seen])
        return forgotten


class TaskQueue(ReliableQueue):
    """``animetop:queue:tasks``: CrawlRequests, at most one per IP (the pending set)."""

    keys = TASK_KEYS
    decode = staticmethod(decode_request)

    def __init__(self, client: redis.Redis, clock: Clock = time.time) -> None:
        super().__init__(client, clock)
        self._enqueue = client.register_script(_ENQUEUE)
        self._reconcile_pending = client.register_script(_RECONCILE_PENDING)

    def enqueue(self, request: CrawlRequest, force: bool = False) -> bool:
        """Queue ``request`` unless its IP already has a task queued or held (then False).
        ``force`` (a manual trigger) queues it regardless, to be taken next. The IP then has
        two tasks under one pending mark: the first ack removes the mark, and the janitor puts
        it back while the other task is still queued."""
        added = self._enqueue(
            keys=[self.keys.done_set, self.keys.queue],
            args=[pending_member(request.ip_id), encode_request(request), "1" if force else "0"],
        )
        return added == 1

    def is_pending(self, ip_id: int) -> bool:
        return bool(self.client.sismember(self.keys.done_set, pending_member(ip_id)))

    def reconcile_pending(self) -> tuple[list[str], list[str]]:
        """Make the pending set match the tasks queued or held; returns the marks (added, removed)."""
        keys = self.keys
        added, removed = self._reconcile_pending(
            keys=[keys.done_set, keys.queue, keys.processing], args=[PENDING_MEMBER_PREFIX]
        )
        return [m.decode() for m in added], [m.decode() for m in removed]

    def _ack_update(self, message: CrawlRequest) -> tuple[str, str]:
        return "SREM", pending_member(message.ip_id)

    def _pending_mark(self, message: CrawlRequest) -> str:
        return pending_member(message.ip_id)

    def _schedule_member(self, message: CrawlRequest) -> str:
        return str(message.ip_id)  # as ScheduleStore writes it


class ResultQueue(ReliableQueue):
    """``animetop:queue:results``: CrawlResponses; acked task ids join ``animetop:processed``."""

    keys = RESULT_KEYS
    decode = staticmethod(decode_response)

    def __init__(self, client: redis.Redis, clock: Clock = time.time) -> None:
        super().__init__(client, clock)
        self._claim = client.register_script(_CLAIM)

    def push(self, response: CrawlResponse) -> None:
        self.client.lpush(self.keys.queue, encode_response(response))

    def waiting(self, limit: int) -> list[Delivery]:
        """The oldest ``limit`` results still queued, oldest first, without taking them."""
        delivered = []
        for raw in reversed(self.client.lrange(self.keys.queue, -limit, -1)):
            try:
                delivered.append(Delivery(raw=raw, message=self._decode(raw)))
            except MessageError as exc:
                delivered.append(Delivery.rejected(raw, exc))
        return delivered

    def claim(self, task_ids: Iterable[str], scan: int) -> list[Delivery]:
        """Take the results of ``task_ids`` that are among the oldest ``scan`` queued into
        processing (a result already taken by someone else is simply not returned)."""
        wanted = list(task_ids)
        if not wanted:
            return []
        claimed = self._claim(
            keys=[self.keys.queue, self.keys.processing, self.keys.started], args=[int(self.clock()), scan, *wanted]
        )
        return [Delivery(raw=raw, message=self._decode(raw)) for raw in claimed]

    def _decode(self, raw: bytes) -> CrawlResponse:
        # The crawl time may be at most an hour ahead of the processor's clock: this queue's.
        return decode_response(raw, now=self.clock())

    def is_processed(self, task_id: str) -> bool:
        return bool(self.client.sismember(self.keys.done_set, task_id))

    def _ack_update(self, message: CrawlResponse) -> tuple[str, str]:
        return "SADD", message.task_id
