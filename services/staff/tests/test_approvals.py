"""Approval by an authenticated person with the approving role (issue 16): the staff API's
approve and deny routes answer 401 without a login and 403 without the managing director's
role; the managing director's approval is published signed by staff, the coordinator takes
it (approved_by is the user's name) and the request completes. Extend and cancel are audited."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import uuid
from pathlib import Path
from typing import Any

import uvicorn
from staff_support import Suite, password

from lampo.testing import eventually


def erasure(suite: Suite) -> dict[str, Any]:
    return {
        "request_id": str(uuid.uuid4()),
        "kind": "erasure",
        "identifiers": {"customer_number": suite.customer},
        "verification": {"method": "staff", "verified_by": "dpo", "verified_at": "2026-11-28T08:59:00Z"},
    }


async def managing_director(suite: Suite) -> tuple[str, dict[str, str]]:
    if "managing_director" not in suite.users:
        username, secret = "toimitus.johtaja", password()
        r = await suite.client.post(
            "/v1/users",
            json={"username": username, "password": secret, "roles": ["managing_director"]},
            headers=await suite.as_role("administrator"),
        )
        assert r.status_code == 201, r.text
        suite.users["managing_director"] = (username, secret)
    return suite.users["managing_director"][0], await suite.as_role("managing_director")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def status_of(suite: Suite, request_id: str, headers: dict[str, str]) -> dict[str, Any]:
    r = await suite.client.get(f"/v1/dsar/requests/{request_id}", headers=headers)
    assert r.status_code == 200, r.text
    view: dict[str, Any] = r.json()
    return view


async def audited(suite: Suite, action: str, request_id: str) -> list[Any]:
    async with suite.staff.runtime.pool.acquire() as conn:
        return await conn.fetch(  # type: ignore[no-any-return]
            "SELECT actor, outcome FROM audit_log WHERE action = $1 AND strpos(detail::text, $2) > 0 ORDER BY seq",
            action,
            request_id,
        )


async def submitted_and_waiting(suite: Suite, dpo: dict[str, str]) -> str:
    body = erasure(suite)
    r = await suite.client.post("/v1/dsar/requests", json=body, headers=dpo)
    assert r.status_code == 201, r.text
    await eventually(lambda: _is(suite, body["request_id"], dpo, "awaiting_approval"))
    return str(body["request_id"])


async def _is(suite: Suite, request_id: str, headers: dict[str, str], status: str) -> bool:
    return (await status_of(suite, request_id, headers))["status"] == status


async def test_only_the_managing_director_approves_and_the_approved_erasure_completes(suite: Suite) -> None:
    dpo = await suite.as_role("data_protection_officer")
    request_id = await submitted_and_waiting(suite, dpo)
    route = f"/v1/dsar/requests/{request_id}/approve"

    assert (await suite.client.post(route)).status_code == 401
    for role in ("data_protection_officer", "customer_service", "administrator"):
        r = await suite.client.post(route, headers=await suite.as_role(role))
        assert r.status_code == 403, (role, r.text)
    assert (await status_of(suite, request_id, dpo))["status"] == "awaiting_approval"

    username, md = await managing_director(suite)
    r = await suite.client.post(route, headers=md)
    assert r.status_code == 202, r.text
    assert r.json()["by"] == username

    done = await eventually(lambda: _is(suite, request_id, dpo, "completed"), timeout=60)
    assert done
    view = await status_of(suite, request_id, dpo)
    assert view["approved_by"] == username  # the authenticated user's name, not free text
    assert [tuple(row) for row in await audited(suite, "dsar_approved", request_id)] == [(username, "ok")]
    again = await suite.client.post(route, headers=md)
    assert again.status_code == 409 and again.json()["error"]["reason"] == "wrong_state"


async def test_the_managing_director_denies_and_the_request_is_rejected(suite: Suite) -> None:
    dpo = await suite.as_role("data_protection_officer")
    request_id = await submitted_and_waiting(suite, dpo)
    username, md = await managing_director(suite)
    route = f"/v1/dsar/requests/{request_id}/deny"
    assert (await suite.client.post(route, json={"reason": "identity in doubt"})).status_code == 401
    assert (await suite.client.post(route, json={"reason": "x"}, headers=dpo)).status_code == 403
    assert (await suite.client.post(route, json={}, headers=md)).status_code == 422
    r = await suite.client.post(route, json={"reason": "identity in doubt"}, headers=md)
    assert r.status_code == 202, r.text
    await eventually(lambda: _is(suite, request_id, dpo, "rejected"), timeout=30)
    assert [tuple(row) for row in await audited(suite, "dsar_denied", request_id)] == [(username, "ok")]
    unknown = await suite.client.post("/v1/dsar/requests/no-such-request/approve", headers=md)
    assert unknown.status_code == 404


async def test_extend_and_cancel_go_to_the_coordinator_audited_under_the_users_name(suite: Suite) -> None:
    dpo = await suite.as_role("data_protection_officer")
    dpo_name = suite.users["data_protection_officer"][0]
    request_id = await submitted_and_waiting(suite, dpo)
    base = f"/v1/dsar/requests/{request_id}"
    assert (await suite.client.post(f"{base}/extend", json={"reason": "complex"})).status_code == 401
    clerk = await suite.as_role("billing_clerk")
    assert (await suite.client.post(f"{base}/cancel", headers=clerk)).status_code == 403

    r = await suite.client.post(f"{base}/extend", json={"reason": "many systems to search"}, headers=dpo)
    assert r.status_code == 200, r.text
    assert r.json()["extended"]["by"] == dpo_name
    twice = await suite.client.post(f"{base}/extend", json={"reason": "again"}, headers=dpo)
    assert twice.status_code == 409
    r = await suite.client.post(f"{base}/retry", json={"participant": "registry"}, headers=dpo)
    assert r.status_code == 409  # nothing failed: nothing to retry
    r = await suite.client.post(f"{base}/cancel", headers=dpo)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"

    assert [tuple(row) for row in await audited(suite, "dsar_extend", request_id)] == [
        (dpo_name, "ok"), (dpo_name, "refused_409"),
    ]  # fmt: skip
    assert [tuple(row) for row in await audited(suite, "dsar_retry", request_id)] == [(dpo_name, "refused_409")]
    assert [tuple(row) for row in await audited(suite, "dsar_cancel", request_id)] == [(dpo_name, "ok")]


async def test_the_cli_approves_through_the_staff_service_with_the_operators_account(suite: Suite) -> None:
    """`lampo admin approve` logs in as the operator: a wrong password or a missing role is one
    line and exit 1 (no traceback, nothing published); the managing director's approval counts."""
    dpo = await suite.as_role("data_protection_officer")
    request_id = await submitted_and_waiting(suite, dpo)
    username, _ = await managing_director(suite)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(suite.staff.runtime.app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event for this
        await asyncio.sleep(0.05)

    async def lampo(user: str, secret: str) -> tuple[int, str]:
        env = {**os.environ, "LAMPO_STAFF_URL": f"http://127.0.0.1:{port}", "LAMPO_STAFF_PASSWORD": secret}
        process = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).with_name("lampo")), "admin", "approve", request_id, "--user", user,
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await process.communicate()
        return process.returncode or 0, out.decode()

    try:
        code, out = await lampo(username, "not-the-password")
        assert code == 1 and "Traceback" not in out and "refused (invalid_credentials)" in out, out
        code, out = await lampo(*suite.users["data_protection_officer"])
        assert code == 1 and "Traceback" not in out and "refused (forbidden)" in out, out
        assert (await status_of(suite, request_id, dpo))["status"] == "awaiting_approval"
        code, out = await lampo(*suite.users["managing_director"])
        assert code == 0 and f"approved {request_id} by {username}" in out, out
    finally:
        server.should_exit = True
        await serving
    await eventually(lambda: _is(suite, request_id, dpo, "completed"), timeout=60)
