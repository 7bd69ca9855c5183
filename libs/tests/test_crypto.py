"""Field encryption, blind indexes, crypto-shredding and sealed results."""

from __future__ import annotations

import asyncio
import os

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from lampo.crypto import (
    FieldCipher,
    KeyDestroyed,
    KeyRing,
    new_master_key,
    new_request_keypair,
    parse_master_key,
    seal,
    unseal,
    unwrap_keys,
    wrap_keys,
)
from lampo.db import create_pool, ensure_database, migrate, platform_migrations
from lampo.db.pool import server_url_of
from lampo.testing import PG_URL, drop_database, unique


def test_a_field_decrypts_only_for_its_subject_and_field() -> None:
    key = bytes(range(32))
    blob = FieldCipher("s1", key).encrypt("email", "asiakas@example.fi")
    assert blob is not None and b"asiakas" not in blob
    assert FieldCipher("s1", key).decrypt("email", blob) == "asiakas@example.fi"
    with pytest.raises(InvalidTag):
        FieldCipher("s2", key).decrypt("email", blob)  # moved to another subject
    with pytest.raises(InvalidTag):
        FieldCipher("s1", key).decrypt("phone", blob)  # moved to another column


def test_blind_index_is_stable_keyed_and_normalises_email_case() -> None:
    ring = KeyRing(parse_master_key(new_master_key()))
    other = KeyRing(parse_master_key(new_master_key()))
    assert ring.blind_index("email", "A@Example.fi") == ring.blind_index("email", "a@example.fi ")
    assert ring.blind_index("email", "a@example.fi") != other.blind_index("email", "a@example.fi")
    assert ring.blind_index("email", "x") != ring.blind_index("personal_identity_code", "x")


def test_only_the_request_key_opens_a_sealed_result() -> None:
    private, public = new_request_keypair()
    other_private, _ = new_request_keypair()
    sealed = seal(public, b'{"basic": 1}')
    assert unseal(private, sealed) == b'{"basic": 1}'
    with pytest.raises(InvalidTag):
        unseal(other_private, sealed)


@pytest.mark.parametrize("bad", ["not base64!", "c2hvcnQ="])
def test_a_bad_master_key_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="master key"):
        parse_master_key(bad)


# --- batched key wrap (RFC 3394) -------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 7, 8, 9, 500])
@pytest.mark.parametrize("size", [16, 24, 32, 64])
def test_batched_key_wrap_gives_the_bytes_of_the_reference_implementation(count: int, size: int) -> None:
    kek = os.urandom(32)
    keys = [os.urandom(size) for _ in range(count)]
    wrapped = wrap_keys(kek, keys)
    assert wrapped == [aes_key_wrap(kek, k) for k in keys]
    assert unwrap_keys(kek, wrapped) == keys
    assert [aes_key_unwrap(kek, w) for w in wrapped] == keys


def test_batched_key_wrap_meets_the_rfc_3394_vector() -> None:
    # RFC 3394 section 4.6: 256 bits of key data with a 256-bit KEK; in a batch, every copy alike.
    kek = bytes.fromhex("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F")
    key = bytes.fromhex("00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F")
    expected = bytes.fromhex("28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21")
    assert wrap_keys(kek, [key] * 20) == [expected] * 20
    assert unwrap_keys(kek, [expected] * 20) == [key] * 20


def test_a_tampered_or_foreign_wrapped_key_in_a_batch_is_refused() -> None:
    kek = os.urandom(32)
    wrapped = wrap_keys(kek, [os.urandom(32) for _ in range(20)])
    tampered = bytearray(wrapped[13])
    tampered[17] ^= 1
    with pytest.raises(InvalidUnwrap):
        unwrap_keys(kek, [*wrapped[:13], bytes(tampered), *wrapped[14:]])
    with pytest.raises(InvalidUnwrap):
        unwrap_keys(os.urandom(32), wrapped)


@pytest.fixture
async def key_table():
    name = unique("test_keys")
    url = server_url_of(PG_URL, name)
    await ensure_database(url)
    pool = await create_pool(url)
    await migrate(pool, [platform_migrations()])
    yield pool
    await pool.close()
    await drop_database(name)


