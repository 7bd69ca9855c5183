"""Identity resolution: identifiers -> the registry's subject. A subject the registry does not
know may still be a customer of billing, recordings or consent (a customer number only billing
knows is still a customer): those stores are asked next, by customer number. Nobody knowing it
is ``no_match``; a registry or store that does not answer makes the request wait (it is retried)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
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
        self._client = _client(base_url, timeout_s, token, transport)

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


def _client(
    base_url: str, timeout_s: float, token: str, transport: httpx.AsyncBaseTransport | None
) -> httpx.AsyncClient:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout_s, headers=headers, transport=transport)


class StoreLookup:
    """``POST <store>/v1/resolve {"customer_number"}``: 200 ``{"customer_numbers": [...]}`` when
    the store keeps that customer, 404 when not. Anything else (down, 401, 5xx) is raised as
    ``RegistryUnavailable``: the request waits rather than answer no_match on a guess."""

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        timeout_s: float = 5.0,
        token: str = "",
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self._client = _client(base_url, timeout_s, token, transport)

    async def customer_numbers(self, customer_number: str) -> list[str] | None:
        try:
            response = await self._client.post("/v1/resolve", json={"customer_number": customer_number})
        except httpx.HTTPError as e:
            raise RegistryUnavailable(f"{self.name}: {type(e).__name__}") from e
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise RegistryUnavailable(f"{self.name}: HTTP {response.status_code}")
        try:
            numbers = [str(n) for n in response.json().get("customer_numbers") or []]
        except (ValueError, AttributeError) as e:
            raise RegistryUnavailable(f"{self.name}: unreadable answer") from e
        return numbers or [customer_number]

    async def close(self) -> None:
        await self._client.aclose()


class StoresResolver:
    """The registry first; on its no_match, each store in turn by customer number. A subject found
    only in a store gets a pseudonymous subject id of its own, the same every time for the same
    customer (``pseudonym`` of its least customer number: a keyed hash, so the id tells nothing
    without the key, prefixed so that it never equals a registry subject id, which are UUIDs)."""

    def __init__(self, registry: IdentityResolver, stores: list[StoreLookup], pseudonym: Callable[[str], str]) -> None:
        self._registry = registry
        self._stores = stores
        self._pseudonym = pseudonym

    async def resolve(self, identifiers: dict[str, str]) -> Resolved | Unresolved:
        outcome = await self._registry.resolve(identifiers)
        number = identifiers.get("customer_number")
        if not (isinstance(outcome, Unresolved) and outcome.reason == "no_match" and number):
            return outcome
        found: dict[str, None] = {}
        for store in self._stores:
            numbers = await store.customer_numbers(number)
            if numbers is not None:
                found.update(dict.fromkeys(numbers))
        if not found:
            return Unresolved("no_match", "identifiers: no subject in the registry or the stores matches")
        numbers = [number, *(n for n in found if n != number)]
        # Named after the least of its numbers: the same id whichever number the subject gives.
        return Resolved(self._pseudonym(min(numbers)), numbers, None)

    async def close(self) -> None:
        await self._registry.close()
        for store in self._stores:
            await store.close()


def store_subject_id(index: Callable[[str, str], bytes], customer_number: str) -> str:
    """The pseudonymous subject id of a customer known only to the stores: ``cn-`` and a keyed
    hash (the KeyRing's blind index) of the customer number."""
    return "cn-" + index("store_subject", customer_number).hex()[:32]


def stores_from(urls: Mapping[str, str], *, timeout_s: float, token: str) -> list[StoreLookup]:
    return [StoreLookup(name, url, timeout_s=timeout_s, token=token) for name, url in urls.items()]
