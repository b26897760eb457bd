"""One registry of every transform ipsecconf speaks, keyed by IANA id and by YAML word.

The protocol cores see IANA numbers on the wire (IKEv2 transform type + id + key length
attribute); configuration and the ``ipsec`` command use words.  This table maps both to
the same :mod:`ipsecconf.model.algorithms` entry and says where each may be used (ESP,
AH, IKE).  Unknown or unsupported combinations raise :class:`UnsupportedTransform`, never
fall back silently.  The working objects are built elsewhere: ESP/AH per-packet transforms
in :mod:`ipsecconf.crypto.transforms`, the IKE SK payload in :mod:`ipsecconf.crypto.suites`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ipsecconf.model import algorithms as alg
from ipsecconf.model.algorithms import TransformType

Algorithm = alg.Cipher | alg.Integrity | alg.Prf | alg.DhGroup


class UnsupportedTransform(ValueError):
    """A transform id, key length or word that this implementation does not offer."""


@dataclass(frozen=True, slots=True)
class Transform:
    """One registry row: an IANA transform with its algorithm and where it is allowed."""

    type: TransformType
    """IKEv2 transform type (ENCR, PRF, INTEG, DH)."""
    iana_id: int
    """The transform id in its IANA registry."""
    key_bits: int | None
    """The Key Length attribute for variable-length ciphers (AES), else ``None``."""
    name: str
    """The canonical configuration word."""
    algorithm: Algorithm
    """The vocabulary entry with sizes and strength."""
    esp: bool
    """Usable for ESP."""
    ah: bool
    """Usable for AH (integrity only)."""
    ike: bool
    """Usable for the IKE SA."""


def _build() -> list[Transform]:
    rows: list[Transform] = []
    for c in alg.CIPHERS.values():
        rows.append(
            Transform(
                TransformType.ENCR,
                int(c.encr_id),
                c.key_length_attribute,
                c.name,
                c,
                esp=True,
                ah=False,
                ike=c.ike_allowed,
            )
        )
    for i in alg.INTEGRITIES.values():
        rows.append(
            Transform(
                TransformType.INTEG,
                int(i.integ_id),
                None,
                i.name,
                i,
                esp=True,
                ah=i.icv_bytes > 0,
                ike=i.icv_bytes > 0,
            )
        )
    for p in alg.PRFS.values():
        rows.append(
            Transform(TransformType.PRF, int(p.prf_id), None, p.name, p, False, False, True)
        )
    for g in alg.DH_GROUPS.values():
        rows.append(Transform(TransformType.DH, int(g.dh_id), None, g.name, g, True, True, True))
    return rows


TRANSFORMS: tuple[Transform, ...] = tuple(_build())
_BY_ID: dict[tuple[TransformType, int, int | None], Transform] = {
    (t.type, t.iana_id, t.key_bits): t for t in TRANSFORMS
}
_BY_NAME: dict[tuple[TransformType, str], Transform] = {(t.type, t.name): t for t in TRANSFORMS}
_WORD_LOOKUP: dict[TransformType, Callable[[str], Algorithm]] = {
    TransformType.ENCR: alg.cipher,
    TransformType.INTEG: alg.integrity,
    TransformType.PRF: alg.prf,
    TransformType.DH: alg.dh_group,
}


def by_id(ttype: TransformType, iana_id: int, key_bits: int | None = None) -> Transform:
    """The transform for an IANA id (and Key Length attribute for AES ciphers)."""
    row = _BY_ID.get((ttype, int(iana_id), key_bits))
    if row is None:
        what = f"{ttype.name} transform id {iana_id}"
        if key_bits is not None:
            what += f" with key length {key_bits}"
        raise UnsupportedTransform(f"unsupported {what}")
    return row


def by_name(ttype: TransformType, word: str) -> Transform:
    """The transform a configuration word names (aliases accepted, as in the model)."""
    try:
        algo = _WORD_LOOKUP[ttype](word)
    except (alg.UnknownAlgorithm, KeyError) as exc:
        raise UnsupportedTransform(str(exc)) from None
    return _BY_NAME[(ttype, algo.name)]


def esp_cipher(ident: str | int, key_bits: int | None = None) -> alg.Cipher:
    """An ESP encryption algorithm by word or IANA id (+ key length for AES)."""
    row = (
        by_id(TransformType.ENCR, ident, key_bits)
        if isinstance(ident, int)
        else by_name(TransformType.ENCR, ident)
    )
    assert isinstance(row.algorithm, alg.Cipher)
    return row.algorithm


def esp_integrity(ident: str | int) -> alg.Integrity:
    """An ESP/AH integrity algorithm by word or IANA id."""
    row = (
        by_id(TransformType.INTEG, ident)
        if isinstance(ident, int)
        else by_name(TransformType.INTEG, ident)
    )
    assert isinstance(row.algorithm, alg.Integrity)
    return row.algorithm


def ah_integrity(ident: str | int) -> alg.Integrity:
    """An integrity algorithm AH can use (never ``none``)."""
    integ = esp_integrity(ident)
    if integ.icv_bytes == 0:
        raise UnsupportedTransform("AH needs an integrity algorithm; 'none' is not allowed")
    return integ
