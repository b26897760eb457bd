"""Key derivation of IKEv2: SKEYSEED, the SK_* keys and child SA KEYMAT.

Pure functions over :mod:`ipsecconf.crypto.prf` (strongSwan's keymat_v2):

* RFC 7296 2.14: ``SKEYSEED = prf(Ni | Nr, g^ir)``, and then
  ``{SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr}``
  ``= prf+(SKEYSEED, Ni | Nr | SPIi | SPIr)``;
  with an AEAD cipher SK_ai/SK_ar are empty and SK_e* carry the salt (RFC 5282 section 7).
* RFC 7296 2.17: ``KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr)``, taken in the order
  encryption key then integrity key for the initiator-to-responder SA, then the same for
  the responder-to-initiator SA.
* RFC 7296 2.18: the rekeyed IKE SA's ``SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr)``
  (here for the rekey issue that builds on this module).

Key material never appears in reprs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ipsecconf.crypto.prf import prf, prf_plus
from ipsecconf.model.algorithms import Cipher, Integrity, Prf


@dataclass(frozen=True, slots=True)
class IkeKeys:
    """The seven keys of an IKE SA (RFC 7296 2.14)."""

    sk_d: bytes = field(repr=False)
    sk_ai: bytes = field(repr=False)
    sk_ar: bytes = field(repr=False)
    sk_ei: bytes = field(repr=False)
    sk_er: bytes = field(repr=False)
    sk_pi: bytes = field(repr=False)
    sk_pr: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class ChildKeys:
    """KEYMAT of a child SA split per direction (RFC 7296 2.17)."""

    encr_i: bytes = field(repr=False)
    """Encryption key (with salt for AEAD) of the SA carrying initiator-to-responder traffic."""
    integ_i: bytes = field(repr=False)
    encr_r: bytes = field(repr=False)
    """Encryption key of the SA carrying responder-to-initiator traffic."""
    integ_r: bytes = field(repr=False)


def skeyseed(algorithm: Prf, ni: bytes, nr: bytes, shared_secret: bytes) -> bytes:
    """``prf(Ni | Nr, g^ir)`` (RFC 7296 2.14)."""
    return prf(algorithm, ni + nr, shared_secret)


def rekey_skeyseed(
    algorithm: Prf, old_sk_d: bytes, shared_secret: bytes, ni: bytes, nr: bytes
) -> bytes:
    """``prf(SK_d (old), g^ir (new) | Ni | Nr)`` for a rekeyed IKE SA (RFC 7296 2.18)."""
    return prf(algorithm, old_sk_d, shared_secret + ni + nr)


def ike_keys(
    algorithm: Prf,
    cipher: Cipher,
    integrity: Integrity | None,
    seed: bytes,
    ni: bytes,
    nr: bytes,
    spi_i: bytes,
    spi_r: bytes,
) -> IkeKeys:
    """The SK_* keys from SKEYSEED ``seed``."""
    p = algorithm.output_bytes
    a = integrity.key_bytes if integrity is not None and not cipher.aead else 0
    e = cipher.key_bytes
    stream = prf_plus(algorithm, seed, ni + nr + spi_i + spi_r, 3 * p + 2 * a + 2 * e)
    parts = []
    offset = 0
    for size in (p, a, a, e, e, p, p):
        parts.append(stream[offset : offset + size])
        offset += size
    return IkeKeys(*parts)


def child_keys(
    algorithm: Prf,
    sk_d: bytes,
    cipher: Cipher | None,
    integrity: Integrity | None,
    ni: bytes,
    nr: bytes,
    shared_secret: bytes = b"",
) -> ChildKeys:
    """KEYMAT for a child SA; ``shared_secret`` is the PFS ``g^ir`` when there is one."""
    e = cipher.key_bytes if cipher is not None else 0
    a = integrity.key_bytes if integrity is not None else 0
    stream = prf_plus(algorithm, sk_d, shared_secret + ni + nr, 2 * (e + a))
    return ChildKeys(
        encr_i=stream[:e],
        integ_i=stream[e : e + a],
        encr_r=stream[e + a : 2 * e + a],
        integ_r=stream[2 * e + a :],
    )
