"""The transform registry: every algorithm by IANA id and by word, and refusals."""

from __future__ import annotations

import pytest

from ipsecconf.crypto import registry
from ipsecconf.model import algorithms as alg
from ipsecconf.model.algorithms import TransformType


def test_every_transform_round_trips_by_id_and_by_name() -> None:
    for t in registry.TRANSFORMS:
        assert registry.by_id(t.type, t.iana_id, t.key_bits) is t
        assert registry.by_name(t.type, t.name) is t


def test_design_md_algorithm_list_is_complete() -> None:
    esp = {
        "null",
        "des",
        "3des",
        "aes128",
        "aes192",
        "aes256",
        "aes128gcm",
        "aes256gcm",
        "chacha20poly1305",
    }
    assert {t.name for t in registry.TRANSFORMS if t.type is TransformType.ENCR} == esp
    integ = {"none", "md5", "sha1", "sha256", "sha384", "sha512"}
    assert {t.name for t in registry.TRANSFORMS if t.type is TransformType.INTEG} == integ
    groups = {t.iana_id for t in registry.TRANSFORMS if t.type is TransformType.DH}
    assert {2, 14, 19, 20, 21, 31} <= groups
    assert registry.by_name(TransformType.ENCR, "null").ike is False


def test_lookups_and_refusals() -> None:
    assert registry.esp_cipher(12, 256) is alg.CIPHERS["aes256"]
    assert registry.esp_cipher("aes128gcm16") is alg.CIPHERS["aes128gcm"]
    assert registry.esp_integrity(12) is alg.INTEGRITIES["sha256"]
    assert registry.ah_integrity("sha1") is alg.INTEGRITIES["sha1"]
    with pytest.raises(registry.UnsupportedTransform):
        registry.esp_cipher(12, 100)
    with pytest.raises(registry.UnsupportedTransform):
        registry.esp_cipher("rot13")
    with pytest.raises(registry.UnsupportedTransform):
        registry.ah_integrity("none")
