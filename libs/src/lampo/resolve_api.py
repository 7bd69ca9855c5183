"""``POST /v1/resolve`` of a store (billing, recordings, consent): does this store know the
customer number? For the DSAR coordinator's identity resolution: a customer number that only one
store knows is still a customer (issue #15). The registry resolves identity codes and e-mails
itself (``lampo.registry.resolve``).

Only the ``dsar`` caller is answered (``lampo.http_auth``; no callers configured: every call is
refused).

- Body ``{"customer_number": "..."}``; ``email`` is accepted too, but the stores keep no e-mail
  addresses (nor a blind index of them), so an e-mail alone never matches.
- 200 ``{"customer_numbers": ["..."]}`` when the store holds the customer number;
  404 ``{"error": "no_match"}``; 401 without a valid credential, 403 for another caller;
  422 ``{"error": <reason>, "field": <name>}`` for malformed input (no value is echoed back).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import asyncpg
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from lampo.contracts.identifiers import check_email
from lampo.http_auth import Callers, requires
from lampo.service import Runtime

_CUSTOMER_NUMBER = re.compile(r"[!-~]{1,128}")
MAX_BODY = 16 * 1024

Known = Callable[[asyncpg.Connection, Runtime, str], Awaitable[bool]]
"""Whether the store holds a customer number (read on a connection of the runtime's pool)."""


class BadRequest(ValueError):
    def __init__(self, error: str, field: str | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.field = field


def customer_number(value: str) -> str:
    if not _CUSTOMER_NUMBER.fullmatch(value):
        raise ValueError("customer_number")
    return value


Check = Callable[[str], str]
"""An identifier's check: its normalised value, or ValueError."""


def parse_identifiers(body: bytes, checks: Mapping[str, Check]) -> dict[str, str]:
    """The identifiers of a resolve request's body (a JSON object of ``checks``' fields, at least
    one), each checked and normalised; BadRequest names the field, never the value. Written once
    for the registry's resolve route and the stores'."""
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("invalid_json") from None
    if not isinstance(obj, dict):
        raise BadRequest("invalid_json")
    unknown = sorted(k for k in obj if k not in checks)
    if unknown:
        raise BadRequest("unknown_field", unknown[0] if _CUSTOMER_NUMBER.fullmatch(unknown[0]) else None)
    found: dict[str, str] = {}
    for name, check in checks.items():
        value = obj.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise BadRequest("invalid_type", name)
        try:
            found[name] = check(value)
        except ValueError:
            raise BadRequest(f"invalid_{name}", name) from None
    if not found:
        raise BadRequest("missing_identifier", "|".join(checks))
    return found


STORE_CHECKS: Mapping[str, Check] = {"customer_number": customer_number, "email": check_email}


def parse_request(body: bytes) -> dict[str, str]:
    """A store's resolve request: a customer number or an e-mail address."""
    if len(body) > MAX_BODY:
        raise BadRequest("too_large")
    return parse_identifiers(body, STORE_CHECKS)


def _answer(status: int, body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body, status_code=status)


def resolve_api(store: str, runtime: Runtime | Callable[[], Runtime], known: Known) -> FastAPI:
    """The route of ``store`` over ``runtime``'s pool (or a callable returning the runtime, bound late)."""
    api = FastAPI(title=f"Muuramen Lämpö {store}: identity resolution", openapi_url=None, docs_url=None, redoc_url=None)

    def current() -> Runtime:
        return runtime if isinstance(runtime, Runtime) else runtime()

    callers: list[Callers] = []

    def answered() -> Callers:  # read once the runtime (and its settings) exists
        if not callers:
            callers.append(Callers.of(current().settings))
        return callers[0]

    @api.post(
        "/v1/resolve",
        dependencies=[Depends(requires(answered, "dsar"))],
        responses={
            401: {"description": "no valid credential"},
            403: {"description": "not the DSAR coordinator"},
            404: {"description": "no such customer here"},
            422: {"description": "malformed identifiers"},
        },
    )
    async def resolve(request: Request) -> JSONResponse:
        try:
            identifiers = parse_request(await request.body())
        except BadRequest as e:
            return _answer(422, {"error": e.error, "field": e.field})
        customer_number = identifiers.get("customer_number")
        if customer_number is None:  # an e-mail alone: no index to match it with
            return _answer(404, {"error": "no_match"})
        rt = current()
        async with rt.pool.acquire() as conn:
            found = await known(conn, rt, customer_number)
        if not found:
            return _answer(404, {"error": "no_match"})
        return _answer(200, {"customer_numbers": [customer_number]})

    return api
