"""Login hardening (a per-address throttle besides the per-account lockout; failure counts by
index, not from the audit log) and §8: no customer data before a confidentiality commitment."""

from __future__ import annotations

import httpx
from staff_support import Suite, password

from lampo.staff.access import address_digest


async def _new_user(suite: Suite, username: str, role: str = "customer_service") -> str:
    secret = password()
    admin = await suite.as_role("administrator")
    r = await suite.client.post(
        "/v1/users", json={"username": username, "password": secret, "roles": [role]}, headers=admin
    )
    assert r.status_code == 201, r.text
    return secret


async def test_one_address_cannot_lock_every_account(suite: Suite) -> None:
    secrets = {name: await _new_user(suite, name) for name in ("throttle.one", "throttle.two")}
    place = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=suite.staff.runtime.app, client=("192.0.2.7", 40000)), base_url="http://staff"
    )
    before = suite.settings.address_throttle_after
    suite.settings.address_throttle_after = 3
    try:
        answers = []
        for name in secrets:  # five wrong passwords at each account, from one place
            for i in range(5):
                r = await place.post("/v1/login", json={"username": name, "password": f"wrong-{i}-password"})
                answers.append((r.status_code, r.json()["error"]["reason"]))
        assert answers[:3] == [(401, "invalid_credentials")] * 3
        assert answers[3:] == [(429, "throttled")] * 7
        assert int(r.headers["retry-after"]) == suite.settings.address_throttle_window_s
        # Neither account is locked: from another place both log in with their passwords.
        for name, secret in secrets.items():
            r = await suite.client.post("/v1/login", json={"username": name, "password": secret})
            assert r.status_code == 200, r.text
        # The throttled place is refused even with a right password.
        r = await place.post("/v1/login", json={"username": "throttle.one", "password": secrets["throttle.one"]})
        assert r.status_code == 429
    finally:
        suite.settings.address_throttle_after = before
        await place.aclose()
    async with suite.staff.runtime.pool.acquire() as conn:
        throttled = await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'login_throttled'")
        in_clear = await conn.fetchval("SELECT count(*) FROM audit_log WHERE detail::text LIKE '%192.0.2.7%'")
    assert throttled == 8 and in_clear == 0  # the address is kept as a digest only


async def test_failed_logins_are_counted_by_index_not_from_the_audit_log(suite: Suite) -> None:
    async with suite.staff.runtime.pool.acquire() as conn:
        # Many old failures, so the planner has a table worth an index to choose from.
        await conn.execute(
            "INSERT INTO login_failures (at, address) SELECT now() - interval '400 days' - g * interval '1 second',"
            " 'bulk-' || (g % 500) FROM generate_series(1, 20000) g"
        )
        await conn.execute("ANALYZE login_failures")
        plans = []
        for sql, args in (
            ("SELECT count(*) FROM login_failures WHERE at > $1", ["2026-01-01T00:00:00Z"]),
            ("SELECT count(*) FROM login_failures WHERE address = $1 AND at > $2",
             [address_digest("192.0.2.8"), "2026-01-01T00:00:00Z"]),
        ):  # fmt: skip
            rows = await conn.fetch(f"EXPLAIN {sql}", *[_ts(a) if a.startswith("2026") else a for a in args])
            plans.append("\n".join(r[0] for r in rows))
    for plan in plans:
        assert "Index" in plan and "Seq Scan" not in plan and "audit_log" not in plan, plan


def _ts(value: str) -> object:
    from datetime import datetime

    return datetime.fromisoformat(value)


async def test_no_customer_data_before_the_confidentiality_commitment(suite: Suite) -> None:
    secret = await _new_user(suite, "new.colleague")
    r = await suite.client.post("/v1/login", json={"username": "new.colleague", "password": secret})
    headers = {"authorization": f"Bearer {r.json()['token']}"}
    url = f"/v1/subjects/{suite.customer}"
    r = await suite.client.get(url, params={"categories": "basic"}, headers=headers)
    assert r.status_code == 403 and r.json()["error"]["reason"] == "confidentiality_commitment_missing"
    assert suite.customer not in r.text
    r = await suite.client.post("/v1/me/confidentiality", json={"text_version": "1999-old"}, headers=headers)
    assert r.status_code == 422 and "text_version" in r.json()["error"]["detail"]
    version = suite.settings.confidentiality_text_version
    r = await suite.client.post("/v1/me/confidentiality", json={"text_version": version}, headers=headers)
    assert r.status_code == 200 and r.json()["username"] == "new.colleague" and r.json()["text_version"] == version
    r = await suite.client.get(url, params={"categories": "basic"}, headers=headers)
    assert r.status_code == 200, r.text
    async with suite.staff.runtime.pool.acquire() as conn:
        recorded = await conn.fetch(
            "SELECT username, text_version FROM confidentiality_commitments WHERE username = 'new.colleague'"
        )
        audited = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE actor = 'new.colleague' AND action = 'confidentiality_committed'"
        )
    assert [tuple(r) for r in recorded] == [("new.colleague", version)] and audited == 1
    # A DSAR handler too: nothing about a request before the commitment.
    secret = await _new_user(suite, "new.dpo", "data_protection_officer")
    r = await suite.client.post("/v1/login", json={"username": "new.dpo", "password": secret})
    r = await suite.client.get(
        "/v1/dsar/requests/some-request", headers={"authorization": f"Bearer {r.json()['token']}"}
    )
    assert r.status_code == 403 and r.json()["error"]["reason"] == "confidentiality_commitment_missing"
