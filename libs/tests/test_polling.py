"""The batch subscriber's poll (lampo.messaging.polling): records are handed over as soon as they
arrive, an empty wait is followed by the next poll at once (FastStream's own poll sleeps
``batch_timeout_ms`` after it), and only an empty poll that returned early backs off."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, Topic

from lampo.messaging import polling
from lampo.messaging.consumer import ConsumerOptions, ReliableConsumer


class FakeConsumer:
    """getmany answers from a script: (seconds it waits, what it returns)."""

    def __init__(self, script: list[tuple[float, dict[Any, Any]]]) -> None:
        self.script = list(script)
        self.calls: list[dict[str, Any]] = []

    async def getmany(self, *partitions: Any, timeout_ms: int = 0, max_records: int | None = None) -> dict[Any, Any]:
        self.calls.append({"timeout_ms": timeout_ms, "max_records": max_records})
        wait, result = self.script.pop(0)
        if wait:
            await asyncio.sleep(wait)
        return result


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every asyncio.sleep the poll makes (real sleeps elsewhere still happen)."""
    seen: list[float] = []
    real = asyncio.sleep

    async def sleep(delay: float, *args: Any) -> Any:
        seen.append(delay)
        return await real(0)

    monkeypatch.setattr(polling.asyncio, "sleep", sleep)
    return seen


async def test_records_are_returned_in_partition_order_without_sleeping(sleeps: list[float]) -> None:
    consumer = FakeConsumer([(0, {"p0": ["a", "b"], "p1": ["c"]})])
    assert await polling.poll(consumer, timeout_ms=50, max_records=100) == ("a", "b", "c")
    assert consumer.calls == [{"timeout_ms": 50, "max_records": 100}]
    assert sleeps == []


async def test_an_empty_poll_that_waited_is_not_followed_by_a_sleep(
    sleeps: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    consumer = FakeConsumer([(0, {})])
    clock = iter([10.0, 10.05])  # the getmany waited its whole 50 ms
    monkeypatch.setattr(polling, "_now", lambda: next(clock))
    assert await polling.poll(consumer, timeout_ms=50, max_records=None) == ()
    assert sleeps == []


async def test_an_empty_poll_that_returned_early_backs_off_for_the_rest_of_its_timeout(
    sleeps: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    consumer = FakeConsumer([(0, {})])
    clock = iter([10.0, 10.01])  # back after 10 ms of a 50 ms timeout: no real wait
    monkeypatch.setattr(polling, "_now", lambda: next(clock))
    assert await polling.poll(consumer, timeout_ms=50, max_records=None) == ()
    assert sleeps == [pytest.approx(0.04)]


async def test_the_reliable_consumer_subscribes_with_the_long_poll(sleeps: list[float]) -> None:
    """ReliableConsumer.register installs the poll on its FastStream subscriber, with the
    consumer's batch timeout and batch size (no broker needed: nothing connects)."""
    broker = KafkaBroker("127.0.0.1:1")
    consumer = ReliableConsumer(
        name="t",
        topic="lampo.polltest.v1",
        group_id="g",
        pool=lambda: None,  # type: ignore[arg-type,return-value]
        handler=lambda conn, items: None,  # type: ignore[arg-type,return-value]
        broker=broker,
        tracer=None,  # type: ignore[arg-type]
        options=ConsumerOptions(max_records=7, batch_timeout_ms=30),
    )
    consumer.register()
    (subscriber,) = broker.subscribers
    fake = FakeConsumer([(0, {"p0": ["x"]})])
    assert await subscriber.get_msg(fake) == ("x",)
    assert fake.calls == [{"timeout_ms": 30, "max_records": 7}]

    # FastStream's own subscriber, for contrast, sleeps after an empty poll.
    plain = KafkaBroker("127.0.0.1:1").subscriber(
        Topic("t", declare=False), group_id="g", batch=True, batch_timeout_ms=30, ack_policy=AckPolicy.MANUAL
    )
    assert "get_msg" not in vars(plain)
