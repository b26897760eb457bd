"""Known-answer tests of the per-packet transforms.  Every expected value is copied from
published text (source and section next to it), never produced by this code."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from ipsecconf.crypto.suites import AuthenticationFailed, CryptoError
from ipsecconf.crypto.transforms import EspAead, EspCbc, EspNull, Hmac, esp_cipher
from ipsecconf.model.algorithms import cipher, integrity

h = bytes.fromhex

# RFC 2202 section 2 (HMAC-MD5) and section 3 (HMAC-SHA-1): (key, data, digest).
RFC2202_MD5 = [
    (b"\x0b" * 16, b"Hi There", "9294727a3638bb1c13f48ef8158bfc9d"),  # test_case 1
    (b"Jefe", b"what do ya want for nothing?", "750c783e6ab0b503eaa86e310a5db738"),  # 2
    (b"\xaa" * 16, b"\xdd" * 50, "56be34521d144c88dbb8c733f0e8b3f6"),  # 3
    (bytes(range(1, 26)), b"\xcd" * 50, "697eaf0aca3a3aea3a75164746ffaa79"),  # 4
    (b"\x0c" * 16, b"Test With Truncation", "56461ef2342edc00f9bab995690efd4c"),  # 5
]
RFC2202_SHA1 = [
    (b"\x0b" * 20, b"Hi There", "b617318655057264e28bc0b6fb378c8ef146be00"),  # 1
    (b"Jefe", b"what do ya want for nothing?", "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"),  # 2
    (b"\xaa" * 20, b"\xdd" * 50, "125d7342b9ac11cd91a39af48aa17b4f63f175d3"),  # 3
    (bytes(range(1, 26)), b"\xcd" * 50, "4c9007f4026250c6bc8414f9bf50c86c2d7235da"),  # 4
    (b"\x0c" * 20, b"Test With Truncation", "4c1a03424b55e07fe7f27be1d58bb9324a9a5a04"),  # 5
]
# RFC 2202 section 3, test_case 5: digest-96 = 0x4c1a03424b55e07fe7f27be1;
# section 2, test_case 5: digest-96 = 0x56461ef2342edc00f9bab995.
RFC2202_TRUNCATED = [
    ("sha1", b"\x0c" * 20, b"Test With Truncation", "4c1a03424b55e07fe7f27be1"),
    ("md5", b"\x0c" * 16, b"Test With Truncation", "56461ef2342edc00f9bab995"),
]

# RFC 4231 section 4.2 (Test Case 1), 4.3 (2), 4.4 (3), 4.5 (4), 4.7 (6), 4.8 (7).
_K6 = b"\xaa" * 131
_D6 = b"Test Using Larger Than Block-Size Key - Hash Key First"
_D7 = (
    b"This is a test using a larger than block-size key and a larger than block-size data."
    b" The key needs to be hashed before being used by the HMAC algorithm."
)
RFC4231 = [
    (
        b"\x0b" * 20,
        b"Hi There",
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
        "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59c"
        "faea9ea9076ede7f4af152e8b2fa9cb6",
        "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde"
        "daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
    ),
    (
        b"Jefe",
        b"what do ya want for nothing?",
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e"
        "8e2240ca5e69e2c78b3239ecfab21649",
        "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554"
        "9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
    ),
    (
        b"\xaa" * 20,
        b"\xdd" * 50,
        "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
        "88062608d3e6ad8a0aa2ace014c8a86f0aa635d947ac9febe83ef4e55966144b"
        "2a5ab39dc13814b94e3ab6e101a34f27",
        "fa73b0089d56a284efb0f0756c890be9b1b5dbdd8ee81a3655f83e33b2279d39"
        "bf3e848279a722c806b485a47e67c807b946a337bee8942674278859e13292fb",
    ),
    (
        bytes(range(1, 26)),
        b"\xcd" * 50,
        "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
        "3e8a69b7783c25851933ab6290af6ca77a9981480850009cc5577c6e1f573b4e"
        "6801dd23c4a7d679ccf8a386c674cffb",
        "b0ba465637458c6990e5a8c5f61d4af7e576d97ff94b872de76f8050361ee3db"
        "a91ca5c11aa25eb4d679275cc5788063a5f19741120c4f2de2adebeb10a298dd",
    ),
    (
        _K6,
        _D6,
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
        "4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c6"
        "0c2ef6ab4030fe8296248df163f44952",
        "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352"
        "6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598",
    ),
    (
        _K6,
        _D7,
        None,
        "6617178e941f020d351e2f254e8fd32c602420feb0b8fb9adccebb82461e99c5"
        "a678cc31e799176d3860e6110c46523e",
        "e37b6a775dc87dbaa4dfa9f96e5e3ffddebd71f8867289865df5a32d20cdc944"
        "b6022cac3c4982b10d5eeb55c3e4de15134676fb6de0446065c97440fa8c6a58",
    ),
]


_LEN = {"md5": 16, "sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64}


def _full(word: str, key: bytes) -> Hmac:
    """The same Hmac transform, for a KAT key of any length and with the untruncated output
    (the RFC 2202/4231 vectors use such keys; ESP fixes key and ICV lengths)."""
    return Hmac(replace(integrity(word), key_bytes=len(key), icv_bytes=_LEN[word]), key)


@pytest.mark.parametrize(("key", "data", "digest"), RFC2202_MD5)
def test_hmac_md5_rfc2202(key: bytes, data: bytes, digest: str) -> None:
    assert _full("md5", key).compute(data) == h(digest)


@pytest.mark.parametrize(("key", "data", "digest"), RFC2202_SHA1)
def test_hmac_sha1_rfc2202(key: bytes, data: bytes, digest: str) -> None:
    assert _full("sha1", key).compute(data) == h(digest)


@pytest.mark.parametrize(("word", "key", "data", "digest"), RFC2202_TRUNCATED)
def test_hmac_96_truncation_rfc2202(word: str, key: bytes, data: bytes, digest: str) -> None:
    """The ESP/AH algorithms HMAC-SHA1-96 and HMAC-MD5-96 themselves (RFC 2403/2404)."""
    mac = Hmac(integrity(word), key)
    assert mac.compute(data) == h(digest)
    assert mac.verify(h(digest), data)
    assert not mac.verify(h(digest)[:-1] + b"\x00", data)


@pytest.mark.parametrize("case", RFC4231)
def test_hmac_sha2_rfc4231(case: tuple) -> None:
    key, data, d256, d384, d512 = case
    if d256:
        assert _full("sha256", key).compute(data) == h(d256)
    assert _full("sha384", key).compute(data) == h(d384)
    assert _full("sha512", key).compute(data) == h(d512)


def test_hmac_sha2_truncated_icvs_rfc4231_case2() -> None:
    """RFC 4868 section 2.3: HMAC-SHA2-256-128, -384-192 and -512-256 keep the leftmost
    128/192/256 bits of the RFC 4231 outputs."""
    _, data, d256, d384, d512 = RFC4231[1]
    for word, digest in (("sha256", d256), ("sha384", d384), ("sha512", d512)):
        alg = integrity(word)
        truncated = Hmac(replace(alg, key_bytes=4), b"Jefe")
        assert truncated.compute(data) == h(digest)[: alg.icv_bytes]


def test_hmac_rejects_wrong_key_length() -> None:
    with pytest.raises(CryptoError):
        Hmac(integrity("sha256"), b"short")
    with pytest.raises(CryptoError):
        Hmac(integrity("none"), b"")


# RFC 3602 section 4, Case #1: AES-CBC 128, one block.
RFC3602_CASE1 = (
    "06a9214036b8a15b512e03d534120006",
    "3dafba429d9eb430b422da802c9fac41",
    b"Single block msg",
    "e353779c1079aeb82708942dbe77181a",
)


def test_aes_cbc_rfc3602_case1() -> None:
    key, iv, plain, ct = RFC3602_CASE1
    cbc = EspCbc(cipher("aes128"), h(key))
    assert cbc.encrypt_with_iv(h(iv), plain) == h(ct)
    # The chained decryptor: feed IV || ciphertext, drop the IV's output block.
    assert cbc.decrypt(h(iv) + h(ct)) == plain


def test_chained_cbc_gives_standard_cbc_with_the_emitted_iv() -> None:
    """Encryption through the reused context is plain CBC under the IV it emits: a fresh,
    independent context decrypts it (no state leaks between packets)."""
    cbc = EspCbc(cipher("aes256"), os.urandom(32))
    other = EspCbc(cipher("aes256"), cbc._algo.key)  # type: ignore[attr-defined]
    ivs = set()
    for size in (16, 32, 1392, 48):
        plain = os.urandom(size)
        out = cbc.encrypt(plain, os.urandom)
        ivs.add(out[:16])
        assert other.decrypt(out) == plain
        assert cbc.encrypt_with_iv(out[:16], plain) == out[16:]
    assert len(ivs) == 4


def test_cbc_never_uses_the_previous_last_block_as_iv() -> None:
    cbc = EspCbc(cipher("aes128"), os.urandom(16))
    first = cbc.encrypt(bytes(32), os.urandom)
    second = cbc.encrypt(bytes(32), os.urandom)
    assert second[:16] != first[-16:]


def test_cbc_rejects_unaligned_data() -> None:
    cbc = EspCbc(cipher("3des"), os.urandom(24))
    with pytest.raises(CryptoError):
        cbc.encrypt(b"x" * 7, os.urandom)
    with pytest.raises(CryptoError):
        cbc.decrypt(b"x" * 12)


def test_single_des_is_tripledes_with_repeated_key() -> None:
    key = os.urandom(8)
    des = EspCbc(cipher("des"), key)
    tdes = EspCbc(cipher("3des"), key * 3)
    iv, data = os.urandom(8), os.urandom(64)
    assert des.encrypt_with_iv(iv, data) == tdes.encrypt_with_iv(iv, data)


# RFC 8439 section 2.8.2: AEAD_CHACHA20_POLY1305.  The nonce is the 32-bit
# "fixed-common part" 07000000 followed by the 64-bit IV 4041424344454647: exactly
# ESP's salt || IV (RFC 7634 section 2), so the salt is 07000000.
RFC8439_KEY = h("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
RFC8439_FIXED = h("07000000")
RFC8439_IV = h("4041424344454647")
RFC8439_AAD = h("50515253c0c1c2c3c4c5c6c7")
RFC8439_PLAIN = (
    b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the "
    b"future, sunscreen would be it."
)
RFC8439_CT = h(
    "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6"
    "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36"
    "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
    "3ff4def08e4b7a9de576d26586cec64b6116"
)
RFC8439_TAG = h("1ae10b594f09e26a7e902ecbd0600691")


def test_chacha20_poly1305_rfc8439_2_8_2() -> None:
    aead = EspAead(cipher("chacha20poly1305"), RFC8439_KEY + RFC8439_FIXED)
    sealed = aead.seal(RFC8439_IV, RFC8439_PLAIN, RFC8439_AAD)
    assert sealed == RFC8439_CT + RFC8439_TAG
    assert aead.open(RFC8439_IV, sealed, RFC8439_AAD) == RFC8439_PLAIN
    bad = bytearray(sealed)
    bad[-1] ^= 1
    with pytest.raises(AuthenticationFailed):
        aead.open(RFC8439_IV, bytes(bad), RFC8439_AAD)


def test_esp_cipher_factory_and_reprs_hide_keys() -> None:
    key = os.urandom(20)
    for word, klass, n in (
        ("aes128gcm", EspAead, 20),
        ("aes128", EspCbc, 16),
        ("null", EspNull, 0),
    ):
        k = key[:n]
        obj = esp_cipher(cipher(word), k)
        assert isinstance(obj, klass)
        if k:
            assert k.hex() not in repr(obj)
    with pytest.raises(CryptoError):
        esp_cipher(cipher("aes128gcm"), key[:16])
