"""Who may call the coordinator's HTTP API, and what a caller may claim: the channel is the caller's,
the recorded verification is the caller's and of a method it can give; a portal sees only its own
requests; only staff cancels."""

from __future__ import annotations

import json
from typing import Any

import httpx
from dsar_support import as_caller, dsar_service, submitted

from lampo.testing import eventually


def client(env: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=env.dsar.runtime.app), base_url="http://dsar")


def http_body(kind: str = "access", method: str = "strong_electronic", **extra: Any) -> dict[str, Any]:
    body = submitted(kind, **extra)
    body.pop("channel")
    body["verification"] = {**body["verification"], "method": method, "verified_by": "somebody-else"}
    return body


async def verification_of(env: Any, request_id: str) -> dict[str, Any] | None:
    async with env.pool.acquire() as conn:
        row = await conn.fetchval("SELECT verification FROM requests WHERE request_id = $1", request_id)
    return None if row is None else json.loads(row) if isinstance(row, str) else dict(row)


async def count(env: Any, request_id: str) -> int:
    async with env.pool.acquire() as conn:
        return int(await conn.fetchval("SELECT count(*) FROM requests WHERE request_id = $1", request_id))


async def test_a_caller_records_its_own_verification_and_claims_only_what_it_can_give(registry) -> None:
    async with dsar_service(registry, participants=["nobody-answers"]) as env, client(env) as http:
        portal_claims_staff = http_body("restriction", method="staff")
        refused = await http.post("/v1/requests", json=portal_claims_staff, headers=as_caller("portal"))
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["detail"].startswith("verification.method")
        assert await count(env, portal_claims_staff["request_id"]) == 0  # nothing stored, nothing answered

        for method in ("signed_letter", "in_person"):
            refused = await http.post("/v1/requests", json=http_body(method=method), headers=as_caller("portal"))
            assert refused.status_code == 403, method

        other_channel = {**http_body(), "channel": "staff"}
        refused = await http.post("/v1/requests", json=other_channel, headers=as_caller("portal"))
        assert refused.status_code == 403 and refused.json()["error"]["detail"].startswith("channel")
        assert await count(env, other_channel["request_id"]) == 0

        # A caller no submit answers (a known one) cannot submit at all.
        assert (await http.post("/v1/requests", json=http_body(), headers=as_caller("billing"))).status_code == 403

        by_portal = http_body()
        created = await http.post("/v1/requests", json=by_portal, headers=as_caller("portal"))
        assert created.status_code == 201 and created.json()["channel"] == "portal"
        verification = await verification_of(env, by_portal["request_id"])
        assert verification is not None
        assert (verification["method"], verification["verified_by"]) == ("strong_electronic", "portal")

        # The privacy centre's other way: a one-time code sent to the address the register holds.
        by_code = http_body(method="email_code")
        created = await http.post("/v1/requests", json=by_code, headers=as_caller("portal"))
        assert created.status_code == 201, created.text
        verification = await verification_of(env, by_code["request_id"])
        assert verification is not None and (verification["method"], verification["verified_by"]) == (
            "email_code",
            "portal",
        )
        refused = await http.post("/v1/requests", json=http_body(method="email_code"), headers=as_caller("staff"))
        assert refused.status_code == 403  # staff verifies otherwise

        by_staff = http_body("restriction", method="signed_letter")
        created = await http.post("/v1/requests", json=by_staff, headers=as_caller("staff"))
        assert created.status_code == 201 and created.json()["channel"] == "staff"
        verification = await verification_of(env, by_staff["request_id"])
        assert verification is not None
        assert (verification["method"], verification["verified_by"]) == ("signed_letter", "staff")
        refused = await http.post(
            "/v1/requests", json=http_body(method="strong_electronic"), headers=as_caller("staff")
        )
        assert refused.status_code == 403


async def test_a_portal_reads_only_its_own_requests_and_only_staff_cancels(registry) -> None:
    async with dsar_service(registry, participants=["nobody-answers"]) as env, client(env) as http:
        mine, theirs = http_body("restriction"), http_body("restriction", method="in_person")
        registry.add(mine["identifiers"]["customer_number"])
        assert (await http.post("/v1/requests", json=mine, headers=as_caller("portal"))).status_code == 201
        assert (await http.post("/v1/requests", json=theirs, headers=as_caller("staff"))).status_code == 201

        own = await http.get(f"/v1/requests/{mine['request_id']}", headers=as_caller("portal"))
        assert own.status_code == 200 and own.json()["request_id"] == mine["request_id"]
        other = await http.get(f"/v1/requests/{theirs['request_id']}", headers=as_caller("portal"))
        unknown = await http.get("/v1/requests/req-none", headers=as_caller("portal"))
        # Another channel's request looks exactly like one that does not exist.
        assert other.status_code == unknown.status_code == 404 and other.json() == unknown.json()
        assert theirs["request_id"] not in other.text
        for rid in (mine["request_id"], theirs["request_id"]):
            assert (await http.get(f"/v1/requests/{rid}", headers=as_caller("staff"))).status_code == 200

        # Sending another channel's request_id again does not answer with that request. (First
        # let the coordinator settle that request: the registry does not know its customer, so it
        # ends rejected, no_match; its history must not grow meanwhile for its own reasons.)
        async def settled() -> bool:
            return await env.status(theirs["request_id"]) == "rejected"

        await eventually(settled, timeout=30)
        history_before = len(
            (await http.get(f"/v1/requests/{theirs['request_id']}", headers=as_caller("staff"))).json()["history"]
        )
        again = await http.post(
            "/v1/requests", json={**theirs, "verification": mine["verification"]}, headers=as_caller("portal")
        )
        assert again.status_code == 409 and theirs["request_id"] not in json.dumps(again.json().get("request", ""))
        after = (await http.get(f"/v1/requests/{theirs['request_id']}", headers=as_caller("staff"))).json()
        assert len(after["history"]) == history_before  # rolled back: nothing recorded

        refused = await http.post(f"/v1/requests/{mine['request_id']}/cancel", headers=as_caller("portal"))
        assert refused.status_code == 403
        assert (await http.post(f"/v1/requests/{mine['request_id']}/cancel")).status_code == 401
        cancelled = await http.post(f"/v1/requests/{mine['request_id']}/cancel", headers=as_caller("staff"))
        assert cancelled.status_code == 200 and cancelled.json()["history"][-1]["actor"] == "staff"

        document = await http.get("/v1/openapi.json", headers=as_caller("portal"))
        assert document.status_code == 200 and "/v1/requests" in document.json()["paths"]
        assert (await http.get("/v1/openapi.json")).status_code == 401
        assert (await http.get("/v1/docs")).status_code == 404  # no open documentation page


async def test_a_registry_that_refuses_the_credential_makes_the_request_wait(registry) -> None:
    body = http_body()
    registry.add(body["identifiers"]["customer_number"])
    async with dsar_service(registry, participants=["nobody-answers"], api_token="not-the-coordinators") as env:
        async with client(env) as http:
            assert (await http.post("/v1/requests", json=body, headers=as_caller("portal"))).status_code == 201

        async def refused() -> bool:
            return registry.refused > 0

        await eventually(refused, timeout=10)
        assert await env.status(body["request_id"]) == "received"  # waits, is not rejected as no_match
