"""The audit chain detects an edited or deleted row, a cut tail and a chain recomputed without the
key (`lampo audit verify`, `lampo admin audit verify`, against the head published to Kafka), and
the CLI manages the first administrator and users. Runs the installed `lampo` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from lampo.crypto import new_master_key
from lampo.db.pool import server_url_of
from lampo.messaging.topics import STAFF_AUDIT_HEADS, TOPICS, provision
from lampo.staff.domain import SHA256, AuditEntry, chain_hash
from lampo.testing import BOOTSTRAP, PG_URL, drop_database, unique

LAMPO = str(Path(sys.executable).with_name("lampo"))
SECRET = "Synteettinen-ylläpitäjä-2026"


# One audit key and one head key (the published head's Kafka key) per database under test.
_KEYS: dict[str, tuple[str, str]] = {}


def lampo(database: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    # none of the caller's service settings, but the same database server and broker the test uses
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMPO_")}
    audit_key, head_key = _KEYS[database]
    env |= {"LAMPO_DATABASE": database, "LAMPO_PG_URL": PG_URL, "LAMPO_KAFKA_BOOTSTRAP": BOOTSTRAP,
            "LAMPO_AUDIT_KEY": audit_key, "LAMPO_AUDIT_HEAD_KEY": head_key}  # fmt: skip
    return subprocess.run([LAMPO, *args], input=stdin, capture_output=True, text=True, env=env, timeout=60, check=False)


@pytest.fixture
def database() -> object:
    import asyncio

    asyncio.run(provision(BOOTSTRAP, specs=[t for t in TOPICS if t.name == STAFF_AUDIT_HEADS]))
    name = unique("test_staff_cli")
    _KEYS[name] = (new_master_key(), unique("test-staff-audit"))
    yield name
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


def test_verify_detects_a_cut_tail(database: str) -> None:
    populated(database)
    ok = lampo(database, "audit", "verify")
    assert ok.returncode == 0 and "matches the head published at row 3" in ok.stdout, ok.stdout + ok.stderr
    import asyncio

    # The last row removed: what is left is a perfectly linked chain, but shorter than published.
    asyncio.run(tamper(database, "DELETE FROM audit_log WHERE seq = 3"))
    broken = lampo(database, "audit", "verify")
    assert broken.returncode == 1 and "BROKEN at row 3" in broken.stderr and "tail was cut" in broken.stderr


async def rehash_with_sha256(database: str) -> None:
    """Rewrite every row's actor and recompute the whole chain the old, unkeyed way."""
    conn = await asyncpg.connect(server_url_of(PG_URL, database))
    try:
        await conn.execute("SET session_replication_role = replica")
        prev = "0" * 64
        for r in await conn.fetch("SELECT * FROM audit_log ORDER BY seq"):
            detail = json.loads(r["detail"])
            detail = json.loads(detail) if isinstance(detail, str) else detail  # stored as a JSON string
            entry = AuditEntry("someone-else", r["action"], r["interface"], r["outcome"], r["customer_number"],
                               tuple(r["categories"]), detail)  # fmt: skip
            digest = chain_hash(prev, r["seq"], r["at"], entry)
            await conn.execute(
                "UPDATE audit_log SET actor = $2, prev_hash = $3, hash = $4, scheme = $5 WHERE seq = $1",
                r["seq"], entry.actor, prev, digest, SHA256,
            )  # fmt: skip
            prev = digest
    finally:
        await conn.close()


def test_verify_detects_a_chain_rewritten_and_rehashed_with_sha256(database: str) -> None:
    populated(database)
    import asyncio

    asyncio.run(rehash_with_sha256(database))
    broken = lampo(database, "audit", "verify")
    # Every row links and hashes under the old scheme; only the published head tells.
    assert broken.returncode == 1 and "BROKEN at row 3: row 3 differs from the published head" in broken.stderr


def test_verify_needs_the_key(database: str) -> None:
    populated(database)
    _KEYS[database] = (new_master_key(), _KEYS[database][1])  # a wrong key: every row fails
    broken = lampo(database, "audit", "verify")
    assert broken.returncode == 1 and "BROKEN at row 1" in broken.stderr and "audit key" in broken.stderr


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
