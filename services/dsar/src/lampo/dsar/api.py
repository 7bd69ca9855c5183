"""The HTTP API, OpenDSR-style: submit a request, read its status, cancel it. Mounted under /v1
beside the consumers; OpenAPI at /v1/openapi.json (to the same callers).

Every route answers named callers only (``lampo.http_auth``, ``LAMPO_API_CLIENTS``): 401 without a
valid credential, 403 for a caller the route does not answer.

- submit: ``staff`` and ``portal``; status: ``staff`` (any request) and the channel that
  submitted it (a portal reads only requests on its own channel: 404 otherwise); cancel, extend,
  retry and the queue (``GET /v1/requests``, by deadline): ``staff``.

A request body is the data of ``dsar.submitted`` (``received_at`` defaults to now); it goes
through the same function as the Kafka and CLI intakes. What a caller cannot vouch for it cannot
claim: the ``channel`` is the caller's name (another one: 403), the recorded
``verification.verified_by`` is the caller's name, and the ``verification.method`` must be one the
caller can give (``VERIFICATIONS``: the portal ``strong_electronic``; staff ``staff``,
``signed_letter``, ``in_person``; another: 403). A request_id already used on another channel is
not answered with that request (409).
"""

import json
from collections.abc import Callable
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, FastAPI, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from lampo.contracts.catalog import DSAR_REQUESTS, parse
from lampo.contracts.dsar import DsarSubmitted
from lampo.contracts.envelope import CloudEvent
from lampo.contracts.errors import ContractViolation
from lampo.dsar import states
from lampo.dsar import view as read_view
from lampo.dsar.coordinator import Coordinator
from lampo.dsar.errors import DsarError, UnknownRequest
from lampo.dsar.package_api import add_package_routes
from lampo.http_auth import Caller, Callers, document_callers, requires
from lampo.tracing import FLOW, PRIVACY, current_traceparent

_STATUS_OF_REASON = {"unknown_request": 404, "not_authorised": 403}

STAFF = "staff"
"""The caller that reads every request and cancels: the staff service, for its people."""
# The verifications each caller can give; a caller not listed can claim none.
VERIFICATIONS: dict[str, frozenset[str]] = {
    "portal": frozenset({"strong_electronic"}),
    STAFF: frozenset({"staff", "signed_letter", "in_person"}),
}


class Cancel(BaseModel):
    by: str | None = None
    """Who cancels, as the calling service names them (default: the caller's name)."""


def may_read(caller: Caller, channel: str) -> bool:
    """Whether ``caller`` may see a request that came in on ``channel``: staff every request, any
    other caller only those on its own channel."""
    return caller.name in (STAFF, channel)


class Extend(BaseModel):
    reason: str = Field(min_length=1, max_length=500)
    by: str | None = Field(default=None, min_length=1, max_length=128)
    """Who extends, as the calling service names them (default: the caller's name)."""


class Retry(BaseModel):
    participant: str = Field(min_length=1, max_length=128)
    by: str | None = Field(default=None, min_length=1, max_length=128)


def _error(status: int, reason: str, detail: str, request: Any = None) -> JSONResponse:
    body: dict[str, Any] = {"error": {"reason": reason, "detail": detail}}
    if request is not None:
        body["request"] = request
    return JSONResponse(jsonable_encoder(body), status_code=status)


