"""Who is calling an HTTP route, and whether it may.

Every route that reads, submits, changes, cancels or resolves anything about a subject names the
callers it answers; only health and metrics stay open. A caller is another system or service
holding its own credential: ``Authorization: Bearer <token>``. A service knows the callers it
answers from ``LAMPO_API_CLIENTS`` (JSON: caller name → that caller's token); it keeps only their
SHA-256 digests in memory and compares in constant time. It presents its own credential to the
services it calls from ``LAMPO_API_TOKEN`` (:func:`credential_headers`).

- no credential, or one no configured caller holds: 401 (``unauthenticated``);
- a known caller the route does not answer: 403 (``forbidden``).

No clients configured: every call is refused (fail closed).

Protecting a route is one line:

- a FastAPI route: a parameter ``caller: Annotated[Caller, Depends(requires(callers, "dsar"))]``
  (or ``dependencies=[Depends(requires(callers, "dsar"))]`` in its decorator);
- a plain ASGI app on the runtime: ``routes=[("/v1/resolve", guard(app, Callers.of(settings), "dsar"))]``.

Either way the service's OpenAPI document (``lampo.service.Runtime.openapi``) names the callers of
each operation under ``x-lampo-callers``, and the suite's per-route test checks every one of them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

if TYPE_CHECKING:
    from lampo.settings import ServiceSettings

CALLERS_KEY = "x-lampo-callers"
"""The OpenAPI extension naming the callers an operation answers."""

_REFUSED = {"401": "no valid credential", "403": "a caller this route does not answer"}

# Declares the scheme in the OpenAPI document (schemathesis and readers see it); the check itself
# reads the header, so every malformed form is refused the same way.
_BEARER = HTTPBearer(auto_error=False, scheme_name="caller", description="The calling system's own credential")


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: a system or service by name (never a person's data)."""

    name: str


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Callers:
    """The callers a service answers, by the digest of their tokens."""

    def __init__(self, clients: Mapping[str, str]) -> None:
        self._digests = [(name, _digest(token)) for name, token in clients.items() if token]

    @classmethod
    def of(cls, settings: ServiceSettings) -> Callers:
        """The callers of ``settings.api_clients`` (``LAMPO_API_CLIENTS``)."""
        return cls({name: token.get_secret_value() for name, token in settings.api_clients.items()})

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self._digests]

    def identify(self, authorization: str | None) -> Caller | None:
        if not authorization or not authorization.startswith("Bearer "):
            return None
        presented = _digest(authorization[len("Bearer ") :])
        found: Caller | None = None
        for name, digest in self._digests:  # every digest compared: timing tells nothing
            if hmac.compare_digest(presented, digest):
                found = Caller(name)
        return found


CallersSource = Callers | Callable[[], Callers]


def _current(callers: CallersSource) -> Callers:
    return callers if isinstance(callers, Callers) else callers()


def check(callers: Callers, authorization: str | None, allowed: Iterable[str]) -> Caller:
    """The caller presenting ``authorization``; HTTPException 401/403 unless it is one of ``allowed``."""
    found = callers.identify(authorization)
    if found is None:
        raise HTTPException(401, "unauthenticated", headers={"WWW-Authenticate": "Bearer"})
    if found.name not in allowed:
        raise HTTPException(403, "forbidden")
    return found


def requires(callers: CallersSource, *allowed: str) -> Callable[..., Awaitable[Caller]]:
    """A FastAPI dependency answering 401/403 unless the caller is one of ``allowed``."""

    async def caller(request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]) -> Caller:
        return check(_current(callers), request.headers.get("authorization"), allowed)

    caller.lampo_callers = allowed  # type: ignore[attr-defined]  # read by document_callers
    return caller


def credential_headers(settings: ServiceSettings) -> dict[str, str]:
    """``Authorization`` for calls to the suite's other services: this service's ``LAMPO_API_TOKEN``
    (none configured: no header, and the other service answers 401)."""
    token = settings.api_token.get_secret_value() if settings.api_token else ""
    return {"authorization": f"Bearer {token}"} if token else {}


# -- OpenAPI ---------------------------------------------------------------------------------------


def callers_of_route(route: APIRoute) -> tuple[str, ...] | None:
    """The callers a FastAPI route answers (through :func:`requires`); None: it names none."""
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        allowed = getattr(dependant.call, "lampo_callers", None)
        if allowed is not None:
            return tuple(allowed)
        pending.extend(dependant.dependencies)
    return None


def document_callers(api: FastAPI, schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` (``api``'s OpenAPI document) with ``x-lampo-callers`` on every operation that
    names its callers."""
    for route in api.routes:
        if not isinstance(route, APIRoute):
            continue
        allowed = callers_of_route(route)
        operations = schema.get("paths", {}).get(route.path_format, {})
        for method in route.methods or ():
            if allowed is not None and method.lower() in operations:
                operation = operations[method.lower()]
                operation[CALLERS_KEY] = list(allowed)
                operation.setdefault("security", [{"caller": []}])
                for status, description in _REFUSED.items():
                    operation.setdefault("responses", {}).setdefault(status, {"description": description})
    return schema


# -- plain ASGI apps -------------------------------------------------------------------------------

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class Guarded:
    """A plain ASGI app that answers only ``allowed`` callers (see :func:`guard`)."""

    def __init__(
        self,
        app: Callable[[Scope, Receive, Send], Awaitable[None]],
        callers: CallersSource,
        allowed: tuple[str, ...],
        methods: tuple[str, ...],
        operation: Mapping[str, Any] | None,
    ) -> None:
        self.app = app
        self.callers = callers
        self.allowed = allowed
        self.methods = methods
        self.operation = dict(operation or {})

    def openapi_operations(self) -> dict[str, Any]:
        """The path item of the OpenAPI document: each method, its callers and the scheme."""
        refused = {status: {"description": description} for status, description in _REFUSED.items()}
        return {
            method.lower(): {
                "security": [{"caller": []}],
                **self.operation,
                "responses": {**refused, **self.operation.get("responses", {})},
                CALLERS_KEY: list(self.allowed),
            }
            for method in self.methods
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            header = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"authorization"), None)
            try:
                check(_current(self.callers), header, self.allowed)
            except HTTPException as e:
                body = json.dumps({"detail": e.detail}).encode()
                headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
                headers += [(k.lower().encode(), v.encode()) for k, v in (e.headers or {}).items()]
                await send({"type": "http.response.start", "status": e.status_code, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def guard(
    app: Callable[[Scope, Receive, Send], Awaitable[None]],
    callers: CallersSource,
    *allowed: str,
    methods: Iterable[str] = ("POST",),
    operation: Mapping[str, Any] | None = None,
) -> Guarded:
    """``app`` answering only ``allowed`` callers (401/403 otherwise), documented for the service's
    OpenAPI document as ``methods`` (with ``operation``'s extra fields, e.g. a request body)."""
    return Guarded(app, callers, allowed, tuple(m.upper() for m in methods), operation)
