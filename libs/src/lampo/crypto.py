"""Field encryption with per-subject data keys, blind indexes, crypto-shredding, sealed results.

- Each subject gets a random 256-bit data key, stored only wrapped (AES-KW) by a key-encryption
  key derived from the service's master key. Destroying the wrapped key (``KeyRing.destroy``)
  makes every field encrypted with it unreadable, in the table, in backups, in any copy.
- Fields are AES-256-GCM with a random 96-bit nonce; the subject id and field name are the
  associated data, so a ciphertext cannot be moved to another subject or column unnoticed.
- A blind index is an HMAC-SHA256 of a normalised value under a separate derived key: equality
  look-up (identity code, e-mail) without storing the value.
- ``seal``/``unseal``: X25519 + HKDF + AES-GCM, so a participant encrypts an access result to a
  per-request public key and only the coordinator holding that request's private key can read it.
- ``scratch_file``: a temporary file whose bytes are AES-256-CTR on disk under a key that only
  the open file holds: a subject's data spooled while a package is built is never on the disk in
  clear, not even after a crash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import os
import tempfile
from array import array
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import IO, Any

import asyncpg
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.ciphers.algorithms import AES
from cryptography.hazmat.primitives.ciphers.modes import CTR, ECB
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

_NONCE = 12
_KW_IV = b"\xa6" * 8
# XOR tables for the step counter t of RFC 3394 (t <= 6 * blocks < 256: it only touches the last
# byte of the 64-bit integrity register).
_XOR = [bytes(b ^ t for b in range(256)) for t in range(256)]
_BATCHED = 8  # below this many keys the per-key loop of ``cryptography`` is as quick
if array("Q").itemsize != 8:  # the batched wrap moves 64-bit blocks as array items
    raise ImportError("lampo.crypto needs 64-bit array items")


def wrap_keys(kek: bytes, keys: Sequence[bytes]) -> list[bytes]:
    """RFC 3394 AES key wrap of many keys of one length at once: for each key the same bytes as
    ``cryptography``'s ``aes_key_wrap``, but every step of the algorithm is one ECB call over the
    whole batch instead of a Python loop per key (ingest creates hundreds of keys per batch)."""
    if len(keys) < _BATCHED:
        return [aes_key_wrap(kek, k) for k in keys]
    n, m = _blocks(keys), len(keys)
    a = array("Q", _KW_IV * m)
    r = [array("Q", b"".join(k[8 * i : 8 * i + 8] for k in keys)) for i in range(n)]
    buf = array("Q", bytes(16 * m))
    encryptor = Cipher(AES(kek), ECB()).encryptor()  # noqa: S305 - RFC 3394 is built on single AES blocks
    for j in range(6):
        for i in range(n):
            buf[0::2], buf[1::2] = a, r[i]
            out = bytearray(encryptor.update(buf.tobytes()))
            out[7::16] = out[7::16].translate(_XOR[n * j + i + 1])
            both = array("Q", out)
            a, r[i] = both[0::2], both[1::2]
    return _split([a, *r], m)


def unwrap_keys(kek: bytes, wrapped: Sequence[bytes]) -> list[bytes]:
    """RFC 3394 unwrap of many wrapped keys of one length at once (the inverse of
    :func:`wrap_keys`, same results as ``aes_key_unwrap``); ``InvalidUnwrap`` if any fails its
    integrity check."""
    if len(wrapped) < _BATCHED:
        return [aes_key_unwrap(kek, w) for w in wrapped]
    n, m = _blocks(wrapped) - 1, len(wrapped)
    if n < 2:
        raise InvalidUnwrap("wrapped key too short")
    a = array("Q", b"".join(w[:8] for w in wrapped))
    r = [array("Q", b"".join(w[8 * i + 8 : 8 * i + 16] for w in wrapped)) for i in range(n)]
    buf = array("Q", bytes(16 * m))
    decryptor = Cipher(AES(kek), ECB()).decryptor()  # noqa: S305 - RFC 3394 is built on single AES blocks
    for j in reversed(range(6)):
        for i in reversed(range(n)):
            buf[0::2], buf[1::2] = a, r[i]
            masked = bytearray(buf.tobytes())
            masked[7::16] = masked[7::16].translate(_XOR[n * j + i + 1])
            both = array("Q", decryptor.update(bytes(masked)))
            a, r[i] = both[0::2], both[1::2]
    checks = a.tobytes()
    if not hmac.compare_digest(checks, _KW_IV * m):
        raise InvalidUnwrap()
    return _split(r, m)


def _split(columns: list[array[int]], m: int) -> list[bytes]:
    """Interleave per-block columns back into ``m`` byte strings."""
    width = len(columns)
    rows = array("Q", bytes(8 * width * m))
    for i, column in enumerate(columns):
        rows[i::width] = column
    raw = rows.tobytes()
    size = 8 * width
    return [raw[size * x : size * (x + 1)] for x in range(m)]


def _blocks(keys: Sequence[bytes]) -> int:
    size = len(keys[0])
    if size < 16 or size % 8 or any(len(k) != size for k in keys) or size // 8 > 40:
        raise ValueError("keys to wrap must share one length, a multiple of 8 bytes from 16 to 320")
    return size // 8


class KeyDestroyed(LookupError):
    """The subject's data key is gone: its encrypted fields can no longer be read."""


