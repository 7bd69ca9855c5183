"""Authenticity of tasks, acks, approvals and denials (CONTRACTS.md, "Authenticity").

A record on one of ``SIGNED_TOPICS`` carries two headers: ``signature``, the base64 Ed25519
signature by the sender's key over the record's value (exactly the bytes sent), and ``signer``,
the name of that key (``coordinator``, ``staff``, ``retention`` or a participant's name).

- Sending: a service configured with ``LAMPO_SIGNING_KEY`` (base64 of the raw 32-byte private
  key) signs every record its outbox relay sends to a signed topic; its signer name is
  ``LAMPO_SIGNER``, by default the service's (the DSAR service signs as ``coordinator``).
- Receiving: ``LAMPO_TRUSTED_KEYS`` is JSON, signer name → list of base64 public keys (a key is
  rotated by listing the old and the new one for a while). A consumer given a
  ``SignaturePolicy`` dead-letters, before its handler runs, any record that is unsigned,
  signed by a key not trusted under the name it gives, or signed by a signer the policy does not
  allow for that record, with ``error.reason`` ``unauthenticated``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from lampo.contracts.topics import PRIVACY_ACKS, PRIVACY_TASKS

if TYPE_CHECKING:  # annotations only: the settings (and so every CLI command) import this module
    from aiokafka import ConsumerRecord

    from lampo.contracts.catalog import ParsedEvent

SIGNATURE: Final = "signature"
SIGNER: Final = "signer"
UNAUTHENTICATED: Final = "unauthenticated"
DSAR_REQUESTS: Final = "dsar.requests.v1"
# The topics whose records a signing service signs (dsar.requests.v1: approvals and denials).
SIGNED_TOPICS: Final = frozenset({PRIVACY_TASKS, PRIVACY_ACKS, DSAR_REQUESTS})
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


class InvalidKey(ValueError):
    """A configured key is not base64 of 32 bytes (the message never quotes the key)."""


def _raw(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as e:
        raise InvalidKey(f"{what} is not base64") from e
    if len(raw) != 32:
        raise InvalidKey(f"{what} must be 32 bytes (an Ed25519 raw key), not {len(raw)}")
    return raw


def private_key(text: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(_raw(text, "LAMPO_SIGNING_KEY"))


def public_key(text: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(_raw(text, "a trusted key"))


def public_of(key: Ed25519PrivateKey) -> str:
    return base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def new_key_pair() -> tuple[str, str]:
    """(private, public), each base64 of the raw 32 bytes."""
    from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return base64.b64encode(raw).decode(), public_of(key)


def valid_name(name: str) -> bool:
    return bool(_NAME.fullmatch(name))


class Signer:
    """Signs record values with one service's key, under its signer name."""

    def __init__(self, name: str, key: Ed25519PrivateKey | str) -> None:
        if not valid_name(name):
            raise ValueError("a signer name is lower-case letters, digits, '_', '.', '-' (at most 64)")
        self.name = name
        self._key = private_key(key) if isinstance(key, str) else key
        self.public_key = public_of(self._key)

    def headers(self, value: bytes) -> dict[str, str]:
        """The ``signature`` and ``signer`` headers of a record with this value."""
        return {SIGNATURE: base64.b64encode(self._key.sign(value)).decode(), SIGNER: self.name}


class TrustedKeys:
    """The public keys a service trusts, by signer name (several per name while one rotates)."""

    def __init__(self, keys: Mapping[str, Sequence[str]] | None = None) -> None:
        self._keys: dict[str, list[Ed25519PublicKey]] = {
            name: [public_key(k) for k in values] for name, values in (keys or {}).items()
        }

    def knows(self, name: str) -> bool:
        return bool(self._keys.get(name))

    def verify(self, name: str, signature: bytes, value: bytes) -> bool:
        for key in self._keys.get(name, ()):
            try:
                key.verify(signature, value)
            except InvalidSignature:
                continue
            return True
        return False


def _header(record: ConsumerRecord[Any, Any], name: str) -> bytes | None:
    for key, value in record.headers or ():
        if key == name:
            return value if isinstance(value, bytes) else None
    return None


Allowed = Callable[[str, "ParsedEvent"], str | None]
"""Whether a signer (whose signature verified) may send this record: None if so, else a detail
(no personal data) saying who must sign it."""


@dataclass(frozen=True)
class SignaturePolicy:
    """What a consumer accepts: a record signed by a trusted key under its signer name, from a
    signer ``allowed`` accepts for that record. ``applies`` (default: every record) says which
    records need a signature at all (on dsar.requests.v1, approvals and denials, not
    submissions)."""

    trusted: TrustedKeys
    allowed: Allowed
    applies: Callable[[ParsedEvent], bool] | None = None

    def check(self, record: ConsumerRecord[Any, Any], event: ParsedEvent) -> str | None:
        """None when the record is authentic and its signer allowed, else the dead-letter detail."""
        if self.applies is not None and not self.applies(event):
            return None
        return self._authentic(record) or self.allowed(_signer(record), event)

    def _authentic(self, record: ConsumerRecord[Any, Any]) -> str | None:
        signature = _header(record, SIGNATURE)
        signer_raw = _header(record, SIGNER)
        if not signature or not signer_raw:
            return "no signature and signer headers"
        signer = signer_raw.decode("ascii", "replace")
        if not valid_name(signer):
            return "the signer header is not a signer name"
        if not self.trusted.knows(signer):
            return f"no trusted key for signer '{signer}'"
        try:
            raw = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            return "the signature header is not base64"
        if not self.trusted.verify(signer, raw, record.value or b""):
            return f"the signature does not verify with the keys of signer '{signer}'"
        return None


def _signer(record: ConsumerRecord[Any, Any]) -> str:
    return (_header(record, SIGNER) or b"").decode("ascii", "replace")


def only(*names: str) -> Allowed:
    """A policy's ``allowed``: these signers, for any record."""

    def allowed(signer: str, event: ParsedEvent) -> str | None:
        return None if signer in names else f"must be signed by {' or '.join(names)}, not '{signer}'"

    return allowed
