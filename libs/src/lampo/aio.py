"""Waiting and stopping in the background loops every service runs (outbox relay, checkers,
schedules), written so that a stop is never lost.

On Python 3.11, ``asyncio.wait_for`` returns normally when the task waiting in it is cancelled
in the same turn as the awaited thing completes, and the cancellation is gone (CPython gh-86296,
fixed in 3.12). A loop that waits for a wake-up with it keeps running when a NOTIFY and a stop
come together, and whoever awaits the cancelled task waits forever: the service never finishes
stopping. ``asyncio.timeout`` counts cancellations and never drops one.

The usual ``task.cancel(); try: await task; except CancelledError: pass`` also swallows the
*caller's* cancellation (a shutdown with a time limit, for one): :func:`stop_task` lets it through.
"""

from __future__ import annotations

import asyncio
from typing import Any


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait until ``event`` is set, at most ``timeout`` seconds; True if it is set."""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        pass
    return event.is_set()


async def stop_task(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` and wait until it has ended. The caller's own cancellation still propagates."""
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
