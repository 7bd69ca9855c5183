"""lampo.aio: a background loop's wait ends on a wake-up or a stop, and a stop is never lost."""

from __future__ import annotations

import asyncio

import pytest

from lampo.aio import stop_task, wait_event


async def looping(event: asyncio.Event, rounds: list[int]) -> None:
    while True:
        rounds.append(1)
        await wait_event(event, 10.0)
        event.clear()


async def test_a_wake_up_and_a_cancellation_in_the_same_turn_stop_the_loop() -> None:
    event, rounds = asyncio.Event(), []
    task = asyncio.create_task(looping(event, rounds))
    await asyncio.sleep(0.01)
    event.set()
    task.cancel()  # asyncio.wait_for(event.wait(), ...) on 3.11 returns here and the loop goes on
    await asyncio.wait({task}, timeout=1)
    assert task.cancelled() and rounds == [1]


async def test_a_stop_that_follows_a_wake_up_stops_the_loop() -> None:
    event, rounds = asyncio.Event(), []
    task = asyncio.create_task(looping(event, rounds))
    await asyncio.sleep(0.01)
    event.set()
    stopping = asyncio.create_task(stop_task(task))
    await asyncio.wait({stopping}, timeout=1)
    assert stopping.done() and task.cancelled()


async def test_the_wait_says_whether_the_event_came() -> None:
    event = asyncio.Event()
    assert await wait_event(event, 0.01) is False
    asyncio.get_running_loop().call_later(0.01, event.set)
    assert await wait_event(event, 5.0) is True


async def test_the_callers_own_cancellation_goes_through_a_stop() -> None:
    async def stubborn() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(0.2)  # cleans up before it ends
            raise

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0.01)
    stopper = asyncio.create_task(stop_task(task))
    await asyncio.sleep(0.05)
    stopper.cancel()  # e.g. a shutdown with a time limit
    with pytest.raises(asyncio.CancelledError):
        await stopper
