"""Operations on the dead-letter lists (manual §8.4): look, put back, clear."""

from __future__ import annotations

import dataclasses
import logging

from animehot_dagster.domain.messages import MessageError
from animehot_dagster.queue.payloads import DeadLetter, read_dead_letter
from animehot_dagster.queue.reliable import ReliableQueue

log = logging.getLogger(__name__)


@dataclasses.dataclass
class RequeueReport:
    requeued: int = 0
    # Entries left where they are, with why: their message still cannot be decoded.
    left: list[tuple[DeadLetter, str]] = dataclasses.field(default_factory=list)


def dead_letters(queue: ReliableQueue) -> list[DeadLetter]:
    """The entries in the order LRANGE shows them (oldest first)."""
    return [read_dead_letter(entry) for entry in queue.client.lrange(queue.keys.deadletter, 0, -1)]


def requeue_dead_letters(queue: ReliableQueue) -> RequeueReport:
    """Put every decodable message back on its queue with retryCount reset, one atomic move
    each; the rest stay in the dead-letter list."""
    report = RequeueReport()
    for letter in dead_letters(queue):
        try:
            message = queue.decode(letter.payload)
        except MessageError as exc:
            report.left.append((letter, str(exc)))
            continue
        report.requeued += queue.requeue_dead(letter.entry, letter.payload, message)
    log.info("dead letters requeued", extra={"queue": queue.keys.name, "requeued": report.requeued,
                                              "left": len(report.left)})
    return report


def clear_dead_letters(queue: ReliableQueue) -> int:
    """Delete the dead-letter list; returns how many entries it held."""
    with queue.client.pipeline(transaction=True) as pipe:
        pipe.llen(queue.keys.deadletter)
        pipe.delete(queue.keys.deadletter)
        cleared, _ = pipe.execute()
    log.warning("dead letters cleared", extra={"queue": queue.keys.name, "cleared": cleared})
    return cleared