async def test_ciphers_create_a_batch_of_keys_and_keep_the_ones_already_stored(key_table) -> None:
    master = parse_master_key(new_master_key())
    ring = KeyRing(master)
    async with key_table.acquire() as conn:
        old = await ring.cipher(conn, "s-old", create=True)
        blob = old.encrypt("contact", "asiakas@example.fi")
        # A ring that has not seen s-old (another process, or an evicted cache) creates 30 keys
        # and must use the stored one for s-old, not its fresh one.
        other = KeyRing(master)
        subjects = [f"s-{i}" for i in range(30)]
        ciphers = await other.ciphers(conn, ["s-old", *subjects, "s-1"], create=True)
        assert set(ciphers) == {"s-old", *subjects}
        assert ciphers["s-old"].decrypt("contact", blob) == "asiakas@example.fi"
        stored = await conn.fetchval("SELECT count(*) FROM subject_keys")
        assert stored == 31
        # What the batch created is what a third ring reads back from the table.
        sealed = {s: ciphers[s].encrypt("person", s) for s in subjects}
        third = await KeyRing(master).ciphers(conn, subjects, create=False)
        assert {s: third[s].decrypt("person", sealed[s]) for s in subjects} == {s: s for s in subjects}
        assert await KeyRing(master).ciphers(conn, ["s-none"], create=False) == {}


async def test_a_key_destroyed_by_another_instance_no_longer_opens_in_this_one(key_table) -> None:
    """Two instances of a service, one key table: the erasure runs in one of them, while the
    other still holds the subject's key in its cache. After the erasure neither opens the data."""
    master = parse_master_key(new_master_key())
    here, there = KeyRing(master), KeyRing(master)
    async with key_table.acquire() as conn:
        blob = (await here.cipher(conn, "s-erased", create=True)).encrypt("contact", "asiakas@example.fi")
        kept = (await here.cipher(conn, "s-kept", create=True)).encrypt("contact", "toinen@example.fi")
        # ``there`` has used both keys (cached), then ``here`` erases one subject.
        both = await there.ciphers(conn, ["s-erased", "s-kept"], create=False)
        assert both["s-erased"].decrypt("contact", blob) == "asiakas@example.fi"
        assert await here.destroy(conn, "s-erased")

        with pytest.raises(KeyDestroyed):
            await there.cipher(conn, "s-erased")
        assert set(await there.ciphers(conn, ["s-erased", "s-kept"], create=False)) == {"s-kept"}
        assert (await there.cipher(conn, "s-kept")).decrypt("contact", kept) == "toinen@example.fi"
        # A write after the erasure gets a new key: the old one is gone from every cache.
        fresh = await there.cipher(conn, "s-erased", create=True)
        with pytest.raises(InvalidTag):
            fresh.decrypt("contact", blob)


async def test_a_batch_checks_its_cached_keys_and_creates_its_new_ones_in_one_statement(key_table) -> None:
    """Ingest with a keys database of its own: one round trip (one transaction there) per batch,
    whatever mix of known and new subjects it holds; a key destroyed meanwhile is not used (a new
    one is made, in a second statement: an erased subject written again is rare)."""
    master = parse_master_key(new_master_key())
    ring = KeyRing(master)
    statements: list[str] = []
    async with key_table.acquire() as conn:
        known = await ring.ciphers(conn, ["s-known", "s-erased"], create=True)
        blob = known["s-known"].encrypt("contact", "asiakas@example.fi")
        gone = known["s-erased"].encrypt("contact", "toinen@example.fi")
        await KeyRing(master).ciphers(conn, ["s-stored"], create=True)  # another instance stores a key
        conn.add_query_logger(lambda query: statements.append(query.query))
        ciphers = await ring.ciphers(conn, ["s-known", "s-new", "s-stored", "s-new"], create=True)
        await asyncio.sleep(0.05)  # the logger is called soon after each statement, not during it
        assert len(statements) == 1
        await KeyRing(master).destroy(conn, "s-erased")  # another instance erases a subject
        ciphers |= await ring.ciphers(conn, ["s-known", "s-erased"], create=True)
    assert set(ciphers) == {"s-known", "s-erased", "s-new", "s-stored"}
    assert ciphers["s-known"].decrypt("contact", blob) == "asiakas@example.fi"
    with pytest.raises(InvalidTag):  # a new key for the erased subject, not the cached one
        ciphers["s-erased"].decrypt("contact", gone)
    async with key_table.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM subject_keys") == 4
        again = await KeyRing(master).ciphers(conn, ["s-stored", "s-new"], create=False)
    stored = ciphers["s-stored"].encrypt("person", "x")
    assert again["s-stored"].decrypt("person", stored) == "x"
