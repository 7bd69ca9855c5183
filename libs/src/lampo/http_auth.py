"""Who is calling an HTTP route, and whether it may.

Every route that reads, submits, changes, cancels or resolves anything about a subject names the
callers it answers; only health and metrics stay open. A caller is another system or service
holding its own credential: ``Authorization: Bearer <token>``. A service knows the callers it
answers from ``LAMPO_API_CLIENTS`` (JSON: caller name → that caller's token); it keeps only their
SHA-256 digests in memory and compares in constant time. It presents its own credential to the
services it calls from ``LAMPO_API_TOKEN``.

- no credential, or one no configured caller holds: 401 (``unauthenticated``);
- a known caller the route does not answer: 403 (``forbidden``).

No clients configured: every call is refused (fail closed).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from fastapi import HTTPException, Request


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

    def identify(self, authorization: str | None) -> Caller | None:
        if not authorization or not authorization.startswith("Bearer "):
            return None
        presented = _digest(authorization[len("Bearer ") :])
        found: Caller | None = None
        for name, digest in self._digests:  # every digest compared: timing tells nothing
            if hmac.compare_digest(presented, digest):
                found = Caller(name)
        return found


def requires(callers: Callable[[], Callers], *allowed: str) -> Callable[[Request], Awaitable[Caller]]:
    """A FastAPI dependency answering 401/403 unless the caller is one of ``allowed``."""

    async def caller(request: Request) -> Caller:
        found = callers().identify(request.headers.get("authorization"))
        if found is None:
            raise HTTPException(401, "unauthenticated", headers={"WWW-Authenticate": "Bearer"})
        if found.name not in allowed:
            raise HTTPException(403, "forbidden")
        return found

    return caller
