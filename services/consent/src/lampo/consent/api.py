"""The privacy centre's consent API (the ``portal`` caller only, ``lampo.http_auth``): a data
subject's preferences per purpose, granting and withdrawing a purpose, and the Kantara-style
consent receipts. The portal has verified the subject before it calls; this service trusts the
caller for the customer number, as it trusts the CRM's events.

- ``GET /v1/customers/{customer_number}/consents``: 200 ``{"customer_number", "restricted_since",
  "purposes": [{"purpose", "description", "consent_text_version", "state", "effective_at",
  "scope", "channel", "receipt_id"}]}``, every declared purpose in name order; ``state`` is null
  where nothing was ever recorded (no consent: the purpose does not use the customer).
  ``channel``: how the current state was recorded (``portal``, ``web``, ...; null for an
  objection, which has none). ``receipt_id``: the receipt of the change that set it.
- ``POST /v1/customers/{customer_number}/consents/{purpose}/grant`` and ``.../withdraw``: recorded
  exactly as ``consent.given`` / ``consent.withdrawn`` with channel ``portal`` from consent.inbound.v1
  would be (the ledger row, the new state, a receipt, and ``consent.changed`` on
  consent.events.v1 through the outbox), in one transaction, answered only after it commits: a
  withdrawal holds the moment the answer says so (``lampo consent check`` and every reader of
  this service refuse the purpose from then on; the registry deletes the profile on the
  ``consent.changed``). 200 ``{"customer_number", "purpose", "outcome" (changed | unchanged),
  "state", "effective_at", "note", "receipt_id"}``: a withdrawal does not lift an objection
  (``unchanged``, state ``objected``, with the note).
- ``GET /v1/customers/{customer_number}/receipts``: 200 ``{"receipts": [{"receipt_id", "purpose",
  "issued_at", "state", "channel"}]}``, newest first.
- ``GET /v1/customers/{customer_number}/receipts/{receipt_id}``: the receipt (Kantara Consent
  Receipt v1.1 shape) as a JSON download, ``Content-Disposition: attachment;
  filename="consent-receipt-<receipt_id>.json"``.
- ``GET /v1/purposes``: 200 ``{"purposes": [{"purpose", "description", "consent_text_version"}]}``,
  every declared purpose (the privacy statement names them, lampo.statement).
- 400 ``{"error": "invalid_customer_number", "field": "customer_number"}``; 404
  ``{"error": "unknown_purpose", "field": "purpose"}`` / ``{"error": "no_receipt"}``; 401 without a
  valid credential, 403 for another caller.
"""

# No ``from __future__ import annotations``: FastAPI reads the route signatures' Annotated
# dependencies (defined inside consents_api) at runtime.
import re
import uuid
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response

from lampo.consent.domain import ConsentEvent, Kind
from lampo.consent.handlers import apply_events
from lampo.consent.store import ConsentStore
from lampo.http_auth import Caller, Callers, requires
from lampo.service import Runtime
from lampo.tracing import current_traceparent

PORTAL = "portal"
PORTAL_SOURCE = "urn:lampo:portal"
"""The ledger's ``source`` of what the privacy centre recorded (as an inbound event's source)."""
_CUSTOMER_NUMBER = re.compile(r"[!-~]{1,128}")
Action = Literal["grant", "withdraw"]
_KIND: dict[str, Kind] = {"grant": "consent.given", "withdraw": "consent.withdrawn"}


