"""Key sizes follow the RFCs, not the seed (which swaps the HMAC key sizes)."""

from __future__ import annotations

import pytest

from ipsecconf.model import algorithms as alg


def test_hmac_key_sizes_are_the_rfc_ones() -> None:
    assert alg.integrity("md5").key_bytes * 8 == 128  # RFC 2403
    assert alg.integrity("sha1").key_bytes * 8 == 160  # RFC 2404
    assert alg.integrity("sha256").icv_bytes == 16  # RFC 4868
    assert alg.integrity("sha512").icv_bytes == 32


def test_manual_key_material_includes_the_salt() -> None:
    assert alg.cipher("aes128gcm").key_bytes == 20
    assert alg.cipher("aes256gcm").key_bytes == 36
    assert alg.cipher("chacha20poly1305").key_bytes == 36
    assert alg.cipher("3des").key_bytes == 24
    assert alg.cipher("des").key_bytes == 8


def test_iana_ids() -> None:
    assert alg.cipher("aes256gcm").encr_id == 20
    assert alg.cipher("chacha20poly1305").encr_id == 28
    assert alg.integrity("sha384").integ_id == 13
    assert alg.dh_group("x25519").dh_id == 31
    assert alg.dh_group(19).name == "ecp256"
    assert alg.dh_group("curve25519").name == "x25519"


def test_weak_flags() -> None:
    assert {c.name for c in alg.CIPHERS.values() if c.weak} == {"null", "des", "3des"}
    assert alg.integrity("md5").weak and not alg.integrity("sha1").weak
    assert alg.integrity("sha1").weak_for_ike
    assert {g.dh_id for g in alg.DH_GROUPS.values() if g.weak} == {1, 2, 5}


def test_unknown_words_list_valid_ones() -> None:
    with pytest.raises(alg.UnknownAlgorithm, match="valid: null, des, 3des"):
        alg.cipher("rc4")
