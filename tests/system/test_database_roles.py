"""Every service process runs as a PostgreSQL role of its own (issue 16): not a superuser, owner of
its database alone; it cannot connect to another service's database, and the staff service's
role cannot drop or disable its audit log's triggers."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from suite import Suite

from lampo.db.pool import server_url_of, with_credentials
from lampo.testing import PG_URL


def _as(suite: Suite, name: str, database: str) -> str:
    env = suite[name].env
    return with_credentials(server_url_of(PG_URL, database), env["LAMPO_PG_ROLE"], env["LAMPO_PG_ROLE_PASSWORD"])


async def test_each_service_role_reaches_its_own_database_only(suite: Suite, require: Any) -> None:
    require("registry", "billing")
    own_db = suite["registry"].env["LAMPO_DATABASE"]
    conn = await asyncpg.connect(_as(suite, "registry", own_db))
    try:
        row = await conn.fetchrow("SELECT rolsuper, rolcreatedb FROM pg_roles WHERE rolname = current_user")
        assert not row["rolsuper"] and not row["rolcreatedb"]
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") > 0  # it migrated as itself
    finally:
        await conn.close()
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied for database"):
        await asyncpg.connect(_as(suite, "registry", suite["billing"].env["LAMPO_DATABASE"]))


async def test_the_staff_role_cannot_switch_off_its_audit_log(suite: Suite, require: Any) -> None:
    require("staff")
    conn = await asyncpg.connect(_as(suite, "staff", suite["staff"].env["LAMPO_DATABASE"]))
    try:
        for sql in (
            "DROP TRIGGER audit_log_no_update ON audit_log",
            "ALTER TABLE audit_log DISABLE TRIGGER ALL",
            "DROP TABLE audit_log",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(sql)
    finally:
        await conn.close()
