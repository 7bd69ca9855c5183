"""What staff does with data subject requests, once: ``Desk`` submits, lists and follows them,
approves and denies (the approving role only: ``approve_erasure``, held by the managing director,
who leads erasure handling), extends, retries and cancels (``handle_dsar``). Each call is audited
under the authenticated user's name. The JSON API (``add_routes`` here and api.py) and the staff
console (lampo.staff.console) both call it; each checks the user's role before the call.

An approval or denial is published by this service as ``dsar.approved`` / ``dsar.denied`` on
dsar.requests.v1 through its outbox, whose relay signs it with staff's key (lampo.signing); the
coordinator counts no other. ``approved_by`` / ``denied_by`` is the user's name, never free text.
Extend, retry and cancel go to the coordinator's HTTP API, which answers the staff service.
"""

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any
from urllib.parse import quote

import httpx
from fastapi import Depends, FastAPI, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from lampo.contracts.dsar import DsarApproved, DsarDenied, DsarSubmitted
from lampo.contracts.envelope import CloudEvent
from lampo.messaging import outbox
from lampo.staff.access import Access
from lampo.staff.domain import AuditEntry, Rights
from lampo.staff.errors import Forbidden, InvalidInput, NoMatch, StaffError, UpstreamUnavailable

DSAR_REQUESTS = "dsar.requests.v1"
SOURCE = "urn:lampo:staff"
_REQUEST_ID = re.compile(r"[!-~]{1,128}")
_PARTICIPANT = _REQUEST_ID
AWAITING_APPROVAL = "awaiting_approval"
# The coordinator's states; "unanswered" in a queue filter stands for the first five.
STATUSES = (
    "received", "awaiting_approval", "accepted", "in_progress", "failed",
    "completed", "completed_with_retention", "rejected", "cancelled",
)  # fmt: skip
UNANSWERED = STATUSES[:5]


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