def _derive(master: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"lampo:" + purpose).derive(master)


def derive_key(master: bytes, purpose: bytes) -> bytes:
    """A 256-bit key for one purpose, derived from a master key (HKDF-SHA256)."""
    return _derive(master, purpose)


def parse_master_key(value: str) -> bytes:
    try:
        key = base64.b64decode(value, validate=True)
    except ValueError as e:
        raise ValueError("master key must be base64") from e
    if len(key) != 32:
        raise ValueError("master key must be 32 bytes (base64 of 32 random bytes)")
    return key


def new_master_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


class FieldCipher:
    """AES-GCM with one data key; associated data binds subject and field."""

    def __init__(self, subject_id: str, data_key: bytes) -> None:
        self._subject = subject_id
        self._aead = AESGCM(data_key)

    def encrypt(self, field: str, value: str | bytes | None) -> bytes | None:
        if value is None:
            return None
        raw = value.encode() if isinstance(value, str) else value
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, raw, f"{self._subject}:{field}".encode())

    def decrypt_bytes(self, field: str, blob: bytes | None) -> bytes | None:
        if blob is None:
            return None
        return self._aead.decrypt(blob[:_NONCE], blob[_NONCE:], f"{self._subject}:{field}".encode())

    def decrypt(self, field: str, blob: bytes | None) -> str | None:
        raw = self.decrypt_bytes(field, blob)
        return None if raw is None else raw.decode()


