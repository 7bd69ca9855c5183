"""How a batch subscriber waits for records: long-poll, with no idle sleep.

FastStream 0.7's batch subscriber polls with ``getmany(timeout_ms=batch_timeout_ms)`` and, when
that poll comes back empty, *sleeps* ``batch_timeout_ms`` more before polling again. aiokafka's
``getmany`` already waits for records and returns as soon as any arrive, so that sleep only adds
latency: a record that lands during it waits up to ``batch_timeout_ms`` (50 ms here) for nothing,
once per consumer hop; a privacy request crosses three such hops. :func:`long_poll` replaces the
subscriber's poll: wait up to ``batch_timeout_ms`` for the first record, return at once when one
arrives, and poll again at once after an empty wait. Only a poll that came back empty *early*
(a client returning without waiting, e.g. while closing) backs off, so the loop never spins.

Batch size, offsets, acknowledgement and every other behaviour of the subscriber stay as they
are; this changes only when the next poll starts.
"""

from __future__ import annotations

import asyncio
import time
from itertools import chain
from typing import Any, Protocol


class _Consumer(Protocol):
    async def getmany(
        self, *partitions: Any, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[Any, Any]: ...


# An empty poll shorter than this share of its timeout returned early (not a real wait).
EARLY = 0.5
_now = time.monotonic  # the poll's own clock (tests replace it, not the event loop's)


async def poll(consumer: _Consumer, *, timeout_ms: int, max_records: int | None) -> tuple[Any, ...]:
    """One poll: the records that arrived (as soon as there are any), or () after ``timeout_ms``."""
    started = _now()
    batches = await consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
    if batches:
        return tuple(chain(*batches.values()))
    waited = _now() - started
    if waited < EARLY * timeout_ms / 1000:
        await asyncio.sleep(timeout_ms / 1000 - waited)
    return ()


def long_poll(subscriber: Any) -> None:
    """Make a FastStream Kafka batch subscriber poll with :func:`poll` (no sleep after an empty
    poll). Its ``batch_timeout_ms`` and ``max_records`` keep their meaning."""

    async def get_msg(consumer: _Consumer) -> tuple[Any, ...]:
        return await poll(consumer, timeout_ms=subscriber.batch_timeout_ms, max_records=subscriber.max_records)

    subscriber.get_msg = get_msg
