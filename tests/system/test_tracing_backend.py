"""Operators open a DSAR's trace in the tracing backend by its trace_id: after an erasure, the
backend's own HTTP API returns spans of the coordinator and of every participant."""

from __future__ import annotations

import uuid

import httpx
import pytest
from suite import ZIPKIN, zipkin_running

from lampo.contracts.catalog import DSAR_EVENTS
from lampo.synthetic import approve, new_customer, outcome, seed, submit, submitted
from lampo.testing import TopicReader, eventually

EXPECTED = {"lampo-dsar", "lampo-registry", "lampo-billing", "lampo-recordings", "lampo-consent"}


async def test_an_erasure_trace_is_fetched_from_zipkin_by_its_trace_id(suite, require) -> None:
    require("dsar", "registry", "billing", "recordings", "consent")
    if not zipkin_running():
        pytest.skip(f"no Zipkin at {ZIPKIN} (make infra starts it: deploy/local/zipkin.sh)")
    customer = new_customer()
    await seed(suite.urls, customer)
    async with TopicReader(DSAR_EVENTS) as events:
        request_id = await submit(
            submitted("erasure", customer.number), traceparent=f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"
        )
        await outcome(events, request_id, "dsar.awaiting_approval")
        await approve(request_id)
        completed = await outcome(events, request_id, "dsar.completed", timeout=120)
    trace_id = completed["data"]["trace_id"]
    assert trace_id

    async def services_in_trace() -> set[str] | None:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{ZIPKIN}/api/v2/trace/{trace_id}", timeout=5)
        if response.status_code != 200:
            return None
        found = {span.get("localEndpoint", {}).get("serviceName", "") for span in response.json()}
        return found if found >= EXPECTED else None

    found = await eventually(services_in_trace, timeout=30, interval=1.0)
    assert found >= EXPECTED
