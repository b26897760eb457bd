"""Proposals on the wire and their selection (RFC 7296 sections 2.7 and 3.3).

The initiator sends its configured proposals in order, one wire proposal per configured
one, so an explicit algorithm is proposed exactly and ``auto`` is its ordered list,
strongest first, with AEAD and non-AEAD apart.  The responder takes the first initiator
proposal that it shares, and inside it, for each transform type, the first of the
initiator's transforms that its own configuration accepts: the initiator's order decides,
which is the seed's "best algorithm based on the peer".

Transforms with an unknown id or attribute are ignored; a proposal with a transform type
we do not know is skipped (RFC 7296 3.3.6).  The initiator checks that the answer is one
of its own proposals with exactly one transform of each type.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Any

from ipsecconf.ike.config import ChildConfig, IkeConfig, derived
from ipsecconf.ike.constants import ProtocolId
from ipsecconf.ike.payloads_sa import SaPayload, Transform, WireProposal
from ipsecconf.model import algorithms as alg
from ipsecconf.model.algorithms import TransformType
from ipsecconf.model.proposals import Proposal


@dataclass(frozen=True, slots=True)
class IkeAlgorithms:
    """The transforms of an IKE SA."""

    cipher: alg.Cipher
    integrity: alg.Integrity | None
    prf: alg.Prf
    dh: alg.DhGroup

    def __str__(self) -> str:
        words = [self.cipher.name]
        if self.integrity is not None:
            words.append(self.integrity.name)
        return "-".join([*words, self.prf.name, self.dh.name])


@dataclass(frozen=True, slots=True)
class ChildAlgorithms:
    """The transforms of a child SA."""

    protocol: ProtocolId
    cipher: alg.Cipher | None
    integrity: alg.Integrity | None
    esn: bool
    dh: alg.DhGroup | None = None

    def __str__(self) -> str:
        words = [self.cipher.name] if self.cipher else []
        if self.integrity is not None:
            words.append(self.integrity.name)
        if self.dh is not None:
            words.append(self.dh.name)
        words.append("esn" if self.esn else "noesn")
        return "-".join(words)


def _encr(cipher: alg.Cipher) -> Transform:
    return Transform(TransformType.ENCR, cipher.encr_id, cipher.key_length_attribute)


@functools.lru_cache(maxsize=256)
def _transforms(p: Proposal, protocol: str) -> tuple[Transform, ...]:
    out: list[Transform] = [_encr(c) for c in p.ciphers]
    if protocol == "ike":
        out += [Transform(TransformType.PRF, f.prf_id) for f in p.prfs]
    out += [Transform(TransformType.INTEG, i.integ_id) for i in p.integrities if i.icv_bytes]
    out += [Transform(TransformType.DH, g.dh_id) for g in p.dh_groups]
    if protocol != "ike":
        out += [Transform(TransformType.ESN, int(e)) for e in p.esn]
    return tuple(out)


def to_wire(proposals: tuple[Proposal, ...] | list[Proposal], spi: bytes = b"") -> SaPayload:
    """The SA payload offering ``proposals`` in order (``spi`` for ESP/AH)."""
    out = []
    for number, p in enumerate(proposals, 1):
        protocol = {"ike": ProtocolId.IKE, "esp": ProtocolId.ESP, "ah": ProtocolId.AH}[p.protocol]
        out.append(WireProposal(number, protocol, spi, _transforms(p, p.protocol)))
    return SaPayload(tuple(out))


def without_pfs(proposals: tuple[Proposal, ...] | list[Proposal]) -> tuple[Proposal, ...]:
    """Child proposals for IKE_AUTH: the first child's keys come from the IKE SA, so a
    PFS group is neither offered nor expected there (RFC 7296 1.2)."""
    return tuple(replace(p, dh_groups=()) for p in proposals)


def _offers_key_exchange(sa: SaPayload) -> bool:
    for p in sa.proposals:
        for t in p.transforms:
            if t.type == _DH:
                return True
    return False


def without_key_exchange(sa: SaPayload) -> SaPayload:
    """The peer's child offer in IKE_AUTH with any key exchange transform ignored
    (RFC 7296 1.2: an IKE_AUTH child SA has no KE of its own)."""
    if not _offers_key_exchange(sa):
        return sa  # the usual offer: nothing to drop, no copy
    return SaPayload(
        tuple(
            replace(p, transforms=tuple(t for t in p.transforms if t.type != TransformType.DH))
            for p in sa.proposals
        )
    )


def _cipher_of(t: Transform) -> alg.Cipher | None:
    try:
        encr = alg.EncrId(t.id)
    except ValueError:
        return None
    for c in alg.CIPHERS.values():
        if c.encr_id != encr:
            continue
        if c.key_length_attribute is None and t.key_length is None:
            return c
        if c.key_length_attribute is not None and t.key_length == c.key_bits:
            return c
    return None


def _decode(t: Transform) -> object | None:
    """The algorithm a transform names, or ``None`` when unknown or unusable."""
    if t.unknown_attribute:
        return None
    try:
        if t.type == TransformType.ENCR:
            return _cipher_of(t)
        if t.key_length is not None:
            return None  # only ENCR takes a key length (RFC 7296 3.3.5)
        if t.type == TransformType.PRF:
            return alg.PRFS_BY_ID.get(alg.PrfId(t.id))
        if t.type == TransformType.INTEG:
            return alg.INTEGRITIES_BY_ID.get(alg.IntegId(t.id))
        if t.type == TransformType.DH:
            return alg.DH_BY_ID.get(alg.DhId(t.id))
        if t.type == TransformType.ESN:
            return bool(alg.EsnId(t.id))
    except ValueError:
        return None
    return None


def _accepts(mine: Proposal, ttype: int, value: object) -> bool:
    if ttype == TransformType.ENCR:
        return value in mine.ciphers
    if ttype == TransformType.PRF:
        return value in mine.prfs
    if ttype == TransformType.INTEG:
        return value in mine.integrities
    if ttype == TransformType.DH:
        return value in mine.dh_groups
    if ttype == TransformType.ESN:
        return value in mine.esn
    return False


_KNOWN_TYPES = frozenset(int(t) for t in TransformType)
_DH = int(TransformType.DH)

_REQUIRED = {
    "ike": (TransformType.ENCR, TransformType.PRF, TransformType.DH),
    "esp": (TransformType.ENCR,),
    "ah": (TransformType.INTEG,),
}


def _match(offer: WireProposal, mine: Proposal) -> dict[int, object] | None:
    """Per transform type, the first of the offer's transforms that ``mine`` accepts;
    ``None`` when a type offered has no acceptable transform, a required type is missing,
    or AEAD and integrity are combined wrongly (RFC 7296 3.3, 3.3.6)."""
    chosen: dict[int, object] = {}
    chosen_raw: set[int] = set()
    for t in offer.transforms:
        if t.type not in _KNOWN_TYPES:
            return None  # unknown transform type: reject the proposal (RFC 7296 3.3.6)
        present = t.type in chosen_raw
        chosen_raw.add(t.type)
        if present and t.type in chosen:
            continue
        value = _decode(t)
        if value is None and t.type == TransformType.INTEG and t.id == 0:
            value = alg.INTEGRITIES["none"]
        if value is not None and _accepts_any(mine, t.type, value):
            chosen[t.type] = value
    for ttype in chosen_raw:
        if ttype not in chosen:
            return None  # a type was offered but none of its transforms is acceptable
    for ttype in _REQUIRED[mine.protocol]:
        if ttype not in chosen:
            return None
    cipher = chosen.get(TransformType.ENCR)
    aead = isinstance(cipher, alg.Cipher) and cipher.aead
    integ = chosen.get(TransformType.INTEG)
    real_integ = isinstance(integ, alg.Integrity) and integ.icv_bytes > 0
    if aead and real_integ:
        return None
    if not aead and not real_integ and (mine.protocol == "ike" or mine.protocol == "ah"):
        return None
    if mine.protocol == "esp" and not aead and not real_integ and mine.integrities:
        return None
    if mine.protocol != "ike" and TransformType.DH in chosen and not mine.dh_groups:
        return None
    return chosen


def _accepts_any(mine: Proposal, ttype: int, value: object) -> bool:
    if ttype == TransformType.INTEG and isinstance(value, alg.Integrity) and not value.icv_bytes:
        return not mine.integrities or any(not i.icv_bytes for i in mine.integrities)
    if ttype == TransformType.ESN and mine.protocol == "ike":
        return False
    if ttype == TransformType.DH and mine.protocol != "ike" and not mine.dh_groups:
        return False
    return _accepts(mine, ttype, value)


def _response(offer: WireProposal, chosen: dict[int, object], spi: bytes) -> WireProposal:
    picked: list[Transform] = []
    for ttype in (
        TransformType.ENCR,
        TransformType.PRF,
        TransformType.INTEG,
        TransformType.DH,
        TransformType.ESN,
    ):
        if ttype not in chosen:
            continue
        value = chosen[ttype]
        for t in offer.transforms:
            if t.type != ttype:
                continue
            decoded = _decode(t)
            if decoded is None and ttype == TransformType.INTEG and t.id == 0:
                decoded = alg.INTEGRITIES["none"]
            if decoded == value:
                picked.append(t)
                break
    return WireProposal(offer.number, offer.protocol, spi, tuple(picked))


def select(
    offered: SaPayload, mine: tuple[Proposal, ...] | list[Proposal], spi: bytes = b""
) -> tuple[WireProposal, dict[int, object]] | None:
    """The responder's choice: (answer proposal, chosen algorithms by type), or ``None``."""
    found = _select(offered, tuple(mine), spi)
    return None if found is None else (found[0], dict(found[1]))


