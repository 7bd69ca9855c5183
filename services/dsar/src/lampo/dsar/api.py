"""The HTTP API, OpenDSR-style: submit a request, read its status, cancel it. Mounted under /v1
beside the consumers; OpenAPI at /v1/openapi.json. Bound to 127.0.0.1 until authentication lands.

A request body is the data of ``dsar.submitted`` (``received_at`` defaults to now and
``channel`` to ``api``); it goes through the same function as the Kafka and CLI intakes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from opentelemetry.trace import SpanKind
from pydantic import BaseModel, Field

from lampo.contracts.catalog import DSAR_REQUESTS, parse
from lampo.contracts.dsar import DsarSubmitted
from lampo.contracts.envelope import CloudEvent
from lampo.contracts.errors import ContractViolation
from lampo.dsar.coordinator import Coordinator
from lampo.dsar.errors import DsarError
from lampo.tracing import context_from_headers, current_traceparent

_STATUS_OF_REASON = {"unknown_request": 404, "not_authorised": 403}


class Cancel(BaseModel):
    by: str = "api"


class Extend(BaseModel):
    reason: str = Field(min_length=1, max_length=500)
    by: str = Field(default="api", min_length=1, max_length=128)


class Retry(BaseModel):
    participant: str = Field(min_length=1, max_length=128)
    by: str = Field(default="api", min_length=1, max_length=128)


def _error(status: int, reason: str, detail: str, request: Any = None) -> JSONResponse:
    body: dict[str, Any] = {"error": {"reason": reason, "detail": detail}}
    if request is not None:
        body["request"] = request
    return JSONResponse(jsonable_encoder(body), status_code=status)


def create_api(state: dict[str, Any]) -> FastAPI:
    """``state`` holds "coordinator" and "pool" (set once the runtime exists)."""
    api = FastAPI(
        title="Muuramen Lämpö DSAR API",
        version="1",
        description="Data subject requests (OpenDSR-style): submit, status, cancel.",
        openapi_url="/v1/openapi.json",
        docs_url="/v1/docs",
        redoc_url=None,
    )

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
            422: {"description": "invalid request"},
        },
    )
    async def submit(request: Request) -> JSONResponse:
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            return _error(422, "invalid_json", "body: not a JSON object")
        if not isinstance(body, dict):
            return _error(422, "invalid_json", "body: not a JSON object")
        body.setdefault("received_at", coordinator().clock.now().isoformat())
        body.setdefault("channel", "api")
        c = coordinator()
        parent = context_from_headers(dict(request.headers))
        with c.tracer.start_as_current_span(
            "dsar submit", context=parent, kind=SpanKind.SERVER, attributes={"lampo.channel": "api"}
        ):
            traceparent = current_traceparent()
            raw = CloudEvent.new("dsar.submitted", "urn:lampo:dsar:api", body).to_bytes()
            try:
                # The very parse of the Kafka intake: the same reasons and details.
                parsed = parse(DSAR_REQUESTS, raw)
            except ContractViolation as violation:
                request_id = body.get("request_id")
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
                    await c.reject_invalid(
                        conn, request_id=request_id, kind=kind if isinstance(kind, str) else "unknown",
                        reason=violation.reason, detail=violation.detail, channel="api", actor="api", traceparent=traceparent,
                    )  # fmt: skip
                    view = await c.view(conn, request_id)
                return _error(422, "invalid", f"{violation.detail} ({violation.reason})", view)

            submitted = parsed.data
            assert isinstance(submitted, DsarSubmitted)
            async with pool().acquire() as conn, conn.transaction():
                row, created = await c.submit(conn, submitted, actor="api", traceparent=traceparent)
                view = await c.view(conn, row["request_id"])
        return JSONResponse(jsonable_encoder(view), status_code=201 if created else 200)

    @api.get("/v1/requests/{request_id}", summary="A request's status, participants, timings and history")
    async def status(request_id: str) -> JSONResponse:
        async with pool().acquire() as conn:
            try:
                view = await coordinator().view(conn, request_id)
            except DsarError as e:
                return _error(_STATUS_OF_REASON.get(e.reason, 409), e.reason, e.detail)
        return JSONResponse(jsonable_encoder(view))

    @api.post("/v1/requests/{request_id}/cancel", summary="Cancel an unfinished request")
    async def cancel(request_id: str, body: Cancel | None = None) -> JSONResponse:
        c = coordinator()
        async with pool().acquire() as conn:
            try:
                async with conn.transaction():
                    await c.cancel(conn, request_id, by=(body or Cancel()).by)
            except DsarError as e:
                return _error(_STATUS_OF_REASON.get(e.reason, 409), e.reason, e.detail)
            view = await c.view(conn, request_id)
        return JSONResponse(jsonable_encoder(view))

    @api.post("/v1/requests/{request_id}/extend", summary="Extend the deadline by two months, once, with a reason")
    async def extend(request_id: str, body: Extend) -> JSONResponse:
        c = coordinator()
        async with pool().acquire() as conn:
            try:
                async with conn.transaction():
                    await c.extend(conn, request_id, reason=body.reason, by=body.by)
            except DsarError as e:
                return _error(_STATUS_OF_REASON.get(e.reason, 409), e.reason, e.detail)
            view = await c.view(conn, request_id)
        return JSONResponse(jsonable_encoder(view))

    @api.post("/v1/requests/{request_id}/retry", summary="Send a failed participant's task again")
    async def retry(request_id: str, body: Retry) -> JSONResponse:
        c = coordinator()
        async with pool().acquire() as conn:
            try:
                async with conn.transaction():
                    await c.retry(conn, request_id, body.participant, by=body.by)
            except DsarError as e:
                return _error(_STATUS_OF_REASON.get(e.reason, 409), e.reason, e.detail)
            view = await c.view(conn, request_id)
        return JSONResponse(jsonable_encoder(view))

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            schema = get_openapi(title=api.title, version=api.version, description=api.description, routes=api.routes)
            model = DsarSubmitted.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(model.pop("$defs", {}))
            components["DsarSubmitted"] = model
            api.openapi_schema = schema
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]
    return api
