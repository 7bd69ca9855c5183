"""The coordinator's own consumer of dsar.requests.v1 (a ReliableConsumer subclass that also
answers invalid requests) counts like every other consumer: on /metrics and in /health/ready.
Found by the replay fault test (tests/faults/test_replay.py): it read no duplicates there."""

from __future__ import annotations

import re

import httpx
from dsar_support import dsar_service, event, for_request, submitted

from lampo.contracts.catalog import DSAR_EVENTS, DSAR_REQUESTS
from lampo.testing import Producer, TopicReader, eventually


def counter(metrics: str, name: str, topic: str) -> float | None:
    match = re.search(rf'^{name}\{{[^}}]*topic="{re.escape(topic)}"[^}}]*\}} (\S+)$', metrics, re.M)
    return float(match.group(1)) if match else None


async def test_the_requests_consumer_is_on_metrics_and_in_readiness(registry) -> None:
    body = submitted("restriction")
    registry.add(body["identifiers"]["customer_number"])
    rid = body["request_id"]
    request = event("dsar.submitted", body)
    async with (
        dsar_service(registry, participants=["nobody-answers"]) as env,
        TopicReader(DSAR_EVENTS) as events,
        Producer() as producer,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=env.dsar.runtime.app), base_url="http://dsar") as http,
    ):
        await producer.send(DSAR_REQUESTS, rid, request)
        await events.wait_for(for_request(rid, "dsar.accepted"))
        await producer.send(DSAR_REQUESTS, rid, request)  # redelivered: a duplicate

        async def counted() -> str | None:
            text = (await http.get("/metrics")).text
            return text if counter(text, "lampo_consumer_duplicates_total", DSAR_REQUESTS) == 1 else None

        metrics = await eventually(counted, timeout=20, interval=0.3)
        ready = (await http.get("/health/ready")).json()

    assert counter(metrics, "lampo_consumer_processed_total", DSAR_REQUESTS) == 1
    assert ready["consumers"]["total"] == len(env.dsar.runtime.consumers)
