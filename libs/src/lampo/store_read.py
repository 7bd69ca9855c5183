"""A store's read route for the staff service (issue 18): what billing, recordings and the consent
ledger hold on one customer number, so the staff console shows a customer across every store.

``GET /v1/customers/{customer_number}`` (the ``staff`` caller only; 401 without a valid
credential, 403 for another caller). The staff service checks the user's role and audits the read
before it calls; the store answers the service, and only for the categories it holds.

- ``?purpose=legal_claims``: a restricted customer's data is served all the same (GDPR Art. 18(2),
  as the registry does); any other value is a 400 ``{"error": "invalid_purpose", "field": "purpose"}``.
- 200 ``{"customer_number", "store", "restricted", "withheld", "categories": {category: [item]}}``:
  ``withheld`` is true (and every category empty) while the customer is restricted, unless
  ``purpose=legal_claims``.
- 400 ``{"error": "invalid_customer_number", "field": "customer_number"}``; 404 ``{"error": "no_match"}``
  when the store holds nothing under the number.

A store adds routes of its own to the same app (recordings: the audio) with ``read.guard`` in
their ``dependencies``, so the same callers are named in the OpenAPI document.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg
from fastapi import Depends, FastAPI, Request
from fastapi.params import Depends as DependsParam
from fastapi.responses import JSONResponse

from lampo.http_auth import Callers, requires
from lampo.service import Runtime

CUSTOMER_NUMBER = re.compile(r"[!-~]{1,128}")
LEGAL_CLAIMS = "legal_claims"
"""The one purpose for which a restricted customer's data is read (Art. 18(2))."""


@dataclass(frozen=True)
class Held:
    """What a store holds under a customer number."""

    restricted: bool
    categories: dict[str, list[dict[str, Any]]]


Scope = Literal["status", "normal", "legal_claims"]
"""What a reader reads: ``status``: ``restricted`` and the categories held, each empty (nothing
decrypted); ``normal``: the data a normal query sees (no restricted item); ``legal_claims``:
every item, restricted ones included and marked."""

Reader = Callable[[asyncpg.Connection, Runtime, str, Scope], Awaitable[Held | None]]
"""(connection, runtime, customer number, scope) -> what is held, None when nothing is."""


def error(status: int, reason: str, field: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": reason}
    if field:
        body["field"] = field
    return JSONResponse(body, status_code=status)


def plain(value: Any) -> Any:
    """Dates, decimals and the like as JSON text."""
    return json.loads(json.dumps(value, default=str))


def purpose_of(request: Request) -> tuple[bool, JSONResponse | None]:
    """(legal_claims asked, or the 400 answer for any other purpose)."""
    purpose = request.query_params.get("purpose")
    if purpose is not None and purpose != LEGAL_CLAIMS:
        return False, error(400, "invalid_purpose", "purpose")
    return purpose == LEGAL_CLAIMS, None


@dataclass
class ReadApi:
    api: FastAPI
    guard: DependsParam
    """``Depends`` answering the ``staff`` caller only: for a store's own extra routes."""
    current: Callable[[], Runtime]


def store_read_api(store: str, runtime: Runtime | Callable[[], Runtime], read: Reader) -> ReadApi:
    """The read route of ``store`` over ``runtime``'s pool (or a callable returning it, bound late);
    mount ``.api`` at ``/v1/customers``."""
    api = FastAPI(title=f"Muuramen Lämpö {store}: staff reads", openapi_url=None, docs_url=None, redoc_url=None)

    def current() -> Runtime:
        return runtime if isinstance(runtime, Runtime) else runtime()

    callers: list[Callers] = []

    def answered() -> Callers:  # read once the runtime (and its settings) exists
        if not callers:
            callers.append(Callers.of(current().settings))
        return callers[0]

    guard = Depends(requires(answered, "staff"))

    @api.get(
        "/v1/customers/{customer_number}",
        dependencies=[guard],
        responses={
            400: {"description": "invalid customer number or purpose"},
            401: {"description": "no valid credential"},
            403: {"description": "not the staff service"},
            404: {"description": "nothing held under this customer number"},
        },
    )
    async def read_customer(customer_number: str, request: Request) -> JSONResponse:
        if not CUSTOMER_NUMBER.fullmatch(customer_number):
            return error(400, "invalid_customer_number", "customer_number")
        legal_claims, refused = purpose_of(request)
        if refused is not None:
            return refused
        rt = current()
        async with rt.pool.acquire() as conn:
            held = await read(conn, rt, customer_number, "status")
            if held is None:
                return error(404, "no_match")
            withheld = held.restricted and not legal_claims
            if not withheld:  # stored, not used: a withheld customer's data is not even read
                scope: Scope = "legal_claims" if legal_claims else "normal"
                held = await read(conn, rt, customer_number, scope) or held
        return JSONResponse(
            plain(
                {
                    "customer_number": customer_number,
                    "store": store,
                    "restricted": held.restricted,
                    "withheld": withheld,
                    "categories": held.categories,
                }
            )
        )

    return ReadApi(api, guard, current)
