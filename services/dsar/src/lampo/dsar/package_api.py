"""The package's address: ``GET /v1/packages/{request_id}`` streams the ZIP to the request's
channel (its own credential) or to staff, until the package expires or its subject is erased
(then 410); ``POST /v1/packages/{request_id}/transfer`` sends a portability package to another
controller (staff only); ``GET /v1/packages/{request_id}/log`` is its audit trail (staff only).
Every answer but 401 is recorded in ``package_log`` (lampo.dsar.packages)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg
from fastapi import Depends, FastAPI
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from lampo.dsar import packages
from lampo.dsar.coordinator import Coordinator
from lampo.dsar.errors import DsarError
from lampo.http_auth import Caller, Callers, requires

_STATUS_OF_REASON = {
    "unknown_request": 404,
    "no_package": 404,
    "forbidden": 403,
    "gone": 410,
    "invalid": 422,
    "outside_eu_eea": 422,
    "wrong_kind": 409,
}


class TransferOrder(BaseModel):
    """Where the subject asked the portability package to be sent."""

    to: str = Field(description="the receiving controller's https:// address; the ZIP is POSTed there")
    country: str = Field(
        min_length=2, max_length=2, description="the receiving controller's country (ISO 3166-1 alpha-2): EU/EEA only"
    )


def _error(e: DsarError) -> JSONResponse:
    return JSONResponse(
        {"error": {"reason": e.reason, "detail": e.detail}}, status_code=_STATUS_OF_REASON.get(e.reason, 409)
    )


def add_package_routes(router: FastAPI, state: dict[str, Any]) -> None:
    """The package routes, on the coordinator's API itself (not an included router: FastAPI
    includes those lazily, out of the reach of ``lampo.http_auth.document_callers``, so their
    callers would go undocumented). ``state`` holds "coordinator" and "pool", as for the rest."""
    found: list[Callers] = []

    def coordinator() -> Coordinator:
        c: Coordinator = state["coordinator"]
        return c

    def pool() -> asyncpg.Pool:
        get: Callable[[], asyncpg.Pool] = state["pool"]
        return get()

    def callers() -> Callers:
        if not found:
            found.append(Callers.of(coordinator().settings))
        return found[0]

    # Dependencies as defaults: these are local, so string annotations could not name them.
    # A package is the request's channel's (the portal, the only outside channel that submits)
    # or staff's; which request is whose is checked inside (lampo.dsar.packages).
    known = Depends(requires(callers, packages.STAFF, "portal"))
    staff = Depends(requires(callers, packages.STAFF))

    @router.get(
        "/v1/packages/{request_id}",
        summary="Fetch an access or portability package (ZIP), as the request's channel or staff",
        response_class=StreamingResponse,
        responses={
            200: {"content": {"application/zip": {}}, "description": "the package"},
            401: {"description": "no credential"},
            403: {"description": "neither the request's channel nor staff"},
            404: {"description": "no such request, or it has no package"},
            410: {"description": "the package expired or its subject was erased: destroyed"},
        },
    )
    async def fetch(request_id: str, caller: Caller = known) -> Response:
        c = coordinator()
        try:
            opened = await packages.open_package(
                pool, c.keys, request_id, caller=caller.name, action="fetch", now=c.clock.now()
            )
        except DsarError as e:
            return _error(e)
        return StreamingResponse(
            opened.chunks(),
            media_type="application/zip",
            headers={
                "content-length": str(opened.size),
                "content-disposition": f'attachment; filename="{request_id}.zip"',
                "cache-control": "no-store",
                "x-content-sha256": opened.sha256,
            },
        )

    @router.post(
        "/v1/packages/{request_id}/transfer",
        summary="Send a portability package to another controller (Art. 20(2)), at the subject's request",
        responses={
            400: {"description": "the body is not JSON"},
            401: {"description": "no credential"},
            403: {"description": "not staff"},
            409: {"description": "not a portability request"},
            410: {"description": "the package was destroyed"},
            422: {"description": "not an https:// address, or a recipient outside the EU/EEA"},
            502: {"description": "the receiving controller did not accept it (recorded)"},
        },
    )
    async def transfer(request_id: str, order: TransferOrder, caller: Caller = staff) -> JSONResponse:
        c = coordinator()
        try:
            done = await packages.transfer(
                pool, c.keys, c.settings, request_id, to=order.to, country=order.country, by=caller.name,
                now=c.clock.now,
            )  # fmt: skip
        except DsarError as e:
            return _error(e)
        return JSONResponse(done.as_dict(), status_code=200 if done.outcome == "delivered" else 502)

    @router.get("/v1/packages/{request_id}/log", summary="Who fetched, transferred or destroyed a package, and when")
    async def log(request_id: str, caller: Caller = staff) -> JSONResponse:
        async with pool().acquire() as conn:
            rows = await packages.PackageStore(conn).log_of(request_id)
        return JSONResponse(jsonable_encoder({"request_id": request_id, "log": [dict(r) for r in rows]}))
