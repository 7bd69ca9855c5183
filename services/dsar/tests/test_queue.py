"""The staff queue, ``GET /v1/requests``: every request by deadline (the nearest first), filtered by
state, paged, each with its participants' current status and its trace id; staff only."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from dsar_support import START, as_caller, dsar_service, submitted

from lampo.testing import eventually


def client(env: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=env.dsar.runtime.app), base_url="http://dsar")


def by_staff(kind: str, days_ago: int, **extra: Any) -> dict[str, Any]:
    at = START - timedelta(days=days_ago)
    body = submitted(kind, received_at=at, **extra)
    body["channel"] = "staff"
    body["verification"] = {"method": "signed_letter", "verified_by": "staff", "verified_at": at.isoformat()}
    return body


async def test_the_queue_lists_requests_by_deadline_with_their_participants_and_pages(registry) -> None:
    async with dsar_service(registry, participants=["nobody-answers"]) as env, client(env) as http:
        # Received 3, 20 and 10 days ago: due in that order of age (the oldest first).
        newest, oldest, middle = by_staff("access", 3), by_staff("restriction", 20), by_staff("access", 10)
        for body in (newest, oldest, middle):
            registry.add(body["identifiers"]["customer_number"])
            created = await http.post("/v1/requests", json=body, headers=as_caller("staff"))
            assert created.status_code == 201, created.text
        unknown = by_staff("access", 1)  # the registry does not know this customer: rejected, no_match
        assert (await http.post("/v1/requests", json=unknown, headers=as_caller("staff"))).status_code == 201

        async def sent() -> bool:
            page = (await http.get("/v1/requests", params={"status": "in_progress"}, headers=as_caller("staff"))).json()
            ready = len(page["requests"]) == 3 and all(r["participants"] for r in page["requests"])
            return ready and await env.status(unknown["request_id"]) == "rejected"

        await eventually(sent, timeout=30)
        page = (await http.get("/v1/requests", params={"status": "in_progress"}, headers=as_caller("staff"))).json()
        ids = [r["request_id"] for r in page["requests"]]
        assert ids == [oldest["request_id"], middle["request_id"], newest["request_id"]]
        first = page["requests"][0]
        assert first["participants"] == [{"participant": "nobody-answers", "status": "open", "attempt": 1}]
        assert first["kind"] == "restriction" and first["channel"] == "staff" and first["extended"] is None
        assert first["trace_id"] and len(first["trace_id"]) == 32
        assert first["due_at"] < page["requests"][1]["due_at"]
        assert page["next_offset"] is None

        # Every state, two to a page: the rejected one is due last.
        everything: list[str] = []
        offset: int | None = 0
        while offset is not None:
            answer = await http.get("/v1/requests", params={"limit": 2, "offset": offset}, headers=as_caller("staff"))
            assert answer.status_code == 200, answer.text
            everything += [r["request_id"] for r in answer.json()["requests"]]
            offset = answer.json()["next_offset"]
        assert everything == [*ids, unknown["request_id"]]
        rejected = await http.get("/v1/requests", params={"status": "rejected"}, headers=as_caller("staff"))
        assert [r["request_id"] for r in rejected.json()["requests"]] == [unknown["request_id"]]

        extended = await http.post(
            f"/v1/requests/{middle['request_id']}/extend", json={"reason": "many stores"}, headers=as_caller("staff")
        )
        assert extended.status_code == 200, extended.text
        page = (await http.get("/v1/requests", params={"status": "in_progress"}, headers=as_caller("staff"))).json()
        marked = {r["request_id"]: r["extended"] for r in page["requests"]}
        assert marked[middle["request_id"]]["reason"] == "many stores" and marked[oldest["request_id"]] is None
        # Extended by two months: now due last of the three.
        assert [r["request_id"] for r in page["requests"]][-1] == middle["request_id"]


async def test_the_queue_answers_staff_only_and_refuses_an_unknown_state(registry) -> None:
    async with dsar_service(registry, participants=["nobody-answers"]) as env, client(env) as http:
        assert (await http.get("/v1/requests")).status_code == 401
        assert (await http.get("/v1/requests", headers=as_caller("portal"))).status_code == 403
        bad = await http.get("/v1/requests", params={"status": "sleeping"}, headers=as_caller("staff"))
        assert bad.status_code == 422 and bad.json()["error"]["detail"].startswith("status:")
        assert "sleeping" not in bad.json()["error"]["detail"]
        assert (await http.get("/v1/requests", params={"limit": 0}, headers=as_caller("staff"))).status_code == 422
        empty = await http.get("/v1/requests", headers=as_caller("staff"))
        assert empty.status_code == 200 and empty.json() == {"requests": [], "offset": 0, "next_offset": None}
