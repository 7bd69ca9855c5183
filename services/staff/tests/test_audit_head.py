"""The running staff service publishes its audit chain's head to staff.audit-heads.v1 on its
own, and GET /v1/audit/verify checks the chain against it (a cut tail fails)."""

from __future__ import annotations

from staff_support import Suite

from lampo.staff.audit_head import last_head
from lampo.testing import eventually


async def test_the_service_publishes_its_head_and_verify_uses_it(suite: Suite) -> None:
    auditor = await suite.as_role("auditor")
    access = suite.staff.access
    async with suite.staff.runtime.pool.acquire() as conn:
        rows = await conn.fetchval("SELECT max(seq) FROM audit_log")

    async def published() -> bool:
        head = await last_head(suite.settings, access.audit_key)
        return head is not None and head.seq >= rows

    await eventually(published, timeout=30, interval=0.5)  # every 2 s in these tests
    r = await suite.client.get("/v1/audit/verify", headers=auditor)
    assert r.status_code == 200 and r.json()["ok"] is True and r.json()["head_seq"] >= rows, r.text

    head = await last_head(suite.settings, access.audit_key)
    assert head is not None
    async with suite.staff.runtime.pool.acquire() as conn:  # an intruder with database rights
        await conn.execute("SET session_replication_role = replica")
        await conn.execute("DELETE FROM audit_log WHERE seq >= $1", head.seq)
        await conn.execute("SET session_replication_role = origin")
    r = await suite.client.get("/v1/audit/verify", headers=auditor)
    assert r.status_code == 200 and r.json()["ok"] is False and "tail was cut" in r.json()["reason"], r.text
