"""The registry's internal read API, for the staff service, the privacy centre and the company's
marketing exports.

Each route answers its named callers only (``lampo.http_auth``: each caller's own credential from
``LAMPO_API_CLIENTS``, sent as ``Authorization: Bearer <token>``): the staff service, which checks
the user's role and audits the read before it calls; the privacy centre (``portal``), for a
customer's e-mail address alone. The registry does not know staff users; it
answers the service. No callers configured: every call is refused (fail closed).

``GET /v1/subjects/{customer_number}`` (the ``staff`` caller):

- ``?categories=basic,contact`` narrows the answer (default: every category the registry holds).
- ``?purpose=legal_claims``: the data of a restricted subject is served all the same (GDPR
  Art. 18(2): the establishment, exercise or defence of legal claims); the caller answers for
  that purpose. Any other value is a 400.
- 200 ``{"customer_number", "subject_id", "restricted", "restriction", "objections", "withheld",
  "categories": {category: [item]}}``, an item being ``{"section" | "kind", "data",
  "source_system", "origin", "legal_basis", "updated_at"}``. ``restricted`` is true while any
  restriction stands; ``restriction`` is then ``{"since", "reasons": [{"reason", "since"}]}``
  (reasons ``request``, ``objection_pending``, ``objection_upheld``), else null. A restricted
  subject's data is stored but not used (Art. 18): ``withheld`` is true and every category is
  empty, unless ``purpose=legal_claims``. ``objections``: ``[{"scope", "status", "filed_at",
  "decided_at"}]`` filed through DSARs (status ``honoured``, ``recorded``, ``pending``,
  ``upheld``, ``rejected``). Only the data filed under the asked customer number (a subject with
  several customer numbers is read one number at a time: a staff member sees the customer they
  looked up).
- 400 ``{"error": "invalid_category", "field": "categories"}``, ``{"error": "invalid_purpose",
  "field": "purpose"}``; 401 without a valid credential, 403 for another caller; 404
  ``{"error": "no_match"}``.

``GET /v1/subjects/{customer_number}/email`` (the ``portal`` caller): the e-mail address the register
holds for the customer, where the privacy centre sends a one-time code and the notices of a
request. 200 ``{"email": "..."}``; 404 ``{"error": "unknown_customer"}`` (no such customer number)
or ``{"error": "no_email"}`` (none held, or unreadable after erasure); 400
``{"error": "invalid_customer_number", "field": "customer_number"}``. A restricted subject is
answered all the same: writing to the subject about their own rights is not a use the
restriction stops (Art. 18(1), 19: the subject is told of a lift).

``GET /v1/audiences/direct_marketing?after=<customer_number>&limit=<1..5000, default 1000>`` (the
``staff`` and ``marketing`` callers):
the customer numbers direct marketing may reach, in order, a page at a time: 200
``{"audience": "direct_marketing", "customer_numbers": [...], "next": <customer_number> | null}``
(``next``: pass it as ``after`` for the following page; null on the last page). Eligible:
consent to direct marketing granted (the register's copy of consent.events.v1), relationship
not ended, not restricted, no objection to direct marketing or to processing. 400
``{"error": "invalid_limit", "field": "limit"}`` / ``{"error": "invalid_customer_number", "field": "after"}``.

``GET /v1/accuracy?unconfirmed_years=<1..50, default 3>`` (the ``staff`` caller): the proactive
accuracy checks of privacy statement §12 (``lampo registry accuracy``; accuracy.py), for the staff
console's report and its follow-up: 200 ``{"invalid_or_missing": {"count", "customers":
{customer_number: [rule]}}, "duplicate_identity_codes": {"count", "groups": [[customer_number]]},
"unconfirmed_contacts": {"years", "count", "customers": [customer_number]}}``. Counts, customer
numbers and rule names only, never a value. 400 ``{"error": "invalid_years", "field":
"unconfirmed_years"}``.

``POST /v1/search`` (the ``staff`` caller): customer look-up by customer number, identity code,
e-mail or name through the blind indexes; the value in the body only (search.py).

Wiring (in ``build()``): one app mounted at ``/v1/subjects``, ``/v1/audiences``, ``/v1/accuracy`` and
``/v1/search`` (it sees the
full path), taking a callable because the runtime does not exist yet when its mounts are listed.
"""

import json
import re
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from lampo.crypto import FieldCipher
from lampo.http_auth import Caller, Callers, requires
from lampo.registry.accuracy import accuracy_report
from lampo.registry.domain import HELD_CATEGORIES, HELD_TABLES
from lampo.registry.search import MAX_VALUE, SEARCH_BY, InvalidSearch, parse_search, search
from lampo.registry.store import RegistryStore
from lampo.service import Runtime