@functools.lru_cache(maxsize=512)
def _select(
    offered: SaPayload, mine: tuple[Proposal, ...], spi: bytes
) -> tuple[WireProposal, tuple[tuple[int, object], ...]] | None:
    # Cached (inputs are immutable, the answer a pure function of them): peers offer the
    # same lists again and again, and matching is the costly part of IKE_SA_INIT.
    for offer in offered.proposals:
        for p in mine:
            protocol = {"ike": ProtocolId.IKE, "esp": ProtocolId.ESP, "ah": ProtocolId.AH}[
                p.protocol
            ]
            if offer.protocol != protocol:
                continue
            if p.protocol != "ike" and len(offer.spi) != 4:
                continue
            if p.protocol == "ike" and offer.spi not in (b"", bytes(8)) and len(offer.spi) != 8:
                continue
            chosen = _match(offer, p)
            if chosen is not None:
                return _response(offer, chosen, spi), tuple(chosen.items())
    return None


def check_answer(
    answer: SaPayload, mine: tuple[Proposal, ...] | list[Proposal]
) -> dict[int, object] | None:
    """The initiator's check of the responder's SA: one proposal, one transform per type,
    all from what we offered; the chosen algorithms, or ``None`` when it is invalid."""
    found = _check_answer(answer, tuple(mine))
    return None if found is None else dict(found)


