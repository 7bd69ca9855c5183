"""Identity resolution: identifiers -> the registry's subject. A subject the registry does not
know is ``no_match``; a registry that does not answer makes the request wait (it is retried)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import httpx


@dataclass(frozen=True)
class Resolved:
    subject_id: str
    customer_numbers: list[str]
    kind: str | None = None


@dataclass(frozen=True)
class Unresolved:
    reason: str  # "no_match" | "invalid"
    detail: str


class RegistryUnavailable(Exception):
    """The registry did not answer (down, timeout, 5xx): try again later."""


class IdentityResolver(Protocol):
    async def resolve(self, identifiers: dict[str, str]) -> Resolved | Unresolved: ...

    async def close(self) -> None: ...


class RegistryResolver:
    """``POST <registry>/v1/resolve`` with the identifiers, presenting ``token`` (the coordinator's
    own credential, ``LAMPO_API_TOKEN``). A registry that refuses the credential (401/403) is a
    configuration fault, not an answer: the request waits and is retried."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 5.0,
        token: str = "",
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), timeout=timeout_s, transport=transport, headers=headers
        )

    async def resolve(self, identifiers: dict[str, str]) -> Resolved | Unresolved:
        try:
            response = await self._client.post("/v1/resolve", json=identifiers)
        except httpx.HTTPError as e:
            raise RegistryUnavailable(type(e).__name__) from e
        if response.status_code == 200:
            body = response.json()
            return Resolved(
                str(body["subject_id"]), [str(c) for c in body.get("customer_numbers") or []], body.get("kind")
            )
        if response.status_code == 404:
            return Unresolved("no_match", "identifiers: no subject in the registry matches")
        if response.status_code in (400, 422):
            return Unresolved("invalid", "identifiers: the registry refused them as malformed")
        raise RegistryUnavailable(f"HTTP {response.status_code}")

    async def close(self) -> None:
        await self._client.aclose()


class CustomerNumberResolver:
    """Benchmarks only: a customer number *is* the subject (``cn-<number>``); nothing else matches.
    It skips the registry, so it never answers no_match for an unknown customer number."""

    async def resolve(self, identifiers: dict[str, str]) -> Resolved | Unresolved:
        number = identifiers.get("customer_number")
        if number is None:
            return Unresolved("no_match", "identifiers: this resolver knows customer numbers only")
        return Resolved(f"cn-{number}", [number], None)

    async def close(self) -> None:
        return None
