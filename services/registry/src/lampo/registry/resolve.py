"""``POST /v1/resolve``: identity resolution for the DSAR coordinator (the ``dsar`` caller only:
``lampo.http_auth.guard`` in ``build()``; 401 without a valid credential, 403 for another caller).

Body: any of ``customer_number``, ``personal_identity_code``, ``email``. Every identifier sent
must lead to the same subject: one that matches nothing, or a second subject, is not taken as
"close enough" (a request must never reach another person's data).

- 200 ``{"subject_id", "customer_numbers", "kind"}``
- 404 ``{"error": "no_match"}``; 409 ``{"error": "ambiguous"}`` when the identifiers lead to
  more than one subject
- 400 ``{"error": <reason>, "field": <name>}`` for malformed input

Identity codes and e-mails are looked up through their blind index; the body is never logged
and no value is echoed back.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import asyncpg

from lampo.contracts.identifiers import check_email, check_personal_identity_code
from lampo.crypto import KeyRing
from lampo.registry.store import RegistryStore
from lampo.resolve_api import BadRequest, customer_number, parse_identifiers

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

CHECKS = {
    "customer_number": customer_number,
    "personal_identity_code": check_personal_identity_code,
    "email": check_email,
}
FIELDS = tuple(CHECKS)
MAX_BODY = 16 * 1024


_IDENTIFIER_SCHEMA = {"type": "string", "minLength": 1, "maxLength": 320}
_ERROR = {"type": "object", "properties": {"error": {"type": "string"}, "field": {"type": ["string", "null"]}}}
RESOLVE_OPERATION: dict[str, Any] = {
    "summary": "Resolve identifiers to the registry's subject",
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {name: _IDENTIFIER_SCHEMA for name in FIELDS},
                    "additionalProperties": False,
                }
            }
        },
    },
    "responses": {
        "200": {
            "description": "the one subject every identifier leads to",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["subject_id", "customer_numbers", "kind"],
                        "properties": {
                            "subject_id": {"type": "string"},
                            "customer_numbers": {"type": "array", "items": {"type": "string"}},
                            "kind": {"type": ["string", "null"]},
                        },
                    }
                }
            },
        },
        **{
            str(status): {"description": description, "content": {"application/json": {"schema": _ERROR}}}
            for status, description in (
                (400, "malformed identifiers (the field is named, never its value)"),
                (404, "no subject matches"),
                (409, "the identifiers lead to more than one subject"),
                (413, "body too large"),
            )
        },
    },
}
"""The route's OpenAPI operation (the service's document, ``Runtime.openapi()``)."""


def parse_request(body: bytes) -> dict[str, str]:
    """The identifiers of a request body, checked and normalised; BadRequest names the field."""
    return parse_identifiers(body, CHECKS)


async def resolve(conn: asyncpg.Connection, keys: KeyRing, identifiers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    store = RegistryStore(conn, keys)
    candidates: set[str] | None = None
    for name, value in identifiers.items():
        if name == "customer_number":
            found = await store.subject_of(value)
            subjects = {found} if found else set()
        else:
            subjects = await store.subjects_by_lookup(name, value)
        if not subjects:
            return 404, {"error": "no_match"}
        candidates = subjects if candidates is None else candidates & subjects
        if not candidates:
            return 404, {"error": "no_match"}
    if candidates is None or len(candidates) != 1:
        return 409, {"error": "ambiguous"}
    [subject_id] = candidates
    row = await store.subject_row(subject_id)
    if row is None:
        return 404, {"error": "no_match"}
    return 200, {
        "subject_id": subject_id,
        "customer_numbers": await store.customers_of(subject_id),
        "kind": row["kind"],
    }


class ResolveApp:
    """A plain ASGI app, mounted on the service runtime; ``bind`` gives it the runtime's pool and keys
    once they exist."""

    def __init__(self) -> None:
        self._pool: Callable[[], asyncpg.Pool] | None = None
        self._keys: KeyRing | None = None

    def bind(self, pool: Callable[[], asyncpg.Pool], keys: KeyRing) -> None:
        self._pool = pool
        self._keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("method") != "POST":
            await _respond(send, 405, {"error": "method_not_allowed"}, {"allow": "POST"})
            return
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > MAX_BODY:
                await _respond(send, 413, {"error": "too_large"})
                return
            if not message.get("more_body", False):
                break
        try:
            identifiers = parse_request(body)
        except BadRequest as e:
            await _respond(send, 400, {"error": e.error, "field": e.field})
            return
        if self._pool is None or self._keys is None:
            await _respond(send, 503, {"error": "not_ready"})
            return
        async with self._pool().acquire() as conn:
            status, answer = await resolve(conn, self._keys, identifiers)
        await _respond(send, status, answer)


async def _respond(send: Send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    raw = json.dumps(body).encode()
    all_headers = {"content-type": "application/json", "content-length": str(len(raw)), **(headers or {})}
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(k.encode(), v.encode()) for k, v in all_headers.items()],
        }
    )
    await send({"type": "http.response.body", "body": raw})