class _Refused(Exception):
    """An answer given at once (the transaction it is raised in rolls back)."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(reason)
        self.response = _error(status, reason, detail)


def _own(caller: Caller, row: Any) -> None:
    """A request_id of a request the caller may not see is not answered with that request."""
    if not may_read(caller, row["channel"]):
        raise _Refused(409, "request_id_taken", "request_id: already used on another channel")


async def _body_of(request: Request, caller: Caller) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise _Refused(422, "invalid_json", "body: not a JSON object") from None
    if not isinstance(body, dict):
        raise _Refused(422, "invalid_json", "body: not a JSON object")
    refused = _claim_refused(caller, body)
    if refused:
        raise _Refused(403, "forbidden", refused)
    return body


def _claim_refused(caller: Caller, body: dict[str, Any]) -> str | None:
    """Why ``caller`` may not submit ``body`` as it stands (None: it may); fills in the caller's
    channel and, on a verification, the caller as ``verified_by``."""
    channel = body.setdefault("channel", caller.name)
    if channel != caller.name:
        return f"channel: a caller submits on its own channel only ({caller.name})"
    verification = body.get("verification")
    if isinstance(verification, dict):
        method = verification.get("method")
        known = frozenset().union(*VERIFICATIONS.values())  # an unknown method is the contract's to refuse
        if method in known and method not in VERIFICATIONS.get(caller.name, frozenset()):
            can = ", ".join(sorted(VERIFICATIONS.get(caller.name, ()))) or "none"
            return f"verification.method: the {caller.name} caller cannot give it (it can give: {can})"
        verification["verified_by"] = caller.name
    return None


def create_api(state: dict[str, Any]) -> FastAPI:
    """``state`` holds "coordinator", "pool" and "callers" (set once the runtime exists)."""
    api = FastAPI(
        title="Muuramen Lämpö DSAR API",
        version="1",
        description="Data subject requests (OpenDSR-style): submit, status, cancel.",
        openapi_url=None,  # served below, to the API's callers like every other route
        docs_url=None,
        redoc_url=None,
    )

    def callers() -> Callers:
        c: Callers = state["callers"]
        return c

    Channel = Annotated[Caller, Depends(requires(callers, STAFF, "portal"))]
    StaffOnly = Annotated[Caller, Depends(requires(callers, STAFF))]

    @api.exception_handler(_Refused)
    async def refused(request: Request, e: _Refused) -> JSONResponse:
        return e.response

    def coordinator() -> Coordinator:
        c: Coordinator = state["coordinator"]
        return c

    def pool() -> asyncpg.Pool:
        get: Callable[[], asyncpg.Pool] = state["pool"]
        return get()

    @api.post(
        "/v1/requests",
        status_code=201,
        summary="Submit a data subject request",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/DsarSubmitted"}}},
            }
        },
        responses={
            200: {"description": "request_id already known: the existing request"},
            401: {"description": "no valid credential"},
            403: {"description": "not this caller, or a channel or verification the caller cannot claim"},
            409: {"description": "request_id already used on another channel"},
            422: {"description": "invalid request"},
        },
    )
    async def submit(request: Request, caller: Channel) -> JSONResponse:
        body = await _body_of(request, caller)
        body.setdefault("received_at", coordinator().clock.now().isoformat())
        c = coordinator()
        request_id = body.get("request_id")
        # Under the request's server span (lampo.service instruments the API; the caller's
        # trace context is read there): the span the outbox rows carry on to Kafka.
        with c.tracer.start_as_current_span("dsar submit", attributes={"lampo.channel": caller.name, FLOW: PRIVACY}):
            traceparent = current_traceparent()
            raw = CloudEvent.new("dsar.submitted", "urn:lampo:dsar:api", body).to_bytes()
            try:
                # The very parse of the Kafka intake: the same reasons and details.
                parsed = parse(DSAR_REQUESTS, raw)
            except ContractViolation as violation:
                if not (
                    isinstance(request_id, str)
                    and 0 < len(request_id) <= 128
                    and request_id.isascii()
                    and request_id.isprintable()
                    and " " not in request_id
                ):
                    return _error(422, violation.reason, violation.detail)
                kind = body.get("kind")
                async with pool().acquire() as conn, conn.transaction():
                    row, _ = await c.reject_invalid(
                        conn, request_id=request_id, kind=kind if isinstance(kind, str) else "unknown",
                        reason=violation.reason, detail=violation.detail, channel=caller.name, actor=caller.name,
                        traceparent=traceparent, raw=body,
                    )  # fmt: skip
                    _own(caller, row)
                    view = await c.view(conn, request_id)
                rejection = view["rejection"]
                detail = rejection["detail"] if rejection else f"{violation.detail} ({violation.reason})"
                return _error(422, "invalid", detail, view)

            submitted = parsed.data
            assert isinstance(submitted, DsarSubmitted)
            async with pool().acquire() as conn, conn.transaction():
                row, created = await c.submit(conn, submitted, actor=caller.name, traceparent=traceparent, raw=body)
                _own(caller, row)
                view = await c.view(conn, row["request_id"])
            if created and view["rejection"] is not None and view["rejection"]["reason"] == "invalid":
                return _error(422, "invalid", view["rejection"]["detail"], view)  # refused at intake
        return JSONResponse(jsonable_encoder(view), status_code=201 if created else 200)

    @api.get(
        "/v1/requests",
        summary="The queue: requests by deadline (nearest first), with their participants' status",
        responses={422: {"description": "an unknown status, or a limit or offset out of range"}},
    )
    async def queue(
        caller: StaffOnly,
        status: Annotated[list[str] | None, Query(description="only these states (repeatable)")] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> JSONResponse:
        known = (*states.OPEN_STATUSES, states.FAILED, *states.FINAL_STATUSES)
        if status and not set(status) <= set(known):
            return _error(422, "invalid", f"status: one of {', '.join(known)}")
        async with pool().acquire() as conn:
            page = await read_view.queue(conn, status or None, limit=limit, offset=offset)
        return JSONResponse(jsonable_encoder(page))

    @api.get(
        "/v1/requests/{request_id}",
        summary="A request's status, participants, timings and history",
        responses={
            404: {"description": "unknown request, or not on the caller's channel"},
            409: {"description": "the request cannot be read now"},
        },
    )
    async def status(request_id: str, caller: Channel) -> JSONResponse:
        async with pool().acquire() as conn:
            try:
                view = await coordinator().view(conn, request_id)
            except DsarError as e:
                return _error(_STATUS_OF_REASON.get(e.reason, 409), e.reason, e.detail)
        if not may_read(caller, view["channel"]):  # exactly as if it did not exist: ids are not probed
            unknown = UnknownRequest()
            return _error(404, unknown.reason, unknown.detail)
        return JSONResponse(jsonable_encoder(view))

    @api.post(
        "/v1/requests/{request_id}/cancel",
        summary="Cancel an unfinished request",
        responses={
            400: {"description": "body: not JSON"},
            404: {"description": "unknown request"},
            409: {"description": "the request is finished"},
        },
    )
    async def cancel(request_id: str, caller: StaffOnly, body: Cancel | None = None) -> JSONResponse:
        c = coordinator()
        async with pool().acquire() as conn:
            try:
                async with conn.transaction():
                    await c.cancel(conn, request_id, by=(body.by if body and body.by else caller.name))
            except DsarError as e:
                return _error(_STATUS_OF_REASON.get(e.reason, 409), e.reason, e.detail)
            view = await c.view(conn, request_id)
        return JSONResponse(jsonable_encoder(view))

    refusals: dict[int | str, dict[str, Any]] = {
        400: {"description": "the body is not JSON"},
        404: {"description": "unknown request"}, 409: {"description": "not possible in the request's state"},
    }  # fmt: skip

    @api.post(
        "/v1/requests/{request_id}/extend",
        summary="Extend the deadline by two months, once, with a reason",
        responses=refusals,
    )
    async def extend(request_id: str, body: Extend, caller: StaffOnly) -> JSONResponse:
        c = coordinator()
        async with pool().acquire() as conn:
            try:
                async with conn.transaction():
                    await c.extend(conn, request_id, reason=body.reason, by=body.by or caller.name)
            except DsarError as e:
                return _error(_STATUS_OF_REASON.get(e.reason, 409), e.reason, e.detail)
            view = await c.view(conn, request_id)
        return JSONResponse(jsonable_encoder(view))

    @api.post("/v1/requests/{request_id}/retry", summary="Send a failed participant's task again", responses=refusals)
    async def retry(request_id: str, body: Retry, caller: StaffOnly) -> JSONResponse:
        c = coordinator()
        async with pool().acquire() as conn:
            try:
                async with conn.transaction():
                    await c.retry(conn, request_id, body.participant, by=body.by or caller.name)
            except DsarError as e:
                return _error(_STATUS_OF_REASON.get(e.reason, 409), e.reason, e.detail)
            view = await c.view(conn, request_id)
        return JSONResponse(jsonable_encoder(view))

    add_package_routes(api, state)  # GET /v1/packages/{request_id}, transfer, log

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            schema = get_openapi(title=api.title, version=api.version, description=api.description, routes=api.routes)
            model = DsarSubmitted.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(model.pop("$defs", {}))
            components["DsarSubmitted"] = model
            schema["paths"]["/v1/openapi.json"] = {
                "get": {"summary": "This document", "security": [{"caller": []}],
                        "responses": {"200": {"description": "OpenAPI 3.1"}, "401": {"description": "no valid credential"}}}
            }  # fmt: skip
            api.openapi_schema = document_callers(api, schema)
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]

    @api.get("/v1/openapi.json", include_in_schema=False)
    async def document(caller: Channel) -> JSONResponse:
        return JSONResponse(api.openapi())

    return api
