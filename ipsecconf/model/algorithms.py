"""Algorithm names and their IANA IKEv2 transform ids, sizes and strength.

This module owns the vocabulary: the words a user writes in YAML or on the ``ipsec``
command line (``aes128gcm``, ``sha256``, ``x25519``...), the IANA registry numbers the
protocol cores put on the wire, and the sizes (key, salt, IV, block, ICV) that the crypto
layer and the validators need.  It does no cryptography itself.

Sizes follow the RFCs, not the seed man page (which swaps them): HMAC-MD5-96 keys are
128 bits (RFC 2403), HMAC-SHA1-96 keys 160 bits (RFC 2404).  Manual SA keys include the
salt where the cipher has one (RFC 4106 for AES-GCM, RFC 7634 for ChaCha20-Poly1305).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass


class TransformType(enum.IntEnum):
    """IKEv2 transform types (RFC 7296 section 3.3.2)."""

    ENCR = 1
    PRF = 2
    INTEG = 3
    DH = 4
    ESN = 5


class EncrId(enum.IntEnum):
    """IANA "Transform Type 1 - Encryption Algorithm Transform IDs"."""

    DES = 2
    DES3 = 3
    NULL = 11
    AES_CBC = 12
    AES_GCM_16 = 20
    CHACHA20_POLY1305 = 28


class IntegId(enum.IntEnum):
    """IANA "Transform Type 3 - Integrity Algorithm Transform IDs"."""

    NONE = 0
    HMAC_MD5_96 = 1
    HMAC_SHA1_96 = 2
    HMAC_SHA2_256_128 = 12
    HMAC_SHA2_384_192 = 13
    HMAC_SHA2_512_256 = 14


class PrfId(enum.IntEnum):
    """IANA "Transform Type 2 - Pseudorandom Function Transform IDs"."""

    HMAC_MD5 = 1
    HMAC_SHA1 = 2
    HMAC_SHA2_256 = 5
    HMAC_SHA2_384 = 6
    HMAC_SHA2_512 = 7


class DhId(enum.IntEnum):
    """IANA "Transform Type 4 - Key Exchange Method Transform IDs"."""

    NONE = 0
    MODP768 = 1
    MODP1024 = 2
    MODP1536 = 5
    MODP2048 = 14
    MODP3072 = 15
    MODP4096 = 16
    ECP256 = 19
    ECP384 = 20
    ECP521 = 21
    CURVE25519 = 31


class EsnId(enum.IntEnum):
    """IANA "Transform Type 5 - Extended Sequence Numbers Transform IDs"."""

    NO = 0
    YES = 1


@dataclass(frozen=True, slots=True)
class Cipher:
    """An encryption algorithm as ESP and IKE use it."""

    name: str
    """The configuration word (``aes128gcm``)."""
    encr_id: EncrId
    key_bits: int
    """Cipher key length without salt; 0 for null. Sent as Key Length attribute for AES."""
    salt_bytes: int
    iv_bytes: int
    block_bytes: int
    """Padding alignment for ESP (4 for stream and AEAD ciphers, RFC 4303 section 2.4)."""
    icv_bytes: int
    """ICV length for AEAD ciphers, 0 otherwise."""
    aead: bool
    weak: bool
    ike_allowed: bool
    title: str

    @property
    def key_bytes(self) -> int:
        """Key material length for a manual SA or KEYMAT: cipher key plus salt."""
        return self.key_bits // 8 + self.salt_bytes

    @property
    def key_length_attribute(self) -> int | None:
        """The Key Length transform attribute (RFC 7296 3.3.5): only variable-key ciphers."""
        if self.encr_id in (EncrId.AES_CBC, EncrId.AES_GCM_16):
            return self.key_bits
        return None


@dataclass(frozen=True, slots=True)
class Integrity:
    """An integrity algorithm (ESP/AH ICV, IKE SA integrity)."""

    name: str
    integ_id: IntegId
    key_bytes: int
    icv_bytes: int
    hash_name: str
    """Name of the hash for HMAC (``sha256``); empty for none."""
    weak: bool
    weak_for_ike: bool
    title: str


@dataclass(frozen=True, slots=True)
class Prf:
    """A pseudorandom function for IKE (RFC 7296 section 2.13)."""

    name: str
    prf_id: PrfId
    hash_name: str
    output_bytes: int
    weak: bool


@dataclass(frozen=True, slots=True)
class DhGroup:
    """A key exchange method."""

    name: str
    dh_id: DhId
    kind: str
    """``modp``, ``ecp`` or ``curve25519``."""
    public_bytes: int
    """Length of the KE payload's key exchange data."""
    weak: bool


