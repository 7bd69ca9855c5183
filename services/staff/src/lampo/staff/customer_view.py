"""A customer across every store, by category as the user's roles allow, and the look-up that finds
them: what the JSON API (``GET /v1/subjects/…``) and the console's customer pages both do.

- The roles × categories matrix decides which categories are read; a category outside the user's
  roles is refused (named in the audit row), and a store holding only such categories is never
  asked. The registry is always asked (the customer must exist); billing holds ``billing``,
  recordings and the consent ledger ``customer_relationship``.
- The registry finds customers through its blind indexes (``POST /v1/search``): the value goes in
  a request body, never in a URL, a log or the audit log (which records the field searched by and
  how many were found).
- Every read, search and playback is audited under the user's name before any data leaves: who,
  which customer, which categories (a failed audit write answers 500 and discloses nothing).
- A store that cannot answer is named in ``unavailable``; the others are still shown.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn
from urllib.parse import quote

import httpx

from lampo.staff.access import Access
from lampo.staff.domain import CATEGORIES, CUSTOMER_NUMBER, AuditEntry, Rights
from lampo.staff.errors import CategoryNotPermitted, InvalidInput, NoMatch, UpstreamUnavailable

REGISTRY_CATEGORIES = ("basic", "contact_person", "contact", "customer_relationship", "services", "consumption")
# The other stores and the categories each holds.
STORE_CATEGORIES: dict[str, tuple[str, ...]] = {
    "billing": ("billing",),
    "recordings": ("customer_relationship",),
    "consent": ("customer_relationship",),
}
CONNECTED = frozenset(REGISTRY_CATEGORIES) | {c for cs in STORE_CATEGORIES.values() for c in cs}
SEARCH_BY = ("customer_number", "identity_code", "email", "name")
RECORDINGS_CATEGORY = "customer_relationship"


@dataclass
class Clients:
    """The staff service's clients of the stores it reads (each presenting its own credential)."""

    registry: httpx.AsyncClient
    billing: httpx.AsyncClient
    recordings: httpx.AsyncClient
    consent: httpx.AsyncClient

    def of(self, store: str) -> httpx.AsyncClient:
        client: httpx.AsyncClient = getattr(self, store)
        return client

    async def aclose(self) -> None:
        for client in (self.registry, self.billing, self.recordings, self.consent):
            await client.aclose()


