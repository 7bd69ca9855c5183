"""A test per HTTP route of every service, generated from each service's OpenAPI document
(``Runtime.openapi()``: its mounted APIs and its own routes): without a credential the answer is
401; with the credential of a known caller the route does not answer, 403. Only /health/* and
/metrics are open, and they are not in the documents. A route added without naming its callers
fails here.

Staff routes are for people (staff login tokens): their roles are checked by the staff service's
own generated test (services/staff/tests/test_routes_by_openapi.py)."""

from __future__ import annotations

import importlib
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from lampo.crypto import new_master_key
from lampo.http_auth import CALLERS_KEY
from lampo.service import Runtime

SERVICES = ["registry", "consent", "dsar", "retention", "billing", "recordings", "staff"]
CALLERS = {name: secrets.token_urlsafe(16) for name in ("staff", "portal", "dsar", "registry", "billing", "stranger")}
OPEN = {("staff", "POST", "/v1/login")}  # a person signs in without a token
PEOPLE = {"staff"}  # services whose routes answer people's login tokens, not callers


@contextmanager
def environment(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def runtime_of(service: str) -> Runtime:
    """The service as its ``lampo-<service>`` script builds it (from the environment), not started."""
    built: Any = importlib.import_module(f"lampo.{service}.app").build()
    return built if isinstance(built, Runtime) else built.runtime


def _build() -> dict[str, Runtime]:
    import json

    with environment(LAMPO_MASTER_KEY=new_master_key(), LAMPO_API_CLIENTS=json.dumps(CALLERS)):
        return {service: runtime_of(service) for service in SERVICES}


RUNTIMES = _build()
OPERATIONS = sorted(
    (service, method.upper(), path)
    for service, runtime in RUNTIMES.items()
    for path, item in runtime.openapi()["paths"].items()
    for method in item
    if method in ("get", "put", "post", "delete", "patch")
)


def _operation(service: str, method: str, path: str) -> dict[str, Any]:
    operation: dict[str, Any] = RUNTIMES[service].openapi()["paths"][path][method.lower()]
    return operation


def test_the_documents_hold_every_api() -> None:
    assert {
        ("dsar", "POST", "/v1/requests"),
        ("dsar", "GET", "/v1/requests/{request_id}"),
        ("dsar", "POST", "/v1/requests/{request_id}/cancel"),
        ("dsar", "GET", "/v1/openapi.json"),
        ("registry", "POST", "/v1/resolve"),
        ("registry", "GET", "/v1/subjects/{customer_number}"),
        ("registry", "GET", "/v1/subjects/{customer_number}/email"),
        ("staff", "POST", "/v1/dsar/requests"),
    } <= set(OPERATIONS)
    assert not any(path.startswith(("/health", "/metrics")) for _, _, path in OPERATIONS)


def test_callers_are_named_as_specified() -> None:
    named = {(s, m, p): _operation(s, m, p).get(CALLERS_KEY) for s, m, p in OPERATIONS if s not in PEOPLE}
    assert named[("dsar", "POST", "/v1/requests")] == ["staff", "portal"]
    assert named[("dsar", "GET", "/v1/requests/{request_id}")] == ["staff", "portal"]
    assert named[("dsar", "POST", "/v1/requests/{request_id}/cancel")] == ["staff"]
    assert named[("registry", "POST", "/v1/resolve")] == ["dsar"]
    assert named[("registry", "GET", "/v1/subjects/{customer_number}")] == ["staff"]
    assert named[("registry", "GET", "/v1/subjects/{customer_number}/email")] == ["portal"]
    assert named[("consent", "POST", "/v1/customers/{customer_number}/consents/{purpose}/withdraw")] == ["portal"]
    assert named[("consent", "GET", "/v1/customers/{customer_number}/receipts/{receipt_id}")] == ["portal"]


async def call(service: str, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    url = re.sub(r"\{[^}]+\}", "x-1", path)
    transport = httpx.ASGITransport(app=RUNTIMES[service].app)
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{service}") as client:
        return await client.request(method, url, headers=headers, json={})


@pytest.mark.parametrize(("service", "method", "path"), [op for op in OPERATIONS if op not in OPEN])
async def test_without_a_credential_the_route_answers_401(service: str, method: str, path: str) -> None:
    attempts: list[dict[str, str]] = [{}, {"authorization": f"Basic {CALLERS['staff']}"}]
    if service not in PEOPLE:  # (a person's unknown token is looked up in the staff database)
        attempts += [{"authorization": "Bearer not-a-credential"}, {"authorization": "Bearer "}]
    for headers in attempts:
        r = await call(service, method, path, headers)
        assert r.status_code == 401, (service, method, path, headers, r.status_code, r.text)


@pytest.mark.parametrize(("service", "method", "path"), [op for op in OPERATIONS if op[0] not in PEOPLE])
async def test_a_caller_the_route_does_not_answer_gets_403(service: str, method: str, path: str) -> None:
    allowed = _operation(service, method, path).get(CALLERS_KEY)
    assert allowed, f"{service} {method} {path} names no callers (lampo.http_auth.requires or guard)"
    refused = [name for name in CALLERS if name not in allowed]
    assert "stranger" in refused
    for name in refused:
        r = await call(service, method, path, {"authorization": f"Bearer {CALLERS[name]}"})
        assert r.status_code == 403, (service, method, path, name, r.status_code, r.text)
