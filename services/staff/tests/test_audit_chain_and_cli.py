"""The audit chain detects an edited or deleted row (`lampo audit verify`, `lampo admin audit verify`),
and the CLI manages the first administrator and users. Runs the installed `lampo` command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from lampo.db.pool import server_url_of
from lampo.testing import PG_URL, drop_database, unique

LAMPO = str(Path(sys.executable).with_name("lampo"))
SECRET = "Synteettinen-ylläpitäjä-2026"


def lampo(database: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    # none of the caller's service settings, but the same database server the test reads
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMPO_")}
    env |= {"LAMPO_DATABASE": database, "LAMPO_PG_URL": PG_URL}
    return subprocess.run([LAMPO, *args], input=stdin, capture_output=True, text=True, env=env, timeout=60, check=False)


@pytest.fixture
def database() -> object:
    name = unique("test_staff_cli")
    yield name
    import asyncio

    asyncio.run(drop_database(name))


def populated(database: str) -> None:
    done = lampo(database, "admin", "create-first-admin", "first.admin", stdin=f"{SECRET}\n{SECRET}\n")
    assert done.returncode == 0, done.stderr
    again = lampo(database, "admin", "create-first-admin", "second.admin", stdin=f"{SECRET}x\n{SECRET}x\n")
    assert again.returncode == 1 and "administrator_exists" in again.stderr
    assert lampo(database, "admin", "grant", "first.admin", "auditor").returncode == 0
    assert lampo(database, "admin", "unlock", "first.admin").returncode == 0
    users = lampo(database, "admin", "users")
    assert users.stdout.split() == ["first.admin", "administrator,auditor", "active"]
    assert SECRET not in users.stdout + users.stderr


async def tamper(database: str, sql: str) -> None:
    # A superuser with triggers off: what an intruder with database access could do.
    conn = await asyncpg.connect(server_url_of(PG_URL, database))
    try:
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(sql)
    finally:
        await conn.close()


def test_verify_accepts_the_intact_chain_then_detects_an_edit(database: str) -> None:
    populated(database)
    ok = lampo(database, "audit", "verify")
    assert ok.returncode == 0 and "intact: 3 rows" in ok.stdout, ok.stdout + ok.stderr
    import asyncio

    asyncio.run(tamper(database, "UPDATE audit_log SET actor = 'someone-else' WHERE seq = 2"))
    for command in (("audit", "verify"), ("admin", "audit", "verify")):
        broken = lampo(database, *command)
        assert broken.returncode == 1, broken.stdout
        assert "BROKEN at row 2" in broken.stderr and "content does not match" in broken.stderr


def test_verify_detects_a_deleted_row(database: str) -> None:
    populated(database)
    import asyncio

    asyncio.run(tamper(database, "DELETE FROM audit_log WHERE seq = 2"))
    broken = lampo(database, "audit", "verify")
    assert broken.returncode == 1 and "BROKEN at row 3: row 2 is missing" in broken.stderr


def test_the_log_refuses_update_delete_and_truncate(database: str) -> None:
    populated(database)

    async def attempt() -> list[str]:
        conn = await asyncpg.connect(server_url_of(PG_URL, database))
        errors = []
        try:
            for sql in ("UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log", "TRUNCATE audit_log"):
                try:
                    await conn.execute(sql)
                except asyncpg.PostgresError as e:
                    errors.append(str(e))
        finally:
            await conn.close()
        return errors

    import asyncio

    errors = asyncio.run(attempt())
    assert len(errors) == 3 and all("append-only" in e for e in errors)