def _c(
    name: str,
    encr: EncrId,
    bits: int,
    salt: int,
    iv: int,
    block: int,
    icv: int,
    *,
    weak: bool = False,
    ike: bool = True,
    title: str,
) -> Cipher:
    return Cipher(name, encr, bits, salt, iv, block, icv, icv > 0, weak, ike, title)


CIPHERS: dict[str, Cipher] = {
    c.name: c
    for c in (
        _c("null", EncrId.NULL, 0, 0, 0, 4, 0, weak=True, ike=False, title="ESP-NULL"),
        _c("des", EncrId.DES, 64, 0, 8, 8, 0, weak=True, title="DES-CBC"),
        _c("3des", EncrId.DES3, 192, 0, 8, 8, 0, weak=True, title="3DES-CBC"),
        _c("aes128", EncrId.AES_CBC, 128, 0, 16, 16, 0, title="AES-CBC-128"),
        _c("aes192", EncrId.AES_CBC, 192, 0, 16, 16, 0, title="AES-CBC-192"),
        _c("aes256", EncrId.AES_CBC, 256, 0, 16, 16, 0, title="AES-CBC-256"),
        _c("aes128gcm", EncrId.AES_GCM_16, 128, 4, 8, 4, 16, title="AES-GCM-16-128"),
        _c("aes256gcm", EncrId.AES_GCM_16, 256, 4, 8, 4, 16, title="AES-GCM-16-256"),
        _c(
            "chacha20poly1305",
            EncrId.CHACHA20_POLY1305,
            256,
            4,
            8,
            4,
            16,
            title="ChaCha20-Poly1305",
        ),
    )
}

INTEGRITIES: dict[str, Integrity] = {
    i.name: i
    for i in (
        Integrity("none", IntegId.NONE, 0, 0, "", False, False, "none"),
        Integrity("md5", IntegId.HMAC_MD5_96, 16, 12, "md5", True, True, "HMAC-MD5-96"),
        Integrity("sha1", IntegId.HMAC_SHA1_96, 20, 12, "sha1", False, True, "HMAC-SHA1-96"),
        Integrity(
            "sha256", IntegId.HMAC_SHA2_256_128, 32, 16, "sha256", False, False, "HMAC-SHA2-256-128"
        ),
        Integrity(
            "sha384", IntegId.HMAC_SHA2_384_192, 48, 24, "sha384", False, False, "HMAC-SHA2-384-192"
        ),
        Integrity(
            "sha512", IntegId.HMAC_SHA2_512_256, 64, 32, "sha512", False, False, "HMAC-SHA2-512-256"
        ),
    )
}

PRFS: dict[str, Prf] = {
    p.name: p
    for p in (
        Prf("prfmd5", PrfId.HMAC_MD5, "md5", 16, True),
        Prf("prfsha1", PrfId.HMAC_SHA1, "sha1", 20, True),
        Prf("prfsha256", PrfId.HMAC_SHA2_256, "sha256", 32, False),
        Prf("prfsha384", PrfId.HMAC_SHA2_384, "sha384", 48, False),
        Prf("prfsha512", PrfId.HMAC_SHA2_512, "sha512", 64, False),
    )
}

