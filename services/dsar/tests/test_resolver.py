"""Identity resolution beyond the registry: a customer only billing, recordings or consent knows is
still a customer (the HTTP of each store played by httpx.MockTransport; the coordinator's
integration test resolves one over real HTTP)."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from lampo.crypto import KeyRing, new_master_key
from lampo.dsar.resolver import (
    RegistryResolver,
    RegistryUnavailable,
    Resolved,
    StoreLookup,
    StoresResolver,
    Unresolved,
    store_subject_id,
)

KEYS = KeyRing(base64.b64decode(new_master_key()))


def registry(known: dict[str, str]) -> RegistryResolver:
    def answer(request: httpx.Request) -> httpx.Response:
        number = json.loads(request.content).get("customer_number")
        if number in known:
            return httpx.Response(200, json={"subject_id": known[number], "customer_numbers": [number]})
        return httpx.Response(404, json={"error": "no_match"})

    return RegistryResolver("http://registry", transport=httpx.MockTransport(answer))


class Store:
    def __init__(self, name: str, knows: dict[str, list[str]], status: int | None = None) -> None:
        self.name, self.knows, self.status = name, knows, status
        self.seen: list[httpx.Request] = []

    def lookup(self) -> StoreLookup:
        return StoreLookup(self.name, f"http://{self.name}", token="s3cret", transport=httpx.MockTransport(self.answer))

    def answer(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        if self.status is not None:
            return httpx.Response(self.status)
        number = json.loads(request.content)["customer_number"]
        if number in self.knows:
            return httpx.Response(200, json={"customer_numbers": self.knows[number]})
        return httpx.Response(404, json={"error": "unknown"})


def resolver(*stores: Store, known: dict[str, str] | None = None) -> StoresResolver:
    return StoresResolver(
        registry(known or {}), [s.lookup() for s in stores], lambda n: store_subject_id(KEYS.blind_index, n)
    )


async def test_the_registry_answers_first_and_the_stores_are_not_asked() -> None:
    billing = Store("billing", {"100001": ["100001"]})
    outcome = await resolver(billing, known={"100001": "uuid-1"}).resolve({"customer_number": "100001"})
    assert outcome == Resolved("uuid-1", ["100001"], None)
    assert billing.seen == []


async def test_a_customer_only_billing_knows_is_found_with_a_stable_pseudonymous_id() -> None:
    both = ["200002", "200003"]
    billing = Store("billing", {"200002": both, "200003": both, "200009": ["200009"]})
    consent = Store("consent", {})
    first = await resolver(billing, consent).resolve({"customer_number": "200002"})
    again = await resolver(billing, consent).resolve({"customer_number": "200003"})
    other = await resolver(billing, consent).resolve({"customer_number": "200009"})
    assert isinstance(first, Resolved) and isinstance(again, Resolved) and isinstance(other, Resolved)
    assert first.customer_numbers == both and again.customer_numbers == ["200003", "200002"]
    assert first.subject_id == again.subject_id != other.subject_id
    assert first.subject_id.startswith("cn-") and "200002" not in first.subject_id
    request = billing.seen[0]
    assert request.url.path == "/v1/resolve" and json.loads(request.content) == {"customer_number": "200002"}
    assert request.headers["authorization"] == "Bearer s3cret"
    assert len(consent.seen) == 3  # every store is asked: each may know other numbers of the customer


async def test_nobody_knowing_the_customer_is_no_match() -> None:
    outcome = await resolver(Store("billing", {}), Store("recordings", {})).resolve({"customer_number": "300003"})
    assert isinstance(outcome, Unresolved) and outcome.reason == "no_match"


async def test_only_a_customer_number_is_taken_to_the_stores() -> None:
    billing = Store("billing", {"400004": ["400004"]})
    outcome = await resolver(billing).resolve({"email": "someone@example.com"})
    assert isinstance(outcome, Unresolved) and outcome.reason == "no_match"
    assert billing.seen == []


@pytest.mark.parametrize("status", [401, 500, 503])
async def test_a_store_that_does_not_answer_makes_the_request_wait(status: int) -> None:
    with pytest.raises(RegistryUnavailable, match="recordings"):
        await resolver(Store("billing", {}), Store("recordings", {}, status=status)).resolve(
            {"customer_number": "500005"}
        )
