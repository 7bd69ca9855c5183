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
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections import OrderedDict
from collections.abc import Iterable

import asyncpg
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap, aes_key_wrap

_NONCE = 12


class KeyDestroyed(LookupError):
    """The subject's data key is gone: its encrypted fields can no longer be read."""


def _derive(master: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"lampo:" + purpose).derive(master)


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
    """Per-subject data keys in the service's ``subject_keys`` table, cached unwrapped in memory."""

    def __init__(self, master_key: bytes, cache_size: int = 10_000) -> None:
        self._kek = _derive(master_key, b"kek")
        self._index_key = _derive(master_key, b"blind-index")
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cache_size = cache_size

    def blind_index(self, kind: str, value: str) -> bytes:
        normalised = value.strip().casefold() if kind == "email" else value.strip()
        return hmac.new(self._index_key, f"{kind}:{normalised}".encode(), hashlib.sha256).digest()

    def _remember(self, subject_id: str, key: bytes) -> None:
        self._cache[subject_id] = key
        self._cache.move_to_end(subject_id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    async def ciphers(
        self, conn: asyncpg.Connection, subject_ids: Iterable[str], *, create: bool
    ) -> dict[str, FieldCipher]:
        """Ciphers for many subjects in at most two statements; missing keys are created when
        ``create`` (ingest), and left out otherwise (reads of an erased subject)."""
        wanted = list(dict.fromkeys(subject_ids))
        keys = {s: self._cache[s] for s in wanted if s in self._cache}
        missing = [s for s in wanted if s not in keys]
        if missing and create:
            fresh = {s: os.urandom(32) for s in missing}
            await conn.executemany(
                "INSERT INTO subject_keys (subject_id, wrapped_key) VALUES ($1, $2) ON CONFLICT (subject_id) DO NOTHING",
                [(s, aes_key_wrap(self._kek, k)) for s, k in fresh.items()],
            )
        if missing:
            rows = await conn.fetch(
                "SELECT subject_id, wrapped_key FROM subject_keys WHERE subject_id = ANY($1::text[])", missing
            )
            for row in rows:
                key = aes_key_unwrap(self._kek, bytes(row["wrapped_key"]))
                keys[row["subject_id"]] = key
                self._remember(row["subject_id"], key)
        return {s: FieldCipher(s, k) for s, k in keys.items()}

    async def cipher(self, conn: asyncpg.Connection, subject_id: str, *, create: bool = False) -> FieldCipher:
        found = await self.ciphers(conn, [subject_id], create=create)
        if subject_id not in found:
            raise KeyDestroyed(subject_id)
        return found[subject_id]

    async def destroy(self, conn: asyncpg.Connection, subject_id: str) -> bool:
        self._cache.pop(subject_id, None)
        status: str = await conn.execute("DELETE FROM subject_keys WHERE subject_id = $1", subject_id)
        return status.endswith(" 1")


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
