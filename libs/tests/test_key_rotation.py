"""Master-key rotation with versioned wrapping (`lampo keys rotate`, real PostgreSQL): after it,
the data still decrypts under the new master key and the old master key opens no subject key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap

from lampo.crypto import KeyRing, _derive, kek_id, new_master_key, parse_master_key
from lampo.db import ensure_database, migrate, platform_migrations, server_url_of
from lampo.settings import ServiceSettings
from lampo.testing import PG_URL, drop_database, unique

LAMPO = str(Path(sys.executable).with_name("lampo"))


@pytest.fixture
async def database() -> AsyncIterator[str]:
    name = unique("test_keys")
    await ensure_database(server_url_of(PG_URL, name))
    conn = await asyncpg.connect(server_url_of(PG_URL, name))
    try:
        await migrate(conn, [platform_migrations()])
    finally:
        await conn.close()
    yield name
    await drop_database(name)


def _rotate(database: str, new: str, old: list[str], stable: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMPO_")}
    env |= {"LAMPO_PG_URL": PG_URL, "LAMPO_MASTER_KEY": new, "LAMPO_MASTER_KEYS_OLD": json.dumps(old),
            "LAMPO_STABLE_KEY": stable}  # fmt: skip
    return subprocess.run(
        [LAMPO, "keys", "rotate", "test", "--database", database],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip


async def test_rotate_rewraps_every_key_and_the_old_master_key_opens_none(database: str) -> None:
    old, new = new_master_key(), new_master_key()
    subjects = [f"subject-{i}" for i in range(20)]  # over the batched wrap's threshold
    conn = await asyncpg.connect(server_url_of(PG_URL, database))
    try:
        before = KeyRing(parse_master_key(old))
        ciphers = await before.ciphers(conn, subjects, create=True)
        sealed = {s: c.encrypt("name", f"Nimi {s}") for s, c in ciphers.items()}
        index = before.blind_index("email", "Testi@example.invalid")
        # Two keys wrapped before versioning existed (no kek_id).
        await conn.execute("UPDATE subject_keys SET kek_id = NULL WHERE subject_id = ANY($1::text[])", subjects[:2])
        assert await conn.fetchval("SELECT count(DISTINCT kek_id) FROM subject_keys WHERE kek_id IS NOT NULL") == 1

        done = _rotate(database, new, [old], stable=old)
        assert done.returncode == 0, done.stderr
        assert "20 subject keys re-wrapped; 0 left" in done.stdout
        again = _rotate(database, new, [old], stable=old)
        assert again.returncode == 0 and "0 subject keys re-wrapped; 0 left" in again.stdout

        # The new master key alone (no old keys configured) opens every key: the data decrypts.
        after = KeyRing(parse_master_key(new), stable_key=parse_master_key(old))
        opened = await after.ciphers(conn, subjects, create=False)
        assert {s: opened[s].decrypt("name", sealed[s]) for s in subjects} == {s: f"Nimi {s}" for s in subjects}
        assert after.blind_index("email", "testi@example.invalid") == index  # look-ups keep working

        # The old master key alone opens none of them.
        rows = await conn.fetch("SELECT wrapped_key, kek_id FROM subject_keys")
        assert len(rows) == 20 and {r["kek_id"] for r in rows} == {kek_id(parse_master_key(new))}
        old_kek = _derive(parse_master_key(old), b"kek")
        for row in rows:
            with pytest.raises(InvalidUnwrap):
                aes_key_unwrap(old_kek, bytes(row["wrapped_key"]))
        with pytest.raises(InvalidUnwrap):
            await KeyRing(parse_master_key(old)).ciphers(conn, subjects[:1], create=False)
    finally:
        await conn.close()


def test_old_master_keys_need_the_stable_key() -> None:
    with pytest.raises(ValueError, match="LAMPO_STABLE_KEY"):
        ServiceSettings(master_key=new_master_key(), master_keys_old=[new_master_key()])
