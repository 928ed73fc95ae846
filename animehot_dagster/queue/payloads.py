"""Pure rewrites of queue payloads: the retry count, and the dead-letter envelope.

Payloads are rewritten as JSON objects rather than through the message codec, so fields this
project does not know (added by other crawler nodes) survive a retry unchanged.
"""

from __future__ import annotations

import dataclasses
import json

_RETRY_FIELDS = ("retryCount", "retry_count")  # the codec accepts both spellings


def _dumps(body: object) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def with_retry_count(raw: bytes, count: int) -> bytes:
    """``raw`` (a JSON object) with retryCount set to ``count``; zero is omitted, as proto3 does."""
    body = json.loads(raw)
    for field in _RETRY_FIELDS:
        body.pop(field, None)
    if count:
        body["retryCount"] = count
    return _dumps(body)


def dead_letter_entry(raw: bytes, reason: str, now: float) -> bytes:
    """The dead-letter form of a message: why, when, and the message as it was received."""
    return _dumps({"reason": reason, "dead_at": int(now), "payload": raw.decode("utf-8", "replace")})


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    entry: bytes  # as stored in the dead-letter list
    payload: bytes  # the message itself
    reason: str
    dead_at: int | None


def read_dead_letter(entry: bytes) -> DeadLetter:
    """Unwrap an entry; one that is not an envelope (a message put there by a node of the
    original system, or by hand) is its own payload."""
    try:
        body = json.loads(entry)
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict) and isinstance(body.get("payload"), str) and "reason" in body:
        dead_at = body.get("dead_at")
        return DeadLetter(
            entry=entry,
            payload=body["payload"].encode(),
            reason=str(body["reason"]),
            dead_at=dead_at if isinstance(dead_at, int) else None,
        )
    return DeadLetter(entry=entry, payload=entry, reason="", dead_at=None)
