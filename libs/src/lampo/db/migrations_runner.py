"""Applies numbered SQL files once each, in order, recorded in ``schema_migrations``.

A service's database gets the platform's own migrations (outbox, inbox, subject keys) first,
then the service's ``migrations/NNNN_name.sql``. An advisory lock makes concurrent starts safe;
a file changed after it was applied is refused rather than silently skipped.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import asyncpg

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_LOCK_KEY = 0x1A3D0  # arbitrary, fixed: one migration run per database at a time


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    component: str
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True)
class MigrationSource:
    component: str
    directory: Path

    def load(self) -> list[Migration]:
        found: list[Migration] = []
        for path in sorted(self.directory.iterdir()):
            match = _NAME.match(path.name)
            if path.suffix == ".sql" and not match:
                raise MigrationError(f"{path.name}: migration files are named NNNN_name.sql")
            if match:
                found.append(Migration(self.component, int(match.group(1)), path.name, path.read_text()))
        versions = [m.version for m in found]
        if len(set(versions)) != len(versions):
            raise MigrationError(f"{self.component}: two migrations share a number")
        return found


def platform_migrations() -> MigrationSource:
    return MigrationSource("platform", Path(str(resources.files("lampo.db") / "migrations")))


def keys_migrations() -> MigrationSource:
    """The schema of a service's separate keys database (LAMPO_KEYS_DATABASE)."""
    return MigrationSource("keys", Path(str(resources.files("lampo.db") / "keys_migrations")))


_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    component  text        NOT NULL,
    version    integer     NOT NULL,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (component, version)
)"""


async def migrate(conn_or_pool: asyncpg.Pool | asyncpg.Connection, sources: list[MigrationSource]) -> list[str]:
    """Apply what is missing; returns the names applied (empty on a second run)."""
    if isinstance(conn_or_pool, asyncpg.Pool):
        async with conn_or_pool.acquire() as conn:
            return await _migrate(conn, sources)
    return await _migrate(conn_or_pool, sources)


async def _migrate(conn: asyncpg.Connection, sources: list[MigrationSource]) -> list[str]:
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(_TABLE)
        rows = await conn.fetch("SELECT component, version, checksum FROM schema_migrations")
        done = {(r["component"], r["version"]): r["checksum"] for r in rows}
        for source in sources:
            for migration in source.load():
                key = (migration.component, migration.version)
                if key in done:
                    if done[key] != migration.checksum:
                        raise MigrationError(
                            f"{migration.component}/{migration.name} changed after it was applied; "
                            "add a new migration instead"
                        )
                    continue
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (component, version, name, checksum) VALUES ($1, $2, $3, $4)",
                        migration.component,
                        migration.version,
                        migration.name,
                        migration.checksum,
                    )
                applied_now.append(f"{migration.component}/{migration.name}")
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied_now