DH_GROUPS: dict[str, DhGroup] = {
    g.name: g
    for g in (
        DhGroup("modp768", DhId.MODP768, "modp", 96, True),
        DhGroup("modp1024", DhId.MODP1024, "modp", 128, True),
        DhGroup("modp1536", DhId.MODP1536, "modp", 192, True),
        DhGroup("modp2048", DhId.MODP2048, "modp", 256, False),
        DhGroup("modp3072", DhId.MODP3072, "modp", 384, False),
        DhGroup("modp4096", DhId.MODP4096, "modp", 512, False),
        DhGroup("ecp256", DhId.ECP256, "ecp", 64, False),
        DhGroup("ecp384", DhId.ECP384, "ecp", 96, False),
        DhGroup("ecp521", DhId.ECP521, "ecp", 132, False),
        DhGroup("x25519", DhId.CURVE25519, "curve25519", 32, False),
    )
}

# Words accepted besides the canonical ones; the value is the canonical word.
DH_ALIASES: dict[str, str] = {
    "curve25519": "x25519",
    **{str(g.dh_id.value): g.name for g in DH_GROUPS.values()},
}
CIPHER_ALIASES: dict[str, str] = {
    "aes": "aes128",
    "aes128cbc": "aes128",
    "aes192cbc": "aes192",
    "aes256cbc": "aes256",
    "aes128gcm16": "aes128gcm",
    "aes256gcm16": "aes256gcm",
    "chacha20": "chacha20poly1305",
}
INTEGRITY_ALIASES: dict[str, str] = {
    "sha2_256": "sha256",
    "sha2_384": "sha384",
    "sha2_512": "sha512",
}

CIPHERS_BY_ID: dict[tuple[EncrId, int], Cipher] = {
    (c.encr_id, c.key_bits): c for c in CIPHERS.values()
}
INTEGRITIES_BY_ID: dict[IntegId, Integrity] = {i.integ_id: i for i in INTEGRITIES.values()}
PRFS_BY_ID: dict[PrfId, Prf] = {p.prf_id: p for p in PRFS.values()}
DH_BY_ID: dict[DhId, DhGroup] = {g.dh_id: g for g in DH_GROUPS.values()}

# "Best algorithm based on the peer" (seed): strongest first.  AEAD and non-AEAD
# suites go in separate proposals (RFC 7296 section 3.3).
AUTO_ESP_AEAD: tuple[str, ...] = ("aes256gcm", "chacha20poly1305", "aes128gcm")
AUTO_ESP_CIPHERS: tuple[str, ...] = ("aes256", "aes192", "aes128")
AUTO_ESP_INTEGRITIES: tuple[str, ...] = ("sha512", "sha384", "sha256")
AUTO_IKE_PRFS: tuple[str, ...] = ("prfsha512", "prfsha384", "prfsha256")
AUTO_DH_GROUPS: tuple[str, ...] = ("x25519", "ecp384", "ecp256", "modp3072", "modp2048")


class UnknownAlgorithm(ValueError):
    """An algorithm word that is not in the vocabulary; the message lists the valid ones."""


def _lookup(kind: str, word: str, table: Mapping[str, object], aliases: dict[str, str]) -> str:
    key = str(word).strip().lower().replace("-", "")
    key = aliases.get(key, key)
    if key not in table:
        valid = ", ".join(table)
        raise UnknownAlgorithm(f"unknown {kind} algorithm {word!r}; valid: {valid}")
    return key


def cipher(word: str) -> Cipher:
    """The cipher a configuration word names (aliases allowed)."""
    return CIPHERS[_lookup("encryption", word, CIPHERS, CIPHER_ALIASES)]


def integrity(word: str) -> Integrity:
    """The integrity algorithm a configuration word names (aliases allowed)."""
    return INTEGRITIES[_lookup("authentication", word, INTEGRITIES, INTEGRITY_ALIASES)]


def prf(word: str) -> Prf:
    """The PRF a configuration word names (``prfsha256`` or ``sha256``)."""
    w = str(word).strip().lower()
    if not w.startswith("prf"):
        w = "prf" + w
    return PRFS[_lookup("prf", w, PRFS, {})]


def dh_group(word: str | int) -> DhGroup:
    """The DH group a word or IANA number names (``ecp256``, ``19``, ``curve25519``)."""
    return DH_GROUPS[_lookup("DH group", str(word), DH_GROUPS, DH_ALIASES)]