@functools.lru_cache(maxsize=512)
def _check_answer(
    answer: SaPayload, mine: tuple[Proposal, ...]
) -> tuple[tuple[int, object], ...] | None:
    if len(answer.proposals) != 1:
        return None
    ans = answer.proposals[0]
    types = [t.type for t in ans.transforms]
    if len(types) != len(set(types)):
        return None
    if not 1 <= ans.number <= len(mine):
        return None
    chosen = _match(ans, mine[ans.number - 1])
    if chosen is None or len(chosen) != len(types):
        return None
    return tuple(chosen.items())


def ike_algorithms(chosen: dict[int, object]) -> IkeAlgorithms:
    """The chosen transforms of an IKE proposal as :class:`IkeAlgorithms`."""
    integ = chosen.get(TransformType.INTEG)
    cipher = chosen[TransformType.ENCR]
    prf = chosen[TransformType.PRF]
    dh = chosen[TransformType.DH]
    assert isinstance(cipher, alg.Cipher) and isinstance(prf, alg.Prf)
    assert isinstance(dh, alg.DhGroup)
    real = integ if isinstance(integ, alg.Integrity) and integ.icv_bytes else None
    return IkeAlgorithms(cipher, real, prf, dh)


def child_algorithms(protocol: ProtocolId, chosen: dict[int, object]) -> ChildAlgorithms:
    """The chosen transforms of an ESP/AH proposal as :class:`ChildAlgorithms`."""
    cipher = chosen.get(TransformType.ENCR)
    integ = chosen.get(TransformType.INTEG)
    dh = chosen.get(TransformType.DH)
    esn = chosen.get(TransformType.ESN, False)
    return ChildAlgorithms(
        protocol,
        cipher if isinstance(cipher, alg.Cipher) else None,
        integ if isinstance(integ, alg.Integrity) and integ.icv_bytes else None,
        bool(esn),
        dh if isinstance(dh, alg.DhGroup) else None,
    )


Shape = tuple[tuple[int, int, int, tuple[Transform, ...]], ...]


