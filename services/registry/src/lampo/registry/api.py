"""``GET /v1/subjects/{customer_number}``: the registry's internal read API, for the staff service.

Only the ``staff`` caller is answered (``lampo.http_auth``: its own credential from
``LAMPO_API_CLIENTS``, sent as ``Authorization: Bearer <token>``): the staff service, which checks
the user's role and audits the read before it calls. The registry does not know staff users; it
answers the service. No callers configured: every call is refused (fail closed).

- ``?categories=basic,contact`` narrows the answer (default: every category the registry holds).
- 200 ``{"customer_number", "subject_id", "restricted", "categories": {category: [item]}}``, an
  item being ``{"section" | "kind", "data", "source_system", "origin", "legal_basis", "updated_at"}``.
  Only the data filed under the asked customer number (a subject with several customer numbers
  is read one number at a time: a staff member sees the customer they looked up).
- 400 ``{"error": "invalid_category", "field": "categories"}``; 401 without a valid credential,
  403 for another caller (``{"detail": ...}``); 404 ``{"error": "no_match"}``.

Wiring (in ``build()``): ``mounts=[("/v1/subjects", subjects_api(lambda: runtime))]``; a
callable is taken because the runtime does not exist yet when its mounts are listed.
"""

import hmac
import json
import re
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from lampo.crypto import FieldCipher
from lampo.http_auth import Caller, Callers, requires
from lampo.registry.domain import HELD_CATEGORIES, HELD_TABLES
from lampo.registry.store import RegistryStore
from lampo.service import Runtime

_CUSTOMER_NUMBER = re.compile(r"[!-~]{1,128}")


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


def authorised(header: str | None, token: str | None) -> bool:
    """Constant-time check of ``Authorization: Bearer <token>``; False when no token is configured.
    The old shared-token scheme: the registry's routes now answer named callers (lampo.http_auth)."""
    if not token or not header or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[len("Bearer ") :].encode(), token.encode())


def parse_categories(value: str | None) -> set[str] | None:
    """The asked categories (None: all the registry holds); ValueError on an unknown one."""
    held = {str(c) for c in HELD_CATEGORIES}
    if value is None or not value.strip():
        return None
    asked = {part.strip() for part in value.split(",") if part.strip()}
    if not asked or not asked <= held | {"billing", "other_consented"}:
        raise ValueError("categories")
    return asked & held


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
        async with rt.pool.acquire() as conn:
            store = RegistryStore(conn, rt.keys)
            subject_id = await store.subject_of(customer_number)
            row = await store.subject_row(subject_id) if subject_id else None
            if subject_id is None or row is None:
                return _error(404, "no_match")
            scope = wanted if wanted is not None else {str(c) for c in HELD_CATEGORIES}
            result: dict[str, list[dict[str, Any]]] = {str(c): [] for c in HELD_CATEGORIES if str(c) in scope}
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
        return JSONResponse(
            {
                "customer_number": customer_number,
                "subject_id": subject_id,
                "restricted": bool(row["restricted"]),
                "categories": result,
            }
        )

    return api