class Desk:
    """Staff's calls about data subject requests. ``access`` gives the bound service layer once the
    runtime's pool exists; ``dsar`` is the coordinator's client (as the staff service itself).
    The caller has checked the user's role; answers of the coordinator come back as (status, JSON),
    a 4xx passed through, an outage or 5xx raised as ``UpstreamUnavailable``."""

    def __init__(self, access: Callable[[], Access], dsar: httpx.AsyncClient, *, interface: str = "http") -> None:
        self._access = access
        self.dsar = dsar
        self.interface = interface  # as the audit log names where a call came from

    def via(self, interface: str) -> "Desk":
        """The same desk, audited as reached through ``interface`` (the console: "console")."""
        return Desk(self._access, self.dsar, interface=interface)

    @property
    def access(self) -> Access:
        return self._access()

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        try:
            response = await self.dsar.request(method, path, **kwargs)  # as itself (its LAMPO_API_TOKEN)
            body = response.json()
        except (httpx.HTTPError, ValueError) as e:
            raise UpstreamUnavailable(f"dsar: {type(e).__name__}") from e
        if response.status_code >= 500:
            raise UpstreamUnavailable(f"dsar answered {response.status_code}")
        return response.status_code, body

    async def submit(
        self, user: Rights, body: Mapping[str, Any], *, note: Mapping[str, str] | None = None
    ) -> tuple[int, Any]:
        """A request the user registers (on the ``staff`` channel unless the body names another),
        through the very intake of ``POST /v1/requests``; audited with its customer number and
        ``note`` (the console: how and by whom the requester was verified)."""
        await self.access.require_commitment(user.username)  # §8: a request names a customer
        body = dict(body)
        body.setdefault("received_at", self.access.clock.now().isoformat())
        body.setdefault("channel", "staff")
        try:
            submitted = DsarSubmitted.model_validate(body)
        except ValidationError as e:
            first = e.errors(include_input=False)[0]
            raise InvalidInput(f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None
        status, answer = await self.call(
            "POST", "/v1/requests", json=submitted.model_dump(mode="json", exclude_none=True)
        )
        await self.access.audit(
            AuditEntry(
                user.username, "dsar_submitted", self.interface, "ok" if status < 300 else f"refused_{status}",
                submitted.identifiers.customer_number,
                tuple(str(c) for c in submitted.categories or ()),
                {**(note or {}), "request_id": submitted.request_id, "kind": submitted.kind},
            )
        )  # fmt: skip
        return status, answer

    async def view(self, user: Rights, request_id: str, *, audited: bool = True) -> tuple[int, Any]:
        """The coordinator's view of one request (no personal data), audited (a page's automatic
        refresh of a view it audited is not: ``audited=False``)."""
        await self.access.require_commitment(user.username)  # §8
        checked(request_id)
        status, answer = await self.call("GET", f"/v1/requests/{quote(request_id, safe='')}")
        if not audited:
            return status, answer
        await self.access.audit(AuditEntry(user.username, "dsar_viewed", self.interface, "ok" if status < 300 else f"refused_{status}",
                                           detail={"request_id": request_id}))  # fmt: skip
        return status, answer

    async def queue(self, user: Rights, statuses: list[str], *, limit: int, offset: int) -> tuple[int, Any]:
        """A page of the queue (the nearest deadline first), audited."""
        await self.access.require_commitment(user.username)  # §8
        unknown = sorted(set(statuses) - set(STATUSES))
        if unknown:
            raise InvalidInput(f"status: one of {', '.join(STATUSES)}")
        status, answer = await self.call(
            "GET", "/v1/requests", params={"status": statuses, "limit": limit, "offset": offset}
        )
        detail = {"status": ",".join(statuses) or "all", "offset": str(offset)}
        await self.access.audit(AuditEntry(user.username, "dsar_listed", self.interface, "ok" if status < 300 else f"refused_{status}",
                                           detail=detail))  # fmt: skip
        return status, answer

    async def awaiting(self, request_id: str) -> None:
        """The request exists and waits for approval (a clear answer now, not a dead letter later)."""
        status, view = await self.call("GET", f"/v1/requests/{quote(request_id, safe='')}")
        if status == 404:
            raise NoMatch("request_id: no such request")
        if status >= 400 or not isinstance(view, dict):
            raise UpstreamUnavailable(f"dsar answered {status}")
        if view.get("status") != AWAITING_APPROVAL:
            raise NotAwaiting(str(view.get("status")))

    async def _decide(self, user: Rights, request_id: str, event: CloudEvent, action: str) -> None:
        if "approve_erasure" not in user.functions:  # the routes checked; a second lock on the door
            raise Forbidden("the user's roles do not include approve_erasure")
        await self.access.audit(AuditEntry(user.username, action, self.interface, "ok", detail={"request_id": request_id}))
        async with self.access.pool.acquire() as conn, conn.transaction():
            await outbox.add(conn, [outbox.OutgoingEvent(DSAR_REQUESTS, request_id, event)])

    async def approve(self, user: Rights, request_id: str) -> Decision:
        """``dsar.approved`` by the user, through the outbox (signed by staff's relay)."""
        checked(request_id)
        await self.awaiting(request_id)
        at = self.access.clock.now()
        data = DsarApproved(request_id=request_id, approved_by=user.username, approved_at=at)
        await self._decide(user, request_id, CloudEvent.new("dsar.approved", SOURCE, data), "dsar_approved")
        return Decision(request_id=request_id, decision="approved", by=user.username, at=at.isoformat())

    async def deny(self, user: Rights, request_id: str, reason: str) -> Decision:
        """``dsar.denied`` by the user, with the reason, through the outbox."""
        checked(request_id)
        reason = reason_of(reason)
        await self.awaiting(request_id)
        at = self.access.clock.now()
        data = DsarDenied(request_id=request_id, denied_by=user.username, reason=reason)
        await self._decide(user, request_id, CloudEvent.new("dsar.denied", SOURCE, data), "dsar_denied")
        return Decision(request_id=request_id, decision="denied", by=user.username, at=at.isoformat())

    async def _forward(self, user: Rights, request_id: str, step: str, body: dict[str, str]) -> tuple[int, Any]:
        checked(request_id)
        status, answer = await self.call(
            "POST", f"/v1/requests/{quote(request_id, safe='')}/{step}", json={**body, "by": user.username}
        )
        outcome = "ok" if status < 300 else f"refused_{status}"
        detail = {"request_id": request_id, **({"participant": body["participant"]} if "participant" in body else {})}
        await self.access.audit(AuditEntry(user.username, f"dsar_{step}", self.interface, outcome, detail=detail))
        return status, answer

    async def extend(self, user: Rights, request_id: str, reason: str) -> tuple[int, Any]:
        return await self._forward(user, request_id, "extend", {"reason": reason_of(reason)})

    async def retry(self, user: Rights, request_id: str, participant: str) -> tuple[int, Any]:
        if not _PARTICIPANT.fullmatch(participant):
            raise InvalidInput("participant: 1-128 printable ASCII characters")
        return await self._forward(user, request_id, "retry", {"participant": participant})

    async def cancel(self, user: Rights, request_id: str) -> tuple[int, Any]:
        return await self._forward(user, request_id, "cancel", {})


def reason_of(value: str) -> str:
    """A reason as ``Reason`` takes it (the console's forms come here without the model)."""
    if not 0 < len(value) <= 500:
        raise InvalidInput("reason: 1-500 characters")
    return value


def checked(request_id: str) -> str:
    if not _REQUEST_ID.fullmatch(request_id):
        raise InvalidInput("request_id: 1-128 printable ASCII characters")
    return request_id


def add_routes(
    api: FastAPI,
    desk: Desk,
    needs: Callable[[str], Callable[..., Awaitable[Rights]]],
) -> None:
    Approver = Annotated[Rights, Depends(needs("approve_erasure"))]
    Handler = Annotated[Rights, Depends(needs("handle_dsar"))]
    RequestId = Annotated[str, Path(max_length=128)]

    @api.post(
        "/v1/dsar/requests/{request_id}/approve", status_code=202, response_model=Decision, responses=ERRORS,
        summary="Approve a request waiting for approval (the approving role): dsar.approved, signed by staff",
    )  # fmt: skip
    async def approve(request_id: RequestId, user: Approver) -> Decision:
        return await desk.approve(user, request_id)

    @api.post(
        "/v1/dsar/requests/{request_id}/deny", status_code=202, response_model=Decision, responses=ERRORS,
        summary="Deny a request waiting for approval (the approving role): dsar.denied, signed by staff",
    )  # fmt: skip
    async def deny(request_id: RequestId, body: Reason, user: Approver) -> Decision:
        return await desk.deny(user, request_id, body.reason)

    @api.post("/v1/dsar/requests/{request_id}/extend", responses=ERRORS, summary="Extend the deadline, with a reason")
    async def extend(request_id: RequestId, body: Reason, user: Handler) -> JSONResponse:
        status, answer = await desk.extend(user, request_id, body.reason)
        return JSONResponse(answer, status_code=status)

    @api.post(
        "/v1/dsar/requests/{request_id}/retry", responses=ERRORS, summary="Send a failed participant's task again"
    )
    async def retry(request_id: RequestId, body: RetryParticipant, user: Handler) -> JSONResponse:
        status, answer = await desk.retry(user, request_id, body.participant)
        return JSONResponse(answer, status_code=status)

    @api.post("/v1/dsar/requests/{request_id}/cancel", responses=ERRORS, summary="Cancel an unfinished request")
    async def cancel(request_id: RequestId, user: Handler) -> JSONResponse:
        status, answer = await desk.cancel(user, request_id)
        return JSONResponse(answer, status_code=status)
