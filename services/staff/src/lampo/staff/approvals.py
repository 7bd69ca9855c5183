"""Staff routes that decide a data subject request: approve, deny (the approving role only:
``approve_erasure``, held by the managing director, who leads erasure handling), extend, retry
and cancel (``handle_dsar``). Each is audited under the authenticated user's name.

An approval or denial is published by this service as ``dsar.approved`` / ``dsar.denied`` on
dsar.requests.v1 through its outbox, whose relay signs it with staff's key (lampo.signing); the
coordinator counts no other. ``approved_by`` / ``denied_by`` is the user's name, never free text.
Extend, retry and cancel go to the coordinator's HTTP API, which answers the staff service.
"""

import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import quote

import httpx
from fastapi import Depends, FastAPI, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from lampo.contracts.dsar import DsarApproved, DsarDenied
from lampo.contracts.envelope import CloudEvent
from lampo.messaging import outbox
from lampo.staff.access import Access
from lampo.staff.domain import AuditEntry, Rights
from lampo.staff.errors import InvalidInput, NoMatch, StaffError, UpstreamUnavailable

DSAR_REQUESTS = "dsar.requests.v1"
SOURCE = "urn:lampo:staff"
_REQUEST_ID = re.compile(r"[!-~]{1,128}")
AWAITING_APPROVAL = "awaiting_approval"


class Reason(BaseModel):
    reason: str = Field(min_length=1, max_length=500, description="why (kept with the request; no personal data)")


class RetryParticipant(BaseModel):
    participant: str = Field(min_length=1, max_length=128, pattern=r"^[!-~]+$")


class Decision(BaseModel):
    request_id: str
    decision: str
    by: str
    at: str


class NotAwaiting(StaffError):
    status = 409
    reason = "wrong_state"

    def __init__(self, status: str) -> None:
        super().__init__(f"request_id: the request is {status}, not awaiting approval")


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no valid token"},
    403: {"description": "the user's roles do not allow this"},
    404: {"description": "unknown request"},
    409: {"description": "the request is not in a state that allows this"},
    422: {"description": "invalid input"},
    503: {"description": "DSAR service unreachable"},
}


def add_routes(
    api: FastAPI,
    access: Callable[[], Access],
    needs: Callable[[str], Callable[..., Awaitable[Rights]]],
    dsar: httpx.AsyncClient,
) -> None:
    Approver = Annotated[Rights, Depends(needs("approve_erasure"))]
    Handler = Annotated[Rights, Depends(needs("handle_dsar"))]
    RequestId = Annotated[str, Path(max_length=128)]

    def checked(request_id: str) -> str:
        if not _REQUEST_ID.fullmatch(request_id):
            raise InvalidInput("request_id: 1-128 printable ASCII characters")
        return request_id

    async def call(method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        try:
            response = await dsar.request(method, path, **kwargs)  # as itself (its LAMPO_API_TOKEN)
            body = response.json()
        except (httpx.HTTPError, ValueError) as e:
            raise UpstreamUnavailable(f"dsar: {type(e).__name__}") from e
        if response.status_code >= 500:
            raise UpstreamUnavailable(f"dsar answered {response.status_code}")
        return response.status_code, body

    async def awaiting(request_id: str) -> None:
        """The request exists and waits for approval (a clear answer now, not a dead letter later)."""
        status, view = await call("GET", f"/v1/requests/{quote(request_id, safe='')}")
        if status == 404:
            raise NoMatch("request_id: no such request")
        if status >= 400 or not isinstance(view, dict):
            raise UpstreamUnavailable(f"dsar answered {status}")
        if view.get("status") != AWAITING_APPROVAL:
            raise NotAwaiting(str(view.get("status")))

    async def decide(user: Rights, request_id: str, event: CloudEvent, action: str, detail: dict[str, str]) -> None:
        await access().audit(
            AuditEntry(user.username, action, "http", "ok", detail={"request_id": request_id, **detail})
        )
        async with access().pool.acquire() as conn, conn.transaction():
            await outbox.add(conn, [outbox.OutgoingEvent(DSAR_REQUESTS, request_id, event)])

    @api.post(
        "/v1/dsar/requests/{request_id}/approve", status_code=202, response_model=Decision, responses=ERRORS,
        summary="Approve a request waiting for approval (the approving role): dsar.approved, signed by staff",
    )  # fmt: skip
    async def approve(request_id: RequestId, user: Approver) -> Decision:
        checked(request_id)
        await awaiting(request_id)
        at = access().clock.now()
        data = DsarApproved(request_id=request_id, approved_by=user.username, approved_at=at)
        await decide(user, request_id, CloudEvent.new("dsar.approved", SOURCE, data), "dsar_approved", {})
        return Decision(request_id=request_id, decision="approved", by=user.username, at=at.isoformat())

    @api.post(
        "/v1/dsar/requests/{request_id}/deny", status_code=202, response_model=Decision, responses=ERRORS,
        summary="Deny a request waiting for approval (the approving role): dsar.denied, signed by staff",
    )  # fmt: skip
    async def deny(request_id: RequestId, body: Reason, user: Approver) -> Decision:
        checked(request_id)
        await awaiting(request_id)
        at = access().clock.now()
        data = DsarDenied(request_id=request_id, denied_by=user.username, reason=body.reason)
        await decide(user, request_id, CloudEvent.new("dsar.denied", SOURCE, data), "dsar_denied", {})
        return Decision(request_id=request_id, decision="denied", by=user.username, at=at.isoformat())

    async def forward(user: Rights, request_id: str, step: str, body: dict[str, str]) -> JSONResponse:
        checked(request_id)
        status, answer = await call(
            "POST", f"/v1/requests/{quote(request_id, safe='')}/{step}", json={**body, "by": user.username}
        )
        outcome = "ok" if status < 300 else f"refused_{status}"
        detail = {"request_id": request_id, **({"participant": body["participant"]} if "participant" in body else {})}
        await access().audit(AuditEntry(user.username, f"dsar_{step}", "http", outcome, detail=detail))
        return JSONResponse(answer, status_code=status)

    @api.post("/v1/dsar/requests/{request_id}/extend", responses=ERRORS, summary="Extend the deadline, with a reason")
    async def extend(request_id: RequestId, body: Reason, user: Handler) -> JSONResponse:
        return await forward(user, request_id, "extend", {"reason": body.reason})

    @api.post(
        "/v1/dsar/requests/{request_id}/retry", responses=ERRORS, summary="Send a failed participant's task again"
    )
    async def retry(request_id: RequestId, body: RetryParticipant, user: Handler) -> JSONResponse:
        return await forward(user, request_id, "retry", {"participant": body.participant})

    @api.post("/v1/dsar/requests/{request_id}/cancel", responses=ERRORS, summary="Cancel an unfinished request")
    async def cancel(request_id: RequestId, user: Handler) -> JSONResponse:
        return await forward(user, request_id, "cancel", {})
