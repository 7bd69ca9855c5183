"""Migrations on the real PostgreSQL: applied once, in order, recorded; a second run changes nothing."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from lampo.db import MigrationSource, create_pool, ensure_database, migrate, platform_migrations
from lampo.db.migrations_runner import MigrationError
from lampo.db.pool import server_url_of
from lampo.testing import PG_URL, drop_database, unique


@pytest.fixture
async def database():
    name = unique("test_db")
    url = server_url_of(PG_URL, name)
    assert await ensure_database(url) is True
    assert await ensure_database(url) is False  # idempotent
    pool = await create_pool(url)
    yield pool
    await pool.close()
    await drop_database(name)


def write(directory: Path, name: str, sql: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(sql)


async def schema(pool: asyncpg.Pool) -> list[tuple[str, str, str]]:
    rows = await pool.fetch(
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = 'public' ORDER BY 1, 2"
    )
    return [tuple(r) for r in rows]


async def test_migrations_applied_twice_change_nothing(database, tmp_path) -> None:
    svc = tmp_path / "migrations"
    write(svc, "0001_init.sql", "CREATE TABLE things (id int PRIMARY KEY);")
    write(svc, "0002_more.sql", "ALTER TABLE things ADD COLUMN label text; INSERT INTO things VALUES (1, 'a');")
    sources = [platform_migrations(), MigrationSource("svc", svc)]

    first = await migrate(database, sources)
    before = await schema(database)
    second = await migrate(database, sources)

    assert first == [
        "platform/0001_outbox_inbox.sql",
        "platform/0002_outbox_uncompressed.sql",
        "platform/0003_subject_keys_versioned.sql",
        "platform/0005_inbox_pruning.sql",
        "svc/0001_init.sql",
        "svc/0002_more.sql",
    ]
    assert second == []
    assert await schema(database) == before
    assert await database.fetchval("SELECT count(*) FROM things") == 1  # the data step ran once
    recorded = await database.fetch("SELECT component, version FROM schema_migrations ORDER BY 1, 2")
    assert [tuple(r) for r in recorded] == [
        ("platform", 1),
        ("platform", 2),
        ("platform", 3),
        ("platform", 5),
        ("svc", 1),
        ("svc", 2),
    ]


async def test_a_new_migration_is_applied_after_the_old_ones(database, tmp_path) -> None:
    svc = tmp_path / "migrations"
    write(svc, "0001_init.sql", "CREATE TABLE things (id int PRIMARY KEY);")
    await migrate(database, [MigrationSource("svc", svc)])
    write(svc, "0002_more.sql", "ALTER TABLE things ADD COLUMN label text;")
    assert await migrate(database, [MigrationSource("svc", svc)]) == ["svc/0002_more.sql"]


async def test_an_edited_migration_is_refused(database, tmp_path) -> None:
    svc = tmp_path / "migrations"
    write(svc, "0001_init.sql", "CREATE TABLE things (id int PRIMARY KEY);")
    await migrate(database, [MigrationSource("svc", svc)])
    write(svc, "0001_init.sql", "CREATE TABLE things (id bigint PRIMARY KEY);")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await migrate(database, [MigrationSource("svc", svc)])


async def test_a_failing_migration_leaves_nothing_half_done(database, tmp_path) -> None:
    svc = tmp_path / "migrations"
    write(svc, "0001_bad.sql", "CREATE TABLE half (id int); SELECT no_such_function();")
    with pytest.raises(asyncpg.UndefinedFunctionError):
        await migrate(database, [MigrationSource("svc", svc)])
    assert await database.fetchval("SELECT to_regclass('half')") is None
    assert await database.fetchval("SELECT count(*) FROM schema_migrations") == 0