@dataclass
class CustomerView:
    customer_number: str
    subject_id: str
    restricted: bool
    withheld: bool
    categories: dict[str, list[dict[str, Any]]]
    """Category -> items, each naming its ``store``; only the categories read."""
    unavailable: list[str] = field(default_factory=list)
    not_connected: list[str] = field(default_factory=list)

    def items(self, category: str, store: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
        return [
            i
            for i in self.categories.get(category, [])
            if (store is None or i.get("store") == store) and (kind is None or i.get("kind") == kind)
        ]


@dataclass(frozen=True)
class Audio:
    media_type: str
    body: AsyncIterator[bytes]


class Customers:
    def __init__(self, access: Callable[[], Access], clients: Clients) -> None:
        self._access = access
        self.clients = clients

    @property
    def access(self) -> Access:
        return self._access()

    def scope(self, user: Rights, asked: list[str] | None) -> list[str]:
        """The categories to read: those asked (default: every one the user's roles may read), in
        the privacy statement's order."""
        scope = asked if asked is not None else [c for c in CATEGORIES if c in user.read]
        return [c for c in CATEGORIES if c in scope]

    async def read(
        self, user: Rights, customer_number: str, asked: list[str] | None = None, *, interface: str = "http"
    ) -> CustomerView:
        """The customer's data in the categories ``asked`` (default: all the user may read)."""
        if not CUSTOMER_NUMBER.fullmatch(customer_number):
            raise InvalidInput("customer_number: 1-128 printable ASCII characters")
        await self.access.require_commitment(user.username)  # §8
        scope = self.scope(user, asked)
        refused = [c for c in scope if c not in user.read]
        if refused or not scope:
            await self.access.audit(
                AuditEntry(user.username, "subject_read", interface, "denied", customer_number, tuple(refused or scope))
            )
            raise CategoryNotPermitted(
                f"categories: the user's roles may not read {', '.join(refused)}" if refused
                else "the user's roles may read no customer data"
            )  # fmt: skip
        # Always asked, even for categories it does not hold: the customer must exist.
        answer = await self._registry_read(customer_number, [c for c in scope if c in REGISTRY_CATEGORIES] or scope)
        if answer is None:
            await self.access.audit(
                AuditEntry(user.username, "subject_read", interface, "no_match", customer_number, tuple(scope))
            )
            raise NoMatch("customer_number: no such customer")
        stores = [s for s, held in STORE_CATEGORIES.items() if any(c in scope for c in held)]
        answers = await asyncio.gather(*(self._store_read(s, customer_number) for s in stores))
        # Recorded before the data leaves: an audit failure answers 500 and discloses nothing.
        await self.access.audit(
            AuditEntry(user.username, "subject_read", interface, "ok", customer_number, tuple(scope)),
            check_reads=True,
        )
        categories: dict[str, list[dict[str, Any]]] = {c: [] for c in scope if c in CONNECTED}
        for category, items in answer["categories"].items():
            if category in categories:
                categories[category] += [{**item, "store": "registry"} for item in items]
        withheld = bool(answer.get("withheld"))
        unavailable: list[str] = []
        for store, found in zip(stores, answers, strict=True):
            if found is None:  # the store holds nothing under this number
                continue
            if isinstance(found, str):
                unavailable.append(found)
                continue
            withheld = withheld or bool(found.get("withheld"))
            for category, items in found["categories"].items():
                if category in categories:
                    categories[category] += [{**item, "store": store} for item in items]
        return CustomerView(
            customer_number=customer_number,
            subject_id=answer["subject_id"],
            restricted=bool(answer["restricted"]),
            withheld=withheld,
            categories=categories,
            unavailable=unavailable,
            not_connected=[c for c in scope if c not in CONNECTED],
        )

    async def search(self, user: Rights, by: str, value: str, *, interface: str = "http") -> list[str]:
        """The customer numbers ``value`` leads to (registry blind indexes); audited without the value."""
        if by not in SEARCH_BY:
            raise InvalidInput(f"by: one of {', '.join(SEARCH_BY)}")
        if not user.read:
            await self.refuse_search(user, by, interface=interface)
        await self.access.require_commitment(user.username)  # §8
        try:
            response = await self.clients.registry.post("/v1/search", json={"by": by, "value": value})
        except httpx.HTTPError as e:
            raise UpstreamUnavailable(f"registry: {type(e).__name__}") from e
        if response.status_code == 422:
            field_name = response.json().get("field") or "value"
            error = response.json().get("error", "invalid")
            raise InvalidInput(f"{field_name}: {error.removeprefix('invalid_').replace('_', ' ')} is not valid")
        if response.status_code != 200:
            raise UpstreamUnavailable(f"registry answered {response.status_code}")
        found: list[str] = response.json()["customer_numbers"]
        await self.access.audit(
            AuditEntry(user.username, "customer_search", interface, "ok", detail={"by": by, "found": len(found)}),
            check_reads=True,
        )
        return found

    async def refuse_search(self, user: Rights, by: str | None = None, *, interface: str = "http") -> NoReturn:
        """Audit a search by a user whose roles read no customer data, and refuse it."""
        await self.access.audit(AuditEntry(user.username, "customer_search", interface, "denied", detail={"by": by}))
        raise CategoryNotPermitted("the user's roles may read no customer data")

    async def audio(self, user: Rights, customer_number: str, recording_id: str, *, interface: str = "http") -> Audio:
        """One recording's audio, streamed from the recordings store; audited as a read of the
        customer's ``customer_relationship`` with the recording's id."""
        if not CUSTOMER_NUMBER.fullmatch(customer_number) or not CUSTOMER_NUMBER.fullmatch(recording_id):
            raise InvalidInput("recording: 1-128 printable ASCII characters")
        await self.access.require_commitment(user.username)  # §8
        categories = (RECORDINGS_CATEGORY,)
        detail = {"recording_id": recording_id}
        if RECORDINGS_CATEGORY not in user.read:
            await self.access.audit(
                AuditEntry(user.username, "recording_played", interface, "denied", customer_number, categories, detail)
            )
            raise CategoryNotPermitted(f"categories: the user's roles may not read {RECORDINGS_CATEGORY}")
        client = self.clients.recordings
        path = f"/v1/customers/{quote(customer_number, safe='')}/recordings/{quote(recording_id, safe='')}/audio"
        try:
            response = await client.send(client.build_request("GET", path), stream=True)
        except httpx.HTTPError as e:
            raise UpstreamUnavailable(f"recordings: {type(e).__name__}") from e
        if response.status_code != 200:
            await response.aclose()
            outcome = {404: "no_match", 409: "withheld"}.get(response.status_code, f"refused_{response.status_code}")
            await self.access.audit(
                AuditEntry(user.username, "recording_played", interface, outcome, customer_number, categories, detail)
            )
            if response.status_code in (404, 409):
                raise NoMatch("recording: no such recording of this customer, or withheld (restricted)")
            raise UpstreamUnavailable(f"recordings answered {response.status_code}")
        await self.access.audit(
            AuditEntry(user.username, "recording_played", interface, "ok", customer_number, categories, detail),
            check_reads=True,
        )

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.aiter_bytes():
                    yield chunk
            finally:
                await response.aclose()

        return Audio(response.headers.get("content-type", "application/octet-stream"), body())

    async def _registry_read(self, customer_number: str, categories: list[str]) -> dict[str, Any] | None:
        try:
            response = await self.clients.registry.get(
                f"/v1/subjects/{quote(customer_number, safe='')}", params={"categories": ",".join(categories)}
            )
        except httpx.HTTPError as e:
            raise UpstreamUnavailable(f"registry: {type(e).__name__}") from e
        if response.status_code == 404:
            return None
        if response.status_code == 400:
            raise InvalidInput("customer_number: not accepted by the registry")
        if response.status_code != 200:
            raise UpstreamUnavailable(f"registry answered {response.status_code}")
        body: dict[str, Any] = response.json()
        return body

    async def _store_read(self, store: str, customer_number: str) -> dict[str, Any] | str | None:
        """A store's answer; None when it holds nothing under the number; the store's name when
        it could not answer."""
        try:
            response = await self.clients.of(store).get(f"/v1/customers/{quote(customer_number, safe='')}")
        except httpx.HTTPError:
            return store
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            return store
        body: dict[str, Any] = response.json()
        return body
