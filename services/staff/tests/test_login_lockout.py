"""Lockout after repeated failures, administrator unlock, alerts, and the audit of every login."""

from __future__ import annotations

from datetime import timedelta

from staff_support import Suite, password

from lampo.testing import eventually, metric_sample


async def _new_user(suite: Suite, username: str, role: str = "customer_service") -> str:
    secret = password()
    admin = await suite.as_role("administrator")
    r = await suite.client.post(
        "/v1/users", json={"username": username, "password": secret, "roles": [role]}, headers=admin
    )
    assert r.status_code == 201, r.text
    return secret


async def test_lockout_after_five_failures_and_admin_unlock(suite: Suite) -> None:
    secret = await _new_user(suite, "lock.me")
    for attempt in range(1, 5):
        r = await suite.client.post("/v1/login", json={"username": "lock.me", "password": f"wrong-{attempt}-xxxxxx"})
        assert r.status_code == 401 and r.json()["error"]["reason"] == "invalid_credentials"
    r = await suite.client.post("/v1/login", json={"username": "lock.me", "password": "wrong-5-xxxxxxxx"})
    assert r.status_code == 401 and r.json()["error"]["reason"] == "invalid_credentials"
    # Locked: even the right password is refused, with the answer an unknown name gets (the
    # answer does not tell that the account exists).
    r = await suite.client.post("/v1/login", json={"username": "lock.me", "password": secret})
    unknown = await suite.client.post("/v1/login", json={"username": "no.such.user", "password": secret})
    assert r.status_code == unknown.status_code == 401
    assert r.json() == unknown.json() and r.headers == unknown.headers
    # Only an administrator unlocks.
    other = await suite.as_role("customer_service")
    assert (await suite.client.post("/v1/users/lock.me/unlock", headers=other)).status_code == 403
    admin = await suite.as_role("administrator")
    assert (await suite.client.post("/v1/users/lock.me/unlock", headers=admin)).status_code == 204
    r = await suite.client.post("/v1/login", json={"username": "lock.me", "password": secret})
    assert r.status_code == 200
    async with suite.staff.runtime.pool.acquire() as conn:
        actions = [
            (r["action"], r["outcome"])
            for r in await conn.fetch("SELECT action, outcome FROM audit_log WHERE actor = 'lock.me' ORDER BY seq")
        ]
        alerts = await conn.fetch("SELECT kind FROM alerts WHERE username = 'lock.me'")
        secrets_in_audit = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE detail::text LIKE $1", f"%{secret}%"
        )
    assert actions == [("login_failed", "wrong_password")] * 5 + [
        ("account_locked", "locked"),
        ("login_failed", "locked"),
        ("login_succeeded", "ok"),
    ]
    assert [a["kind"] for a in alerts] == ["lockout"]
    assert secrets_in_audit == 0


async def test_lockout_ends_open_sessions(suite: Suite) -> None:
    secret = await _new_user(suite, "sessions.end")
    r = await suite.client.post("/v1/login", json={"username": "sessions.end", "password": secret})
    headers = {"authorization": f"Bearer {r.json()['token']}"}
    for _ in range(5):
        await suite.client.post("/v1/login", json={"username": "sessions.end", "password": "not-the-password-1"})
    assert (await suite.client.get(f"/v1/subjects/{suite.customer}", headers=headers)).status_code == 401


async def test_repeated_failures_raise_an_alert(suite: Suite) -> None:
    for i in range(suite.settings.failure_alert_threshold):
        await suite.client.post("/v1/login", json={"username": f"nobody{i}", "password": "whatever-password"})
    async with suite.staff.runtime.pool.acquire() as conn:
        kinds = [r["kind"] for r in await conn.fetch("SELECT kind FROM alerts")]
        unknown = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE outcome = 'unknown_user' AND detail::text LIKE '%nobody%'"
        )
    assert "repeated_failures" in kinds
    assert unknown == 0  # an unknown login name is kept only as a digest (it may be a password)