class KeyRing:
    """Per-subject data keys in the service's ``subject_keys`` table, cached unwrapped in memory.

    Each wrapped key is stored with the fingerprint (``kek_id``) of the key-encryption key it is
    wrapped under, derived from a master key. New keys are wrapped under the current master key;
    ``old_master_keys`` only read keys not yet re-wrapped by ``rotate``. The blind-index key comes
    from ``stable_key`` when given (it must outlive a master-key rotation), else the master key.

    Where the wrapped keys live: the service's own database (the ``conn`` each method is given),
    or, once ``attach(pool)`` gave it one, a keys database of their own (LAMPO_KEYS_DATABASE), so
    a restored backup of the data alone holds no key. Keys there are written at once, outside the
    caller's transaction: a key made for a batch that rolls back stays unused; a destroyed key is
    gone even if the caller's transaction then fails (the erasure is retried, and finds it gone)."""

    def __init__(
        self,
        master_key: bytes,
        cache_size: int = 10_000,
        *,
        old_master_keys: Sequence[bytes] = (),
        stable_key: bytes | None = None,
    ) -> None:
        self._kek = _derive(master_key, b"kek")
        self.kek_id = kek_id(master_key)
        self._keks = {self.kek_id: self._kek} | {kek_id(k): _derive(k, b"kek") for k in old_master_keys}
        self._index_key = _derive(stable_key or master_key, b"blind-index")
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cache_size = cache_size
        self._pool: asyncpg.Pool | None = None

    def attach(self, pool: asyncpg.Pool | None) -> None:
        """Keep the wrapped keys in the database of ``pool`` (None: back to the caller's)."""
        self._pool = pool

    @asynccontextmanager
    async def _keys_conn(self, conn: asyncpg.Connection) -> AsyncIterator[asyncpg.Connection]:
        if self._pool is None:
            yield conn
        else:
            async with self._pool.acquire() as own:
                yield own

    def blind_index(self, kind: str, value: str) -> bytes:
        normalised = value.strip().casefold() if kind == "email" else value.strip()
        return hmac.new(self._index_key, f"{kind}:{normalised}".encode(), hashlib.sha256).digest()

    def _remember(self, subject_id: str, key: bytes) -> None:
        self._cache[subject_id] = key
        self._cache.move_to_end(subject_id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _unwrap(self, rows: Sequence[asyncpg.Record]) -> list[bytes]:
        """Unwrap rows (wrapped_key, kek_id) each under the key-encryption key it names; a row
        from before versioning (kek_id NULL) under whichever known key opens it."""
        found: list[bytes | None] = [None] * len(rows)
        groups: dict[str | None, list[int]] = {}
        for i, row in enumerate(rows):
            groups.setdefault(row["kek_id"], []).append(i)
        for kid, positions in groups.items():
            wrapped = [bytes(rows[i]["wrapped_key"]) for i in positions]
            if kid is not None:
                if kid not in self._keks:
                    raise InvalidUnwrap(f"wrapped under key-encryption key {kid}, which is not configured")
                found_keys = unwrap_keys(self._keks[kid], wrapped)
            else:
                found_keys = [self._unwrap_unversioned(w) for w in wrapped]
            for i, key in zip(positions, found_keys, strict=True):
                found[i] = key
        return [k for k in found if k is not None]

    def _unwrap_unversioned(self, wrapped: bytes) -> bytes:
        for kek in self._keks.values():
            try:
                return aes_key_unwrap(kek, wrapped)
            except InvalidUnwrap:
                continue
        raise InvalidUnwrap("no configured master key opens this subject key")

    async def ciphers(
        self, conn: asyncpg.Connection, subject_ids: Iterable[str], *, create: bool
    ) -> dict[str, FieldCipher]:
        """Ciphers for many subjects in at most two statements; missing keys are created when
        ``create`` (ingest), and left out otherwise (reads of an erased subject).

        A cached key is used only while its row still stands: another instance of the service
        may have destroyed it (an erasure), and this instance's copy must not open the subject's
        data after that. Checking costs one look-up by primary key for the batch; unwrapping is
        what the cache saves."""
        wanted = list(dict.fromkeys(subject_ids))
        if not wanted:
            return {}
        keys = {s: self._cache[s] for s in wanted if s in self._cache}
        missing = [s for s in wanted if s not in keys]
        async with self._keys_conn(conn) as kconn:
            if create and missing:
                # Ingest: the check of the cached keys and the creation of the missing ones in
                # one statement (one round trip, one transaction in a keys database of their own).
                await self._create(kconn, missing, keys)
                return {s: FieldCipher(s, k) for s, k in keys.items()}
            if keys:
                standing = await kconn.fetch(
                    "SELECT subject_id FROM subject_keys WHERE subject_id = ANY($1::text[])", list(keys)
                )
                self._forget_gone(keys, {r["subject_id"] for r in standing})
                missing = [s for s in wanted if s not in keys]
            if missing:
                await self._load(kconn, missing, keys, create=create)
        return {s: FieldCipher(s, k) for s, k in keys.items()}

    def _forget_gone(self, keys: dict[str, bytes], standing: set[str]) -> None:
        for gone in keys.keys() - standing:
            self._cache.pop(gone, None)
            del keys[gone]

    async def _create(self, conn: asyncpg.Connection, missing: list[str], keys: dict[str, bytes]) -> None:
        """Create the keys of ``missing`` that do not exist, read those that do, and check that
        the cached ones in ``keys`` still stand, in one statement. The statement's snapshot sees
        no key another instance is inserting at the same moment; that key is read after."""
        fresh = [os.urandom(32) for _ in missing]
        rows = await conn.fetch(
            "WITH inserted AS ("
            " INSERT INTO subject_keys (subject_id, wrapped_key, kek_id)"
            " SELECT s, w, $3 FROM unnest($1::text[], $2::bytea[]) AS u(s, w)"
            " ON CONFLICT (subject_id) DO NOTHING RETURNING subject_id)"
            " SELECT subject_id, NULL::bytea AS wrapped_key, NULL::text AS kek_id, true AS inserted FROM inserted"
            " UNION ALL SELECT subject_id, wrapped_key, kek_id, false FROM subject_keys"
            " WHERE subject_id = ANY($1::text[] || $4::text[])",  # one ANY: an index scan, not a scan under OR
            missing,
            wrap_keys(self._kek, fresh),
            self.kek_id,
            list(keys),
        )
        created = {r["subject_id"] for r in rows if r["inserted"]}
        cached = list(keys)
        self._forget_gone(keys, {r["subject_id"] for r in rows if not r["inserted"]})
        erased = [s for s in cached if s not in keys]  # destroyed since cached: a new key, as if never seen
        for subject_id, key in zip(missing, fresh, strict=True):
            if subject_id in created:
                keys[subject_id] = key
                self._remember(subject_id, key)
        unknown = set(missing) - created
        existing = [r for r in rows if not r["inserted"] and r["subject_id"] in unknown]
        for row, key in zip(existing, self._unwrap(existing), strict=True):
            keys[row["subject_id"]] = key
            self._remember(row["subject_id"], key)
        # Inserted by another transaction meanwhile (committed now, or it failed), or erased:
        # rare, and one statement more.
        late = [s for s in missing if s not in keys] + erased
        if late:
            await self._load(conn, late, keys, create=True)

    async def _load(
        self, conn: asyncpg.Connection, missing: list[str], keys: dict[str, bytes], *, create: bool
    ) -> None:
        if create:
            # One statement for the batch; the keys it did insert are known here and need no
            # unwrapping. Those that existed already (ON CONFLICT) are read below.
            fresh = [os.urandom(32) for _ in missing]
            inserted = await conn.fetch(
                "INSERT INTO subject_keys (subject_id, wrapped_key, kek_id)"
                " SELECT s, w, $3 FROM unnest($1::text[], $2::bytea[]) AS u(s, w)"
                " ON CONFLICT (subject_id) DO NOTHING RETURNING subject_id",
                missing,
                wrap_keys(self._kek, fresh),
                self.kek_id,
            )
            created = {row["subject_id"] for row in inserted}
            for subject_id, key in zip(missing, fresh, strict=True):
                if subject_id in created:
                    keys[subject_id] = key
                    self._remember(subject_id, key)
            missing = [s for s in missing if s not in created]
        if missing:
            rows = await conn.fetch(
                "SELECT subject_id, wrapped_key, kek_id FROM subject_keys WHERE subject_id = ANY($1::text[])", missing
            )
            for row, key in zip(rows, self._unwrap(rows), strict=True):
                keys[row["subject_id"]] = key
                self._remember(row["subject_id"], key)

    async def every_key(self, conn: asyncpg.Connection) -> dict[str, bytes]:
        """Every data key of the store, unwrapped, by subject: for audits only (the privacy leak
        search tries each on every encrypted value, so that an erased subject's data is shown to
        open under no key left)."""
        async with self._keys_conn(conn) as kconn:
            rows = await kconn.fetch("SELECT subject_id, wrapped_key, kek_id FROM subject_keys")
        return {row["subject_id"]: key for row, key in zip(rows, self._unwrap(rows), strict=True)}

    async def cipher(self, conn: asyncpg.Connection, subject_id: str, *, create: bool = False) -> FieldCipher:
        found = await self.ciphers(conn, [subject_id], create=create)
        if subject_id not in found:
            raise KeyDestroyed(subject_id)
        return found[subject_id]

    async def destroy(self, conn: asyncpg.Connection, subject_id: str) -> bool:
        self._cache.pop(subject_id, None)
        async with self._keys_conn(conn) as kconn:
            status: str = await kconn.execute("DELETE FROM subject_keys WHERE subject_id = $1", subject_id)
        return status.endswith(" 1")

    async def move_keys_out(self, conn: asyncpg.Connection, *, batch: int = 1000) -> int:
        """Move the keys still in the service's database (``conn``) to the attached keys database,
        each batch copied there, then deleted here; returns how many. Safe to interrupt and
        repeat: a key copied but not yet deleted is copied again (ON CONFLICT DO NOTHING)."""
        if self._pool is None:
            return 0
        moved = 0
        while True:
            async with conn.transaction():
                rows = await conn.fetch(
                    "SELECT subject_id, wrapped_key, kek_id, created_at FROM subject_keys ORDER BY subject_id LIMIT $1"
                    " FOR UPDATE SKIP LOCKED",
                    batch,
                )
                if not rows:
                    return moved
                ids = [r["subject_id"] for r in rows]
                async with self._pool.acquire() as keys:
                    await keys.execute(
                        "INSERT INTO subject_keys (subject_id, wrapped_key, kek_id, created_at)"
                        " SELECT s, w, k, c FROM unnest($1::text[], $2::bytea[], $3::text[], $4::timestamptz[])"
                        " AS u(s, w, k, c) ON CONFLICT (subject_id) DO NOTHING",
                        ids,
                        [r["wrapped_key"] for r in rows],
                        [r["kek_id"] for r in rows],
                        [r["created_at"] for r in rows],
                    )
                await conn.execute("DELETE FROM subject_keys WHERE subject_id = ANY($1::text[])", ids)
                moved += len(rows)

    async def rotate(self, conn: asyncpg.Connection, *, batch: int = 1000) -> int:
        """Re-wrap every subject key not yet under the current master key (``lampo keys rotate``);
        returns how many. Each batch commits on its own; safe to interrupt and repeat."""
        async with self._keys_conn(conn) as kconn:
            return await self._rotate(kconn, batch)

    async def _rotate(self, conn: asyncpg.Connection, batch: int) -> int:
        done = 0
        while True:
            async with conn.transaction():
                rows = await conn.fetch(
                    "SELECT subject_id, wrapped_key, kek_id FROM subject_keys"
                    " WHERE kek_id IS DISTINCT FROM $1 ORDER BY subject_id LIMIT $2 FOR UPDATE SKIP LOCKED",
                    self.kek_id,
                    batch,
                )
                if not rows:
                    return done
                rewrapped = wrap_keys(self._kek, self._unwrap(rows))
                await conn.execute(
                    "UPDATE subject_keys k SET wrapped_key = u.w, kek_id = $3"
                    " FROM unnest($1::text[], $2::bytea[]) AS u(s, w) WHERE k.subject_id = u.s",
                    [r["subject_id"] for r in rows],
                    rewrapped,
                    self.kek_id,
                )
                done += len(rows)


def kek_id(master_key: bytes) -> str:
    """A fingerprint naming the key-encryption key of ``master_key`` (reveals nothing of it)."""
    return _derive(master_key, b"kek-id")[:8].hex()


# --- sealed results (per-request public key) -------------------------------------------------


def new_request_keypair() -> tuple[bytes, str]:
    """(private key bytes, base64 public key) for one request."""
    private = X25519PrivateKey.generate()
    public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    raw_private = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return raw_private, base64.b64encode(public).decode()


def _box_key(shared: bytes, ephemeral_public: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral_public, info=b"lampo:sealed").derive(shared)


def seal(public_key_b64: str, data: bytes) -> str:
    recipient = X25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64))
    ephemeral = X25519PrivateKey.generate()
    eph_public = ephemeral.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    key = _box_key(ephemeral.exchange(recipient), eph_public)
    nonce = os.urandom(_NONCE)
    return base64.b64encode(eph_public + nonce + AESGCM(key).encrypt(nonce, data, None)).decode()


