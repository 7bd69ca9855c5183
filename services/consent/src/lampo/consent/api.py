"""``POST /v1/resolve``: does the consent service know this customer number? For the DSAR
coordinator's identity resolution: a customer number only the consent ledger knows (a prospect
who consented on a web form, or a suppression entry kept after an erasure) is still a subject.

Only a caller holding the suite's internal token (``Authorization: Bearer <token>``) is
answered, as the registry's subjects API does; no token configured: every call is refused.

- Body ``{"customer_number": "..."}``; ``email`` is accepted too, but the consent service keeps
  no e-mail addresses (nor a blind index of them), so an e-mail alone never matches here.
- 200 ``{"customer_numbers": ["..."]}`` when the ledger, a current state, a suppression entry or
  a restriction names the customer number;
  404 ``{"error": "no_match"}``; 401 ``{"error": "unauthorised"}``;
  422 ``{"error": <reason>, "field": <name>}`` for malformed input (no value is echoed back).
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from lampo.consent.store import known
from lampo.contracts.identifiers import check_email
from lampo.service import Runtime

_CUSTOMER_NUMBER = re.compile(r"[!-~]{1,128}")
FIELDS = ("customer_number", "email")
MAX_BODY = 16 * 1024


class BadRequest(ValueError):
    def __init__(self, error: str, field: str | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.field = field


def authorised(header: str | None, token: str | None) -> bool:
    """Constant-time check of ``Authorization: Bearer <token>``; False when no token is configured."""
    if not token or not header or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[len("Bearer ") :].encode(), token.encode())


def parse_request(body: bytes) -> dict[str, str]:
    """The identifiers of a request body, checked; BadRequest names the field, never the value."""
    if len(body) > MAX_BODY:
        raise BadRequest("too_large")
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("invalid_json") from None
    if not isinstance(obj, dict):
        raise BadRequest("invalid_json")
    unknown = sorted(k for k in obj if k not in FIELDS)
    if unknown:
        raise BadRequest("unknown_field", unknown[0] if _CUSTOMER_NUMBER.fullmatch(unknown[0]) else None)
    found: dict[str, str] = {}
    for name in FIELDS:
        value = obj.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise BadRequest("invalid_type", name)
        try:
            if name == "customer_number" and not _CUSTOMER_NUMBER.fullmatch(value):
                raise ValueError(name)
            found[name] = value if name == "customer_number" else check_email(value)
        except ValueError:
            raise BadRequest(f"invalid_{name}", name) from None
    if not found:
        raise BadRequest("missing_identifier", "customer_number")
    return found


def _answer(status: int, body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body, status_code=status)


def resolve_api(runtime: Runtime | Callable[[], Runtime]) -> FastAPI:
    """The route over ``runtime``'s pool (or a callable returning the runtime, bound late)."""
    api = FastAPI(title="Muuramen Lämpö consent: identity resolution", openapi_url=None, docs_url=None, redoc_url=None)

    def current() -> Runtime:
        return runtime if isinstance(runtime, Runtime) else runtime()

    @api.post("/v1/resolve")
    async def resolve(request: Request) -> JSONResponse:
        rt = current()
        token = rt.settings.internal_token
        if not authorised(request.headers.get("authorization"), token.get_secret_value() if token else None):
            return _answer(401, {"error": "unauthorised"})
        try:
            identifiers = parse_request(await request.body())
        except BadRequest as e:
            return _answer(422, {"error": e.error, "field": e.field})
        customer_number = identifiers.get("customer_number")
        if customer_number is None:  # an e-mail alone: no index to match it with
            return _answer(404, {"error": "no_match"})
        async with rt.pool.acquire() as conn:
            found = await known(conn, customer_number)
        if not found:
            return _answer(404, {"error": "no_match"})
        return _answer(200, {"customer_numbers": [customer_number]})

    return api