async def test_unusual_read_volume_raises_an_alert(suite: Suite) -> None:
    headers = await suite.as_role("data_protection_officer")
    threshold = suite.settings.read_alert_threshold
    async with suite.staff.runtime.pool.acquire() as conn:
        await conn.execute("SELECT 1")
    for _ in range(threshold + 1):
        r = await suite.client.get(f"/v1/subjects/{suite.customer}", params={"categories": "basic"}, headers=headers)
        assert r.status_code == 200
    async with suite.staff.runtime.pool.acquire() as conn:
        alerts = await conn.fetch("SELECT kind, detail FROM alerts WHERE username = 'data.protection.officer.user'")
    assert [a["kind"] for a in alerts] == ["read_volume"]


async def test_token_expires_after_fifteen_minutes_and_logout_ends_it(suite: Suite) -> None:
    headers = await suite.as_role("customer_service")
    url = f"/v1/subjects/{suite.customer}"
    assert (await suite.client.get(url, headers=headers)).status_code == 200
    suite.clock.advance(timedelta(minutes=15, seconds=1))
    assert (await suite.client.get(url, headers=headers)).status_code == 401
    headers = await suite.as_role("customer_service")
    assert (await suite.client.post("/v1/logout", headers=headers)).status_code == 204
    assert (await suite.client.get(url, headers=headers)).status_code == 401


async def test_password_policy(suite: Suite) -> None:
    admin = await suite.as_role("administrator")
    for secret, rule in (
        ("Short-1", "at least 12"),
        ("xx-policy.user-2026-xx", "username"),
        ("salasana1234", "common"),
    ):
        r = await suite.client.post(
            "/v1/users", json={"username": "policy.user", "password": secret, "roles": []}, headers=admin
        )
        assert r.status_code == 422 and r.json()["error"]["reason"] == "weak_password", r.text
        assert rule in r.json()["error"]["detail"] and secret not in r.text


async def test_lockouts_and_the_audit_chain_check_are_on_metrics(suite: Suite) -> None:
    """What the StaffLockout and AuditChainBroken alert rules read (deploy/prometheus/rules.yml):
    a lockout counted, and the service's own periodic check of the audit chain turning 0 when a
    row is edited behind its back (then 1 again once the row is put back)."""
    before = await _scrape_value(suite, "lampo_staff_lockouts_total") or 0
    await _new_user(suite, "lock.counted")
    for attempt in range(5):
        await suite.client.post("/v1/login", json={"username": "lock.counted", "password": f"wrong-{attempt}-xxxxxx"})
    assert await _scrape_value(suite, "lampo_staff_lockouts_total") == before + 1
    assert await eventually(lambda: _scrape_value(suite, "lampo_staff_audit_chain_intact"), timeout=20) == 1

    async with suite.staff.runtime.pool.acquire() as conn:
        seq, actor = await conn.fetchrow("SELECT seq, actor FROM audit_log WHERE actor = 'lock.counted' LIMIT 1")
        # an intruder with database access, triggers off
        await conn.execute("SET session_replication_role = replica")
        try:
            await conn.execute("UPDATE audit_log SET actor = 'someone-else' WHERE seq = $1", seq)
            await eventually(lambda: _is(suite, "lampo_staff_audit_chain_intact", 0), timeout=20)
            await conn.execute("UPDATE audit_log SET actor = $2 WHERE seq = $1", seq, actor)
        finally:
            await conn.execute("SET session_replication_role = DEFAULT")
    await eventually(lambda: _is(suite, "lampo_staff_audit_chain_intact", 1), timeout=20)
    assert "lock.counted" not in (await suite.client.get("/metrics")).text


async def _scrape_value(suite: Suite, name: str) -> float | None:
    return metric_sample((await suite.client.get("/metrics")).text, name)


async def _is(suite: Suite, name: str, value: float) -> bool:
    return await _scrape_value(suite, name) == value
