"""Field encryption, blind indexes, crypto-shredding and sealed results."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidTag

from lampo.crypto import FieldCipher, KeyRing, new_master_key, new_request_keypair, parse_master_key, seal, unseal


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
