"""Crypto-shredding that reaches backups (issue 16): with the subject keys in a database of their
own (LAMPO_KEYS_DATABASE), a restored backup of the data alone decrypts nothing erased, where a
backup of a database holding its own keys still does (real PostgreSQL; a backup is a copy of the
database made with CREATE DATABASE ... TEMPLATE, as a restore would bring it back)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from lampo.crypto import KeyDestroyed, KeyRing, new_master_key, parse_master_key
from lampo.db import create_pool, ensure_database, keys_migrations, migrate, platform_migrations, server_url_of
from lampo.testing import PG_URL, drop_database, unique

SUBJECT = "subject-erased-1"


@pytest.fixture
async def databases() -> AsyncIterator[dict[str, str]]:
    names = {k: unique(f"test_{k}") for k in ("data", "keys", "backup")}
    for kind in ("data", "keys"):
        await ensure_database(server_url_of(PG_URL, names[kind]))
    yield names
    for name in names.values():
        await drop_database(name)


async def _backup(source: str, copy: str) -> None:
    conn = await asyncpg.connect(PG_URL)
    try:
        await conn.execute(f'CREATE DATABASE "{copy}" TEMPLATE "{source}"')
    finally:
        await conn.close()


async def _write_then_erase(data: asyncpg.Connection, keys: KeyRing, backup: str, data_db: str) -> bytes:
    """A subject's field written, the data backed up, then the subject erased (its key destroyed)."""
    await migrate(data, [platform_migrations()])
    await data.execute("CREATE TABLE people (subject_id text PRIMARY KEY, name bytea)")
    cipher = await keys.cipher(data, SUBJECT, create=True)
    sealed = cipher.encrypt("name", "Testi Henkilö")
    await data.execute("INSERT INTO people VALUES ($1, $2)", SUBJECT, sealed)
    await data.close()  # a template database must have no connections
    await _backup(data_db, backup)
    conn = await asyncpg.connect(server_url_of(PG_URL, data_db))
    try:
        assert await keys.destroy(conn, SUBJECT)
    finally:
        await conn.close()
    return sealed


async def test_a_restored_data_backup_decrypts_nothing_erased(databases: dict[str, str]) -> None:
    master = new_master_key()
    keys_pool = await create_pool(server_url_of(PG_URL, databases["keys"]), min_size=1, max_size=2)
    try:
        await migrate(keys_pool, [keys_migrations()])
        keys = KeyRing(parse_master_key(master))
        keys.attach(keys_pool)
        data = await asyncpg.connect(server_url_of(PG_URL, databases["data"]))
        await _write_then_erase(data, keys, databases["backup"], databases["data"])
        # The backup, restored, with the master key and the live keys database: nothing opens.
        restored = await asyncpg.connect(server_url_of(PG_URL, databases["backup"]))
        try:
            assert await restored.fetchval("SELECT count(*) FROM people") == 1
            assert await restored.fetchval("SELECT count(*) FROM subject_keys") == 0
            fresh = KeyRing(parse_master_key(master))
            fresh.attach(keys_pool)
            with pytest.raises(KeyDestroyed):
                await fresh.cipher(restored, SUBJECT)
            fresh.attach(None)  # nor with the keys looked for in the restored data itself
            with pytest.raises(KeyDestroyed):
                await fresh.cipher(restored, SUBJECT)
        finally:
            await restored.close()
    finally:
        await keys_pool.close()


async def test_keys_kept_with_the_data_come_back_with_its_backup(databases: dict[str, str]) -> None:
    """Why: the default (keys in the service's database) is undone by restoring a backup."""
    master = new_master_key()
    keys = KeyRing(parse_master_key(master))
    data = await asyncpg.connect(server_url_of(PG_URL, databases["data"]))
    sealed = await _write_then_erase(data, keys, databases["backup"], databases["data"])
    restored = await asyncpg.connect(server_url_of(PG_URL, databases["backup"]))
    try:
        cipher = await KeyRing(parse_master_key(master)).cipher(restored, SUBJECT)
        assert cipher.decrypt("name", sealed) == "Testi Henkilö"
    finally:
        await restored.close()


async def test_keys_made_before_move_to_the_keys_database(databases: dict[str, str]) -> None:
    master = new_master_key()
    data = await asyncpg.connect(server_url_of(PG_URL, databases["data"]))
    keys_pool = await create_pool(server_url_of(PG_URL, databases["keys"]), min_size=1, max_size=2)
    try:
        await migrate(data, [platform_migrations()])
        await migrate(keys_pool, [keys_migrations()])
        before = KeyRing(parse_master_key(master))
        ciphers = await before.ciphers(data, [f"s-{i}" for i in range(12)], create=True)
        sealed = {s: c.encrypt("f", s) for s, c in ciphers.items()}
        after = KeyRing(parse_master_key(master))
        after.attach(keys_pool)
        assert await after.move_keys_out(data, batch=5) == 12
        assert await data.fetchval("SELECT count(*) FROM subject_keys") == 0
        opened = await after.ciphers(data, list(sealed), create=False)
        assert {s: opened[s].decrypt("f", v) for s, v in sealed.items()} == {s: s for s in sealed}
        assert await after.move_keys_out(data) == 0
    finally:
        await data.close()
        await keys_pool.close()