def unseal(private_key: bytes, sealed: str) -> bytes:
    blob = base64.b64decode(sealed)
    eph_public, nonce, ciphertext = blob[:32], blob[32 : 32 + _NONCE], blob[32 + _NONCE :]
    private = X25519PrivateKey.from_private_bytes(private_key)
    key = _box_key(private.exchange(X25519PublicKey.from_public_bytes(eph_public)), eph_public)
    return AESGCM(key).decrypt(nonce, ciphertext, None)


class _ScratchRaw(io.RawIOBase):
    """A temporary file's raw bytes, AES-256-CTR under a random key and counter held only here.

    CTR lets any position be read or rewritten on its own (a ZIP writer goes back to its
    headers): the keystream at byte ``p`` is block ``p // 16`` from the initial counter. A
    rewritten range reuses its keystream; the old ciphertext is overwritten in place and the key
    never leaves this process, so there is nothing to compare it with."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile(buffering=0)  # noqa: SIM115 - closed by close()
        self._fd = self._file.fileno()
        self._aes = AES(os.urandom(32))
        self._counter = int.from_bytes(os.urandom(16), "big")
        self._pos = 0
        self._size = 0
        self._out = bytearray()

    def _xor(self, data: Any, at: int) -> memoryview:
        """``data`` (at file position ``at``) XOR the keystream, in a buffer reused by the next
        call (``update_into``: no new 1 MiB object per call, 6x quicker than ``update``)."""
        block, skip = divmod(at, 16)
        start = ((self._counter + block) % (1 << 128)).to_bytes(16, "big")
        keystream = Cipher(self._aes, CTR(start)).encryptor()
        if skip:
            keystream.update(bytes(skip))
        size = len(data)
        if len(self._out) < size + 15:  # update_into wants a block's room to spare
            self._out = bytearray(size + 15)
        keystream.update_into(data, self._out)
        return memoryview(self._out)[:size]

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        size = os.preadv(self._fd, [view], self._pos)
        view[:size] = self._xor(view[:size], self._pos)
        self._pos += size
        return size

    def write(self, data: Any) -> int:
        if self._pos > self._size:  # a gap after a seek past the end reads as zeros, so holds them
            self._put(bytes(self._pos - self._size), self._size)
        size = self._put(memoryview(data).cast("B"), self._pos)
        self._pos += size
        return size

    def _put(self, plain: Any, at: int) -> int:
        sealed = self._xor(plain, at)
        written = 0
        while written < len(sealed):
            written += os.pwrite(self._fd, sealed[written:], at + written)
        self._size = max(self._size, at + written)
        return written

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def truncate(self, size: int | None = None) -> int:
        size = self._pos if size is None else size
        if size > self._size:  # grows with zeros, held as ciphertext like any other bytes
            self._put(bytes(size - self._size), self._size)
        os.ftruncate(self._fd, size)
        self._size = size
        return size

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()


def scratch_file(*, text: bool = False) -> IO[Any]:
    """A temporary file, binary or UTF-8 text, encrypted on disk under a key only it holds (see
    ``_ScratchRaw``); it is gone, and unreadable, once closed or once the process ends."""
    buffered = io.BufferedRandom(_ScratchRaw(), buffer_size=256 * 1024)
    return io.TextIOWrapper(buffered, encoding="utf-8", newline="") if text else buffered
