"""Lengths of every queue key (SPEC §6), read in one round trip."""

from __future__ import annotations

import redis

from animehot_dagster.queue.keys import MEASURED_KEYS


def queue_lengths(client: redis.Redis) -> dict[str, int]:
    """Key name → LLEN / SCARD / HLEN / ZCARD, the numbers the manual's redis-cli commands show."""
    with client.pipeline(transaction=False) as pipe:
        for key, command in MEASURED_KEYS:
            getattr(pipe, command)(key)
        return {key: int(length) for (key, _), length in zip(MEASURED_KEYS, pipe.execute(), strict=True)}
