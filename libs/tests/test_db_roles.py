"""One role per service: it owns its database, cannot connect to another's, and cannot drop the
audit log's triggers once the table was handed to lampo_audit_owner (real PostgreSQL)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from lampo.db import MigrationSource, migrate, platform_migrations
from lampo.db.pool import server_url_of, with_credentials
from lampo.db.roles import derived_password, protect_audit, provision, role_of
from lampo.settings import ServiceSettings
from lampo.testing import PG_URL, drop_database

STAFF_MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "staff" / "migrations"


@pytest.fixture
async def services() -> AsyncIterator[tuple[str, str, bytes]]:
    tag = uuid.uuid4().hex[:8]
    a, b = f"t{tag}a", f"t{tag}b"
    secret = os.urandom(32)
    yield a, b, secret
    for service in (a, b):
        await drop_database(f"lampo_{service}")
    conn = await asyncpg.connect(PG_URL)
    try:
        for service in (a, b):
            await conn.execute(f'DROP ROLE IF EXISTS "{role_of(service)}"')
    finally:
        await conn.close()


def _url(service: str, secret: bytes, database: str) -> str:
    role = role_of(service)
    return with_credentials(server_url_of(PG_URL, database), role, derived_password(secret, role))


async def test_a_service_role_owns_its_database_and_cannot_reach_another(services: tuple[str, str, bytes]) -> None:
    a, b, secret = services
    for service in (a, b):
        done = await provision(PG_URL, service, derived_password(secret, role_of(service)))
        assert done.created and done.database == f"lampo_{service}"
    again = await provision(PG_URL, a, derived_password(secret, role_of(a)))  # safe to repeat
    assert not again.created

    # The service's settings: LAMPO_PG_URL's server, LAMPO_PG_ROLE/LAMPO_PG_ROLE_PASSWORD's credentials.
    settings = ServiceSettings(
        pg_url=PG_URL, database=f"lampo_{a}", pg_role=role_of(a), pg_role_password=derived_password(secret, role_of(a))
    )
    own = await asyncpg.connect(settings.database_url)
    try:
        assert not await own.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        await own.execute("CREATE TABLE mine (x int)")  # migrations run as the owner
    finally:
        await own.close()
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied for database"):
        await asyncpg.connect(_url(a, secret, f"lampo_{b}"))
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(with_credentials(server_url_of(PG_URL, f"lampo_{a}"), role_of(a), "guessed"))


async def test_the_staff_role_cannot_drop_or_disable_the_audit_triggers(services: tuple[str, str, bytes]) -> None:
    service, _, secret = services
    await provision(PG_URL, service, derived_password(secret, role_of(service)))
    url = _url(service, secret, f"lampo_{service}")
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn, [platform_migrations(), MigrationSource("staff", STAFF_MIGRATIONS)])
    finally:
        await conn.close()
    await protect_audit(PG_URL, service, f"lampo_{service}", table="audit_log", function="audit_log_append_only")
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "INSERT INTO audit_log (seq, at, actor, action, interface, outcome, prev_hash, hash, scheme)"
            " VALUES (1, now(), 'a', 'b', 'cli', 'ok', 'p', 'h', 'hmac-sha256')"
        )
        assert await conn.fetchval("SELECT count(*) FROM audit_log") == 1
        for sql in (
            "DROP TRIGGER audit_log_no_update ON audit_log",
            "ALTER TABLE audit_log DISABLE TRIGGER ALL",
            "DROP TABLE audit_log",
            "DROP FUNCTION audit_log_append_only() CASCADE",
            "DROP SCHEMA public CASCADE",
            "SET session_replication_role = replica",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(sql)
        with pytest.raises(asyncpg.PostgresError):
            await conn.execute("DELETE FROM audit_log")
        assert await conn.fetchval("SELECT count(*) FROM audit_log") == 1
    finally:
        await conn.close()


async def test_a_database_made_before_roles_is_adopted_by_its_role(services: tuple[str, str, bytes]) -> None:
    service, _, secret = services
    admin = await asyncpg.connect(PG_URL)
    try:
        await admin.execute(f'CREATE DATABASE "lampo_{service}"')
    finally:
        await admin.close()
    admin = await asyncpg.connect(server_url_of(PG_URL, f"lampo_{service}"))
    try:  # as a service ran before: its tables owned by the administrator
        await migrate(admin, [platform_migrations()])
        await admin.execute("INSERT INTO subject_keys (subject_id, wrapped_key) VALUES ('s-1', '\\x00')")
    finally:
        await admin.close()
    await provision(PG_URL, service, derived_password(secret, role_of(service)))
    conn = await asyncpg.connect(_url(service, secret, f"lampo_{service}"))
    try:
        assert await conn.fetchval("SELECT count(*) FROM subject_keys") == 1
        await conn.execute(
            "INSERT INTO outbox (topic, key, value, event_id, event_type) VALUES ('t', 'k', '', 'e', 't')"
        )
        assert await migrate(conn, [platform_migrations()]) == []
    finally:
        await conn.close()