def _shape(sa: SaPayload) -> Shape:
    """What matching depends on: proposals without their SPI values (only the sizes)."""
    proposals = sa.proposals
    if len(proposals) == 1:  # an answer, and most offers: no generator needed
        p = proposals[0]
        return ((p.number, p.protocol, len(p.spi), p.transforms),)
    return tuple((p.number, p.protocol, len(p.spi), p.transforms) for p in proposals)


@dataclass(frozen=True, slots=True)
class Choice:
    """A matched proposal: the answer to send, the chosen algorithms by transform type
    (shared; do not modify), the answer as an SA payload, and the algorithms (``ike``
    for an IKE proposal, ``child`` for ESP/AH)."""

    answer: WireProposal
    chosen: dict[int, object]
    reply: SaPayload
    ike: IkeAlgorithms | None
    child: ChildAlgorithms | None


@dataclass(frozen=True, slots=True)
class Accepted:
    """The peer's valid answer to our offer: the chosen algorithms by transform type
    (shared; do not modify) and as ``ike`` or ``child`` algorithms."""

    chosen: dict[int, object]
    ike: IkeAlgorithms | None
    child: ChildAlgorithms | None


def _typed(
    protocol: int, chosen: dict[int, object]
) -> tuple[IkeAlgorithms | None, ChildAlgorithms | None]:
    if protocol == ProtocolId.IKE:
        return ike_algorithms(chosen), None
    return None, child_algorithms(ProtocolId(protocol), chosen)


_MEMO_SIZE = 64
_UNKNOWN: Any = object()  # not in a memo (whose values may be None: "no match")


class Negotiator:
    """Matching against one configured proposal list, with its results remembered.

    Peers offer the same lists in every handshake, and matching is the costly part of
    it; the results are pure functions of the offer's shape (SPI values aside) and of
    the configured list, so each is computed once per config (a bounded memo: a peer
    varying its offers only costs the matching it would cost anyway).
    """

    __slots__ = ("_checked", "_selected", "_wire", "proposals")

    def __init__(self, proposals: tuple[Proposal, ...]) -> None:
        self.proposals = proposals
        self._wire = to_wire(proposals).proposals
        self._selected: dict[tuple[Shape, bytes], Choice | None] = {}
        self._checked: dict[Shape, Accepted | None] = {}

    def offer(self, spi: bytes = b"") -> SaPayload:
        """Our SA payload (``spi`` for ESP/AH), as :func:`to_wire` builds it."""
        return SaPayload(
            tuple([WireProposal(p.number, p.protocol, spi, p.transforms) for p in self._wire])
        )

    def select(self, offered: SaPayload, spi: bytes = b"") -> Choice | None:
        """:func:`select` of the peer's offer against our list, answering with ``spi``."""
        key = (_shape(offered), spi)
        known: Choice | None = self._selected.get(key, _UNKNOWN)
        if known is not _UNKNOWN:
            return known
        found = _select(offered, self.proposals, spi)
        choice = None
        if found is not None:
            chosen = dict(found[1])
            ike, child = _typed(found[0].protocol, chosen)
            choice = Choice(found[0], chosen, SaPayload((found[0],)), ike, child)
        _remember(self._selected, key, choice)
        return choice

    def check(self, answer: SaPayload) -> Accepted | None:
        """:func:`check_answer` of the peer's answer, with its algorithms."""
        key = _shape(answer)
        known: Accepted | None = self._checked.get(key, _UNKNOWN)
        if known is not _UNKNOWN:
            return known
        found = _check_answer(answer, self.proposals)
        accepted = None
        if found is not None:
            chosen = dict(found)
            accepted = Accepted(chosen, *_typed(answer.proposals[0].protocol, chosen))
        _remember(self._checked, key, accepted)
        return accepted


def _remember(memo: dict[Any, Any], key: object, value: object) -> None:
    if len(memo) >= _MEMO_SIZE:
        memo.clear()
    memo[key] = value


def ike_negotiator(config: IkeConfig) -> Negotiator:
    """Matching against ``config``'s IKE proposals, one per config."""
    return derived(config, "ike-negotiator", lambda: Negotiator(config.proposals))


def ike_offer(config: IkeConfig) -> SaPayload:
    """The SA payload of our IKE_SA_INIT request, one per config (its encoding too)."""
    return derived(config, "ike-offer", lambda: to_wire(config.proposals))


def auth_negotiator(child: ChildConfig) -> Negotiator:
    """Matching against ``child``'s proposals without PFS groups, as IKE_AUTH wants
    (:func:`without_pfs`), one per config."""
    return derived(child, "auth-negotiator", lambda: Negotiator(without_pfs(child.proposals)))
