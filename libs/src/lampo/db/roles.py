"""One PostgreSQL role per service: ``provision`` (as an administrator) creates the role
``lampo_<service>``, without superuser, CREATEDB or CREATEROLE, and its database, owned by it;
nobody else may connect to that database (CONNECT revoked from PUBLIC). The service then connects
and migrates as that role (``LAMPO_PG_ROLE``/``LAMPO_PG_ROLE_PASSWORD``).

``protect_audit`` hands a table of record (the staff audit log) and its trigger function to the
role ``lampo_audit_owner`` (no login), the service keeping INSERT and SELECT only: the service's
role can no longer drop or disable the table's triggers, nor update or delete its rows. The
``public`` schema goes to the administrator, the service keeping USAGE and CREATE, so the
service's role, no longer the schema's owner, cannot drop the table either.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

import asyncpg

from lampo.db.pool import server_url_of

AUDIT_OWNER = "lampo_audit_owner"
_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")


def role_of(service: str) -> str:
    return f"lampo_{service}"


def derived_password(secret: bytes, role: str) -> str:
    """A role's password derived from one local secret (``.run/pg-roles.key``): the same on every
    provisioning run, different for every role."""
    return hmac.new(secret, f"pg-role:{role}".encode(), hashlib.sha256).hexdigest()


def _ident(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"{name!r}: role and database names are lower-case letters, digits and '_'")
    return f'"{name}"'


@dataclass(frozen=True)
class Provisioned:
    role: str
    database: str
    created: bool


async def provision(
    admin_url: str, service: str, password: str, *, database: str | None = None, role: str | None = None
) -> Provisioned:
    """Create or update ``lampo_<service>`` (or ``role``: a test's own) and its database (default
    ``lampo_<service>``), owned by it, connectable by it alone. Safe to repeat; run with a
    superuser's ``admin_url``."""
    role, db = role or role_of(service), database or f"lampo_{service}"
    conn = await asyncpg.connect(server_url_of(admin_url))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
        verb = "ALTER" if exists else "CREATE"
        # The password is a literal (utility statements take no parameters): quoted by the server.
        literal = await conn.fetchval("SELECT quote_literal($1)", password)
        await conn.execute(
            f"{verb} ROLE {_ident(role)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
            f"NOBYPASSRLS PASSWORD {literal}"
        )
        created = not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", db)
        if created:
            await conn.execute(f"CREATE DATABASE {_ident(db)} OWNER {_ident(role)}")
        else:
            await conn.execute(f"ALTER DATABASE {_ident(db)} OWNER TO {_ident(role)}")
        await conn.execute(f"REVOKE ALL ON DATABASE {_ident(db)} FROM PUBLIC")
        await conn.execute(f"GRANT CONNECT, TEMPORARY ON DATABASE {_ident(db)} TO {_ident(role)}")
    finally:
        await conn.close()
    # In the database: the schema belongs to the administrator; the role creates its tables there.
    conn = await asyncpg.connect(server_url_of(admin_url, db))
    try:
        admin = await conn.fetchval("SELECT current_user")
        await conn.execute(f"ALTER SCHEMA public OWNER TO {_ident(admin)}")
        await conn.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
        await conn.execute(f"GRANT USAGE, CREATE ON SCHEMA public TO {_ident(role)}")
        await _adopt(conn, role)
    finally:
        await conn.close()
    return Provisioned(role, db, created)


async def _adopt(conn: asyncpg.Connection, role: str) -> None:
    """A database made before roles existed (its tables owned by the administrator): its tables,
    views, free sequences and functions go to the service's role, except what the audit owner holds."""
    keep = [role, AUDIT_OWNER]
    relations = await conn.fetch(
        "SELECT c.relname, c.relkind::text AS relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')"
        " AND pg_get_userbyid(c.relowner) <> ALL($1::text[])"
        " AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass"
        "   AND d.objid = c.oid AND d.deptype IN ('a', 'i'))",  # a serial's sequence follows its table
        keep,
    )
    kinds = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "S": "SEQUENCE"}
    for r in relations:
        await conn.execute(f'ALTER {kinds[r["relkind"]]} public."{r["relname"]}" OWNER TO {_ident(role)}')
    functions = await conn.fetch(
        "SELECT p.oid::regprocedure::text AS signature FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE n.nspname = 'public' AND pg_get_userbyid(p.proowner) <> ALL($1::text[])",
        keep,
    )
    for f in functions:
        await conn.execute(f"ALTER FUNCTION {f['signature']} OWNER TO {_ident(role)}")


async def protect_audit(
    admin_url: str, service: str, database: str, *, table: str, function: str, role: str | None = None
) -> None:
    """Give ``table`` (already migrated) and its trigger ``function`` to ``lampo_audit_owner``;
    the service's role keeps INSERT and SELECT. Run after the service's migrations; safe to repeat.
    A later migration that alters the table must then be applied by the administrator."""
    role = role or role_of(service)
    conn = await asyncpg.connect(server_url_of(admin_url, database))
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", AUDIT_OWNER):
            try:
                await conn.execute(f"CREATE ROLE {_ident(AUDIT_OWNER)} NOLOGIN")
            except asyncpg.DuplicateObjectError:
                pass  # another provisioning run made it in the meantime
        async with conn.transaction():
            await conn.execute(f"ALTER TABLE {_ident(table)} OWNER TO {_ident(AUDIT_OWNER)}")
            await conn.execute(f"ALTER FUNCTION {_ident(function)}() OWNER TO {_ident(AUDIT_OWNER)}")
            await conn.execute(f"REVOKE ALL ON TABLE {_ident(table)} FROM {_ident(role)}")
            await conn.execute(f"GRANT SELECT, INSERT ON TABLE {_ident(table)} TO {_ident(role)}")
    finally:
        await conn.close()


async def drop_role(admin_url: str, role: str) -> None:
    """Remove a role that owns nothing any more (a test's, once its database is dropped)."""
    conn = await asyncpg.connect(server_url_of(admin_url))
    try:
        await conn.execute(f"DROP ROLE IF EXISTS {_ident(role)}")
    finally:
        await conn.close()