def _error(status: int, error: str, field: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": error}
    if field:
        body["field"] = field
    return JSONResponse(body, status_code=status)


def receipt_filename(receipt_id: uuid.UUID | str) -> str:
    """The stable name a receipt downloads under."""
    return f"consent-receipt-{receipt_id}.json"


def consents_api(runtime: Callable[[], Runtime], source: Callable[[], str]) -> FastAPI:
    """The routes over the runtime's pool (bound late); ``source``: this instance's CloudEvents
    source for the ``consent.changed`` it announces."""
    api = FastAPI(
        title="Muuramen Lämpö consent: the privacy centre's API", openapi_url=None, docs_url=None, redoc_url=None
    )
    callers: list[Callers] = []

    def answered() -> Callers:
        if not callers:
            callers.append(Callers.of(runtime().settings))
        return callers[0]

    Portal = Annotated[Caller, Depends(requires(answered, PORTAL))]
    common: dict[int | str, dict[str, Any]] = {
        400: {"description": "invalid customer number"},
        401: {"description": "no valid credential"},
        403: {"description": "not the privacy centre"},
    }

    @api.get("/v1/customers/{customer_number}/consents", responses=common)
    async def preferences(customer_number: str, caller: Portal) -> JSONResponse:
        if not _CUSTOMER_NUMBER.fullmatch(customer_number):
            return _error(400, "invalid_customer_number", "customer_number")
        async with runtime().pool.acquire() as conn:
            store = ConsentStore(conn)
            purposes = await store.purposes()
            current = await store.current([customer_number], purposes)
            origins = await store.current_origins(customer_number)
            since = await store.restricted_since(customer_number)
        rows = []
        for name, purpose in sorted(purposes.items()):
            state = current.get((customer_number, name))
            origin = origins.get(name) if state is not None and not state.suppressed else None
            rows.append(
                {
                    "purpose": name,
                    "description": purpose.legal_description,
                    "consent_text_version": purpose.consent_text_version,
                    "state": state.state if state else None,
                    "effective_at": state.effective_at if state else None,
                    "scope": state.scope if state else None,
                    "channel": origin["channel"] if origin else None,
                    "receipt_id": origin["receipt_id"] if origin else None,
                }
            )
        return JSONResponse(
            jsonable_encoder({"customer_number": customer_number, "restricted_since": since, "purposes": rows})
        )

    async def change(customer_number: str, purpose: str, action: Action) -> JSONResponse:
        if not _CUSTOMER_NUMBER.fullmatch(customer_number):
            return _error(400, "invalid_customer_number", "customer_number")
        rt = runtime()
        traceparent = current_traceparent()  # the request's server span: carried on to Kafka
        async with rt.pool.acquire() as conn, conn.transaction():
            store = ConsentStore(conn)
            if purpose not in await store.purposes():
                return _error(404, "unknown_purpose", "purpose")
            event = ConsentEvent(
                f"portal:{uuid.uuid4()}", _KIND[action], customer_number, rt.clock.now(), PORTAL_SOURCE, purpose,
                None, PORTAL,
            )  # fmt: skip
            [[decision]] = await apply_events(conn, [event], [traceparent], source())
            receipt_id = (
                await store.receipt_of_event(customer_number, event.event_id, purpose)
                if decision.outcome == "changed"
                else None
            )
        # committed: the new state holds from here on
        return JSONResponse(
            jsonable_encoder(
                {
                    "customer_number": customer_number,
                    "purpose": purpose,
                    "outcome": decision.outcome,
                    "state": decision.state_after,
                    "effective_at": decision.current.effective_at,
                    "note": decision.note,
                    "receipt_id": receipt_id,
                }
            )
        )

    responses = {**common, 404: {"description": "unknown purpose"}}

    @api.post("/v1/customers/{customer_number}/consents/{purpose}/grant", responses=responses)
    async def grant(customer_number: str, purpose: str, caller: Portal) -> JSONResponse:
        return await change(customer_number, purpose, "grant")

    @api.post("/v1/customers/{customer_number}/consents/{purpose}/withdraw", responses=responses)
    async def withdraw(customer_number: str, purpose: str, caller: Portal) -> JSONResponse:
        return await change(customer_number, purpose, "withdraw")

    @api.get("/v1/purposes", responses={401: common[401], 403: common[403]})
    async def purposes(caller: Portal) -> JSONResponse:
        async with runtime().pool.acquire() as conn:
            declared = await ConsentStore(conn).purposes()
        return JSONResponse(
            {
                "purposes": [
                    {
                        "purpose": p.name,
                        "description": p.legal_description,
                        "consent_text_version": p.consent_text_version,
                    }
                    for _, p in sorted(declared.items())
                ]
            }
        )

    @api.get("/v1/customers/{customer_number}/receipts", responses=common)
    async def receipts(customer_number: str, caller: Portal) -> JSONResponse:
        if not _CUSTOMER_NUMBER.fullmatch(customer_number):
            return _error(400, "invalid_customer_number", "customer_number")
        async with runtime().pool.acquire() as conn:
            rows = await ConsentStore(conn).receipt_list(customer_number)
        return JSONResponse(jsonable_encoder({"receipts": [dict(r) for r in rows]}))

    @api.get(
        "/v1/customers/{customer_number}/receipts/{receipt_id}",
        responses={**common, 404: {"description": "no such receipt of this customer"}},
    )
    async def receipt(customer_number: str, receipt_id: str, caller: Portal) -> Response:
        if not _CUSTOMER_NUMBER.fullmatch(customer_number):
            return _error(400, "invalid_customer_number", "customer_number")
        try:
            wanted = uuid.UUID(receipt_id)
        except ValueError:
            return _error(404, "no_receipt")
        async with runtime().pool.acquire() as conn:
            body = await ConsentStore(conn).receipt(customer_number, wanted)
        if body is None:
            return _error(404, "no_receipt")
        return JSONResponse(body, headers={"content-disposition": f'attachment; filename="{receipt_filename(wanted)}"'})

    return api