_CUSTOMER_NUMBER = re.compile(r"[!-~]{1,128}")
# The one purpose for which a restricted subject's data is read (Art. 18(2)).
LEGAL_CLAIMS = "legal_claims"
AUDIENCE_PAGE = 1000
UNCONFIRMED_YEARS = 3  # as `lampo registry accuracy` reports by default
MAX_AUDIENCE_PAGE = 5000
MAX_SEARCH_BODY = 4096


def _error(status: int, error: str, field: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": error}
    if field:
        body["field"] = field
    return JSONResponse(body, status_code=status)


def _decrypt(cipher: FieldCipher | None, field: str, blob: Any) -> Any:
    if blob is None:
        return None
    if cipher is None:
        return {"unreadable": "the subject's data key has been destroyed"}
    return cipher.decrypt(field, bytes(blob))


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def parse_categories(value: str | None) -> set[str] | None:
    """The asked categories (None: all the registry holds); ValueError on an unknown one."""
    held = {str(c) for c in HELD_CATEGORIES}
    if value is None or not value.strip():
        return None
    asked = {part.strip() for part in value.split(",") if part.strip()}
    if not asked or not asked <= held | {"billing", "other_consented"}:
        raise ValueError("categories")
    return asked & held


async def _fill(
    store: RegistryStore, subject_id: str, customer_number: str, result: dict[str, list[dict[str, Any]]]
) -> None:
    """The items filed under ``customer_number``, into the asked categories of ``result``."""
    cipher = (await store.ciphers([subject_id], create=False)).get(subject_id)
    for section in await store.section_rows(subject_id):
        if section["customer_number"] != customer_number or section["category"] not in result:
            continue
        text = _decrypt(cipher, section["section"], section["payload"])
        result[section["category"]].append(
            _plain(
                {
                    "section": section["section"],
                    "data": json.loads(text) if isinstance(text, str) else text,
                    "source_system": section["source_system"],
                    "origin": section["origin"],
                    "legal_basis": section["legal_basis"],
                    "updated_at": section["event_time"],
                }
            )
        )
    held = await store.held(subject_id)
    for table, (category, kind, fields) in HELD_TABLES.items():
        if category not in result:
            continue
        for r in held[table]:
            if r["customer_number"] != customer_number:
                continue
            data = {f: r[f] for f in fields}
            if "summary" in data:
                data["summary"] = _decrypt(cipher, "interaction.summary", data["summary"])
            result[category].append(
                _plain(
                    {
                        "kind": kind,
                        "data": data,
                        "source_system": r["source_system"],
                        "origin": r["origin"],
                        "legal_basis": r["legal_basis"],
                        "updated_at": r["computed_at"] if table == "profiles" else r["event_time"],
                    }
                )
            )


def subjects_api(runtime: Runtime | Callable[[], Runtime]) -> FastAPI:
    """The read API over ``runtime``'s pool and key ring (or a callable returning the runtime)."""
    api = FastAPI(title="Muuramen Lämpö registry: internal read API", openapi_url=None, docs_url=None, redoc_url=None)

    def current() -> Runtime:
        return runtime if isinstance(runtime, Runtime) else runtime()

    callers: list[Callers] = []

    def known() -> Callers:  # read once the runtime (and its settings) exists
        if not callers:
            callers.append(Callers.of(current().settings))
        return callers[0]

    @api.get(
        "/v1/subjects/{customer_number}",
        responses={
            400: {"description": "invalid customer number or category"},
            401: {"description": "no valid credential"},
            403: {"description": "not the staff service"},
            404: {"description": "no such customer"},
        },
    )
    async def read_subject(
        customer_number: str, request: Request, caller: Annotated[Caller, Depends(requires(known, "staff"))]
    ) -> JSONResponse:
        rt = current()
        if not _CUSTOMER_NUMBER.fullmatch(customer_number):
            return _error(400, "invalid_customer_number", "customer_number")
        try:
            wanted = parse_categories(request.query_params.get("categories"))
        except ValueError:
            return _error(400, "invalid_category", "categories")
        purpose = request.query_params.get("purpose")
        if purpose is not None and purpose != LEGAL_CLAIMS:
            return _error(400, "invalid_purpose", "purpose")
        async with rt.pool.acquire() as conn:
            store = RegistryStore(conn, rt.keys)
            subject_id = await store.subject_of(customer_number)
            row = await store.subject_row(subject_id) if subject_id else None
            if subject_id is None or row is None:
                return _error(404, "no_match")
            scope = wanted if wanted is not None else {str(c) for c in HELD_CATEGORIES}
            result: dict[str, list[dict[str, Any]]] = {str(c): [] for c in HELD_CATEGORIES if str(c) in scope}
            restricted = bool(row["restricted"])
            withheld = restricted and purpose != LEGAL_CLAIMS
            if not withheld:  # stored, not used: not even read
                await _fill(store, subject_id, customer_number, result)
            restrictions = await store.restrictions(subject_id)
            objections = await store.objections(subject_id)
        return JSONResponse(
            _plain(
                {
                    "customer_number": customer_number,
                    "subject_id": subject_id,
                    "restricted": restricted,
                    "restriction": {
                        "since": min((r["since"] for r in restrictions), default=None),
                        "reasons": [{"reason": r["reason"], "since": r["since"]} for r in restrictions],
                    }
                    if restricted
                    else None,
                    "objections": [dict(o) for o in objections],
                    "withheld": withheld,
                    "categories": result,
                }
            )
        )

    @api.get(
        "/v1/subjects/{customer_number}/email",
        responses={
            400: {"description": "invalid customer number"},
            401: {"description": "no valid credential"},
            403: {"description": "not the privacy centre"},
            404: {"description": "no such customer, or no e-mail address held"},
        },
    )
    async def subject_email(
        customer_number: str, caller: Annotated[Caller, Depends(requires(known, "portal"))]
    ) -> JSONResponse:
        rt = current()
        if not _CUSTOMER_NUMBER.fullmatch(customer_number):
            return _error(400, "invalid_customer_number", "customer_number")
        async with rt.pool.acquire() as conn:
            store = RegistryStore(conn, rt.keys)
            subject_id = await store.subject_of(customer_number)
            if subject_id is None:
                return _error(404, "unknown_customer")
            section = await store.section_of(customer_number, "contact")
            if section is None or section["payload"] is None:
                return _error(404, "no_email")
            cipher = (await store.ciphers([subject_id], create=False)).get(subject_id)
        if cipher is None:  # crypto-shredded: nothing readable is held
            return _error(404, "no_email")
        contact = json.loads(cipher.decrypt("contact", bytes(section["payload"])) or "null")
        email = contact.get("email") if isinstance(contact, dict) else None
        if not email:
            return _error(404, "no_email")
        return JSONResponse({"email": email})

    @api.get(
        "/v1/audiences/direct_marketing",
        responses={
            400: {"description": "invalid page bound or size"},
            401: {"description": "no valid credential"},
            403: {"description": "neither the staff service nor the marketing system"},
        },
    )
    async def direct_marketing(
        request: Request, caller: Annotated[Caller, Depends(requires(known, "staff", "marketing"))]
    ) -> JSONResponse:
        rt = current()
        after = request.query_params.get("after", "")
        if after and not _CUSTOMER_NUMBER.fullmatch(after):
            return _error(400, "invalid_customer_number", "after")
        try:
            limit = int(request.query_params.get("limit", AUDIENCE_PAGE))
        except ValueError:
            return _error(400, "invalid_limit", "limit")
        if not 1 <= limit <= MAX_AUDIENCE_PAGE:
            return _error(400, "invalid_limit", "limit")
        async with rt.pool.acquire() as conn:
            page = await RegistryStore(conn, rt.keys).direct_marketing_audience(after, limit, rt.clock.now())
        return JSONResponse(
            {
                "audience": "direct_marketing",
                "customer_numbers": page,
                "next": page[-1] if len(page) == limit else None,
            }
        )

    @api.get(
        "/v1/accuracy",
        responses={
            400: {"description": "invalid number of years"},
            401: {"description": "no valid credential"},
            403: {"description": "not the staff service"},
        },
    )
    async def accuracy(request: Request, caller: Annotated[Caller, Depends(requires(known, "staff"))]) -> JSONResponse:
        rt = current()
        try:
            years = int(request.query_params.get("unconfirmed_years", UNCONFIRMED_YEARS))
        except ValueError:
            return _error(400, "invalid_years", "unconfirmed_years")
        if not 1 <= years <= 50:
            return _error(400, "invalid_years", "unconfirmed_years")
        async with rt.pool.acquire() as conn:
            report = await accuracy_report(conn, rt.keys, rt.clock.now(), years)
        return JSONResponse(report.as_dict())

    @api.post(
        "/v1/search",
        responses={
            401: {"description": "no valid credential"},
            403: {"description": "not the staff service"},
            413: {"description": "body too large"},
            422: {"description": "invalid field (named, never its value)"},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["by", "value"],
                            "properties": {
                                "by": {"type": "string", "enum": list(SEARCH_BY)},
                                "value": {"type": "string", "minLength": 1, "maxLength": MAX_VALUE},
                            },
                        }
                    }
                },
            }
        },
    )
    async def search_customers(
        request: Request, caller: Annotated[Caller, Depends(requires(known, "staff"))]
    ) -> JSONResponse:
        """The customer numbers a customer number, identity code, e-mail or name leads to,
        through the blind indexes (search.py)."""
        body = await request.body()
        if len(body) > MAX_SEARCH_BODY:
            return _error(413, "too_large")
        try:
            by, value = parse_search(body)
        except InvalidSearch as e:
            return _error(422, e.error, e.field)
        rt = current()
        async with rt.pool.acquire() as conn:
            found = await search(conn, rt.keys, by, value)
        return JSONResponse({"customer_numbers": found})

    return api
