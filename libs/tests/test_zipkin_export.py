"""Spans reach the local Zipkin (deploy/local/zipkin.sh, started by `make infra`) through the
provider every service gets, and come back by trace id from Zipkin's query API."""

from __future__ import annotations

import os

import httpx
import pytest

from lampo.testing import eventually, unique
from lampo.tracing import make_tracer_provider

ZIPKIN = os.environ.get("LAMPO_ZIPKIN_URL", "http://127.0.0.1:9411")


def zipkin_up() -> bool:
    try:
        return httpx.get(f"{ZIPKIN}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.integration
async def test_a_span_is_exported_to_zipkin_and_read_back_by_trace_id() -> None:
    if not zipkin_up():
        pytest.skip(f"Zipkin is not running on {ZIPKIN} (start it: deploy/local/zipkin.sh start, or make infra)")
    service = unique("lampo-zipkin-test")
    provider = make_tracer_provider(service, zipkin_endpoint=f"{ZIPKIN}/api/v2/spans")
    tracer = provider.get_tracer("lampo.test")
    with (
        tracer.start_as_current_span("registry.inbound.v1 process", attributes={"messaging.system": "kafka"}),
        tracer.start_as_current_span("child") as child,
    ):
        trace_id = format(child.get_span_context().trace_id, "032x")
    assert provider.force_flush(10_000)

    async with httpx.AsyncClient(base_url=ZIPKIN, timeout=5) as client:

        async def fetched() -> list[dict[str, object]] | None:
            response = await client.get(f"/api/v2/trace/{trace_id}")
            return response.json() if response.status_code == 200 else None

        spans = await eventually(fetched, timeout=15, interval=0.2)
        services = await client.get("/api/v2/services")
    provider.shutdown()

    assert {s["name"] for s in spans} == {"registry.inbound.v1 process", "child"}
    assert {s["traceId"] for s in spans} == {trace_id}
    assert all(s["localEndpoint"]["serviceName"] == service for s in spans)  # type: ignore[index]
    assert service in services.json()
