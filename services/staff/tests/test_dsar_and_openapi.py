"""DSARs through the staff API (data protection officer) against the real coordinator, and a
schemathesis run over the OpenAPI document: no 5xx on any generated input, for every role."""

from __future__ import annotations

import asyncio
import socket
import uuid
from typing import Any

import uvicorn
from hypothesis import HealthCheck, given, settings
from schemathesis import openapi
from schemathesis.generation import GenerationMode
from staff_support import ROLES, Suite


async def test_dpo_submits_and_follows_a_dsar(suite: Suite) -> None:
    headers = await suite.as_role("data_protection_officer")
    request_id = str(uuid.uuid4())
    body = {
        "request_id": request_id,
        "kind": "access",
        "identifiers": {"customer_number": suite.customer},
        "verification": {"method": "staff", "verified_by": "dpo", "verified_at": "2026-11-28T08:59:00Z"},
        "categories": ["basic", "contact"],
    }
    r = await suite.client.post("/v1/dsar/requests", json=body, headers=headers)
    assert r.status_code == 201, r.text
    assert r.json()["request_id"] == request_id
    r = await suite.client.get(f"/v1/dsar/requests/{request_id}", headers=headers)
    assert r.status_code == 200 and r.json()["request_id"] == request_id
    assert (await suite.client.get("/v1/dsar/requests/unknown-1", headers=headers)).status_code == 404
    bad = await suite.client.post("/v1/dsar/requests", json={**body, "kind": "everything"}, headers=headers)
    assert bad.status_code == 422 and bad.json()["error"]["detail"].startswith("kind")
    async with suite.staff.runtime.pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT customer_number, categories, detail FROM audit_log WHERE action = 'dsar_submitted' ORDER BY seq DESC LIMIT 1"
        )
    assert row["customer_number"] == suite.customer and list(row["categories"]) == ["basic", "contact"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_no_server_error_on_any_generated_input(suite: Suite) -> None:
    tokens = {role: await suite.token(role) for role in ROLES}
    document = (
        await suite.client.get("/v1/openapi.json", headers={"authorization": f"Bearer {tokens['auditor']}"})
    ).json()
    assert {"/v1/login", "/v1/subjects/{customer_number}", "/v1/dsar/requests", "/v1/users/{username}/unlock"} <= set(
        document["paths"]
    )
    schema = openapi.from_dict(document)
    port = _free_port()
    # The app runs in this event loop (its database pool lives here); the generator, which is
    # synchronous, runs in a thread and calls it over HTTP.
    server = uvicorn.Server(
        uvicorn.Config(suite.staff.runtime.app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event for this
        await asyncio.sleep(0.05)
    failures: list[str] = []

    calls = 0

    def run(operation: object, mode: GenerationMode, who: str | None) -> None:
        headers = {"authorization": f"Bearer {tokens[who]}"} if who else {}

        @settings(max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))  # type: ignore[attr-defined]
        def check(case: Any) -> None:
            nonlocal calls
            response = case.call(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30)
            calls += 1
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} as {who}: {response.status_code}")

        check()

    def fuzz() -> int:
        for result in schema.get_all_operations():
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                for who in (None, *ROLES):
                    run(result.ok(), mode, who)
        return calls

    try:
        calls = await asyncio.to_thread(fuzz)
    finally:
        server.should_exit = True
        await serving
    assert calls > 200
    assert not failures, failures[:10]
