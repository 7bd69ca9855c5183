"""Every role × category cell: a user reads exactly the categories their granted role may read."""

from __future__ import annotations

import pytest
from staff_support import ROLES, Suite

from lampo.staff.domain import CATEGORIES

# The specification (privacy statement §8/§10), written out here on purpose rather than read from
# roles.toml: a change of the roles file must change this table too.
MAY_READ: dict[str, set[str]] = {
    "administrator": set(),
    "customer_service": {"basic", "contact_person", "contact", "customer_relationship", "services", "consumption"},
    "billing_clerk": {"basic", "contact", "billing", "consumption"},
    "data_protection_officer": set(CATEGORIES),
    "auditor": set(),
}
SEEDED = {"basic", "contact", "customer_relationship", "consumption", "billing"}  # billing: the billing store


@pytest.mark.parametrize("category", CATEGORIES)
@pytest.mark.parametrize("role", ROLES)
async def test_role_category_cell(suite: Suite, role: str, category: str) -> None:
    headers = await suite.as_role(role)
    r = await suite.client.get(f"/v1/subjects/{suite.customer}", params={"categories": category}, headers=headers)
    if category in MAY_READ[role]:
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body["categories"]) | set(body["not_connected"]) == {category}
        if category in SEEDED:
            assert body["categories"][category], f"{role} should see the seeded {category} data"
    else:
        assert r.status_code == 403, r.text
        assert r.json()["error"]["reason"] == "category_not_permitted"
        assert suite.customer not in r.text


@pytest.mark.parametrize("role", ROLES)
async def test_default_read_is_exactly_the_roles_categories(suite: Suite, role: str) -> None:
    headers = await suite.as_role(role)
    r = await suite.client.get(f"/v1/subjects/{suite.customer}", headers=headers)
    if not MAY_READ[role]:
        assert r.status_code == 403
        return
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body["categories"]) | set(body["not_connected"]) == MAY_READ[role]
    if "basic" in MAY_READ[role]:
        [person] = [i for i in body["categories"]["basic"] if i["section"] == "person"]
        assert person["data"]["last_name"] == "Asiakas4242"  # decrypted by the registry


async def test_reads_are_audited_with_customer_number_and_categories(suite: Suite) -> None:
    headers = await suite.as_role("billing_clerk")
    await suite.client.get(f"/v1/subjects/{suite.customer}", params={"categories": "contact,billing"}, headers=headers)
    await suite.client.get(f"/v1/subjects/{suite.customer}", params={"categories": "services"}, headers=headers)
    async with suite.staff.runtime.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT outcome, categories, interface FROM audit_log WHERE actor = 'billing.clerk.user'"
            " AND action = 'subject_read' AND customer_number = $1 ORDER BY seq DESC LIMIT 2",
            suite.customer,
        )
    assert [(r["outcome"], list(r["categories"]), r["interface"]) for r in rows] == [
        ("denied", ["services"], "http"),
        ("ok", ["contact", "billing"], "http"),
    ]


async def test_a_user_has_only_what_was_granted(suite: Suite) -> None:
    admin = await suite.as_role("administrator")
    username, secret = suite.users["auditor"]
    r = await suite.client.post(f"/v1/users/{username}/grants", json={"role": "billing_clerk"}, headers=admin)
    assert r.json()["roles"] == ["auditor", "billing_clerk"]
    login = await suite.client.post("/v1/login", json={"username": username, "password": secret})
    headers = {"authorization": f"Bearer {login.json()['token']}"}
    assert (
        await suite.client.get(f"/v1/subjects/{suite.customer}", params={"categories": "billing"}, headers=headers)
    ).status_code == 200
    r = await suite.client.delete(f"/v1/users/{username}/grants/billing_clerk", headers=admin)
    assert r.json()["roles"] == ["auditor"]
    r = await suite.client.get(f"/v1/subjects/{suite.customer}", params={"categories": "billing"}, headers=headers)
    assert r.status_code == 403  # revoked at once, even for a token issued before


async def test_unknown_customer_is_404_and_unknown_category_422(suite: Suite) -> None:
    headers = await suite.as_role("customer_service")
    assert (await suite.client.get("/v1/subjects/NOPE-1", headers=headers)).status_code == 404
    r = await suite.client.get(f"/v1/subjects/{suite.customer}", params={"categories": "secrets"}, headers=headers)
    assert r.status_code == 422 and r.json()["error"]["detail"].startswith("categories")
