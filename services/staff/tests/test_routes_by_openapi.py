"""Every operation of the staff API's OpenAPI document, generated: without a credential 401; with a
service's credential (a caller of the registry and the coordinator, not a person) 401; a person
with no role 403, except the routes any signed-in person uses. A new route that forgets its check
fails here."""

from __future__ import annotations

import re

import pytest
from staff_support import CALLERS, Suite, password

from lampo.crypto import new_master_key
from lampo.staff.app import build
from lampo.staff.settings import StaffSettings

# What any signed-in person may do whatever their roles (login needs no token at all).
OPEN = {("POST", "/v1/login")}
# Any signed-in person: leaving, reading the API, and recording their own confidentiality commitment (§8).
ANY_PERSON = {("POST", "/v1/logout"), ("GET", "/v1/openapi.json"), ("POST", "/v1/me/confidentiality")}


def _operations() -> list[tuple[str, str]]:
    staff = build(StaffSettings(master_key=new_master_key(), datamap_file=None))  # built, never started
    document = staff.runtime.openapi()
    return sorted(
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "put", "post", "delete", "patch")
    )


OPERATIONS = _operations()


def test_the_document_lists_the_routes() -> None:
    assert ("GET", "/v1/subjects/{customer_number}") in OPERATIONS and ("POST", "/v1/dsar/requests") in OPERATIONS


@pytest.mark.parametrize(("method", "path"), [op for op in OPERATIONS if op not in OPEN])
async def test_every_operation_refuses_no_credential_a_service_credential_and_a_person_without_a_role(
    suite: Suite, method: str, path: str
) -> None:
    url = re.sub(r"\{[^}]+\}", "x-1", path)
    for headers in (
        {},
        {"authorization": f"Bearer {CALLERS['staff']}"},
        {"authorization": f"Bearer {CALLERS['portal']}"},
    ):
        r = await suite.client.request(method, url, headers=headers, json={})
        assert r.status_code == 401, (method, path, headers, r.status_code)
    if (method, path) in ANY_PERSON:
        return
    if "nobody" not in suite.users:
        admin = await suite.as_role("administrator")
        secret = password()
        r = await suite.client.post(
            "/v1/users", json={"username": "no.roles", "password": secret, "roles": []}, headers=admin
        )
        assert r.status_code == 201, r.text
        suite.users["nobody"] = ("no.roles", secret)
    r = await suite.client.request(method, url, headers=await suite.as_role("nobody"), json={})
    assert r.status_code == 403, (method, path, r.status_code, r.text)
