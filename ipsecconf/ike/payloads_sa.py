"""The SA payload: proposals and transforms (RFC 7296 sections 3.3 to 3.3.6).

A transform attribute this codec does not know marks the transform ``unknown`` instead of
failing the message: RFC 7296 3.3.6 says such a transform is rejected, not the whole
proposal list.  Only the Key Length attribute (type 14, TV format) is known.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass
from typing import NamedTuple

from ipsecconf.codec import Buffer, BufferReadError
from ipsecconf.ike.errors import DropReason, RemoteProtocolError, malformed
from ipsecconf.ike.memo import Memo, remember

MAX_PROPOSALS = 64
MAX_TRANSFORMS = 64
ATTR_KEY_LENGTH = 14
_TV_FLAG = 0x8000
# Fixed parts read and written in one struct call each: the codec is on the handshake's
# hot path (``ipsecconf bench ike``).
_TRANSFORM = struct.Struct("!BBHBBH")
_PROPOSAL = struct.Struct("!BBHBBBB")
_KEY_LENGTH = struct.Struct("!HH")


class Transform(NamedTuple):
    """One transform substructure: a type, an id and an optional key length.  A named
    tuple, not a dataclass: matching results are remembered by offers made of these,
    and a tuple hashes without a Python call per transform."""

    type: int
    id: int
    key_length: int | None = None
    unknown_attribute: bool = False
    """True when the transform carried an attribute we do not understand (reject it)."""


@dataclass(slots=True, unsafe_hash=True)
class WireProposal:
    """One proposal substructure, numbered from 1, with its SPI (empty in IKE_SA_INIT)."""

    number: int
    protocol: int
    spi: bytes
    transforms: tuple[Transform, ...]


@dataclass(slots=True, unsafe_hash=True)
class SaPayload(Memo):
    """The Security Association payload: proposals in the sender's order of preference.
    Its encoded body is memoised by :func:`sa_body`.

    Like the handshake payloads of :mod:`ipsecconf.ike.payloads`, this and
    :class:`WireProposal` are values that nothing changes once built, hashable, but not
    ``frozen``: a frozen dataclass costs a call per field to build, and a handshake
    builds about ten of them."""

    proposals: tuple[WireProposal, ...]


def _pull_transform(buf: Buffer) -> tuple[bool, Transform]:
    if buf.remaining() < 8:
        raise malformed("transform shorter than its header")
    last, _, length, ttype, _, tid = _TRANSFORM.unpack(buf.pull_bytes(8))
    if length < 8 or length - 8 > buf.remaining():
        raise malformed(f"transform length {length} is invalid")
    key_length: int | None = None
    unknown = False
    raw = buf.pull_bytes(length - 8)
    if len(raw) == 4 and raw[0] & 0x80:  # the usual lone TV attribute
        atype, value = _KEY_LENGTH.unpack(raw)
        if atype & ~_TV_FLAG == ATTR_KEY_LENGTH:
            key_length = value
        else:
            unknown = True
        raw = b""
    attrs = Buffer(raw)
    while not attrs.eof():
        atype = attrs.pull_uint16()
        if atype & _TV_FLAG:
            value = attrs.pull_uint16()
            if atype & ~_TV_FLAG == ATTR_KEY_LENGTH:
                key_length = value
            else:
                unknown = True
        else:
            attrs.pull_bytes(attrs.pull_uint16())
            unknown = True
    if last not in (0, 3):
        raise malformed(f"transform 'last substruc' is {last}")
    return last == 3, Transform(ttype, tid, key_length, unknown)


@functools.lru_cache(maxsize=256)
def _pull_transforms(count: int, raw: bytes) -> tuple[Transform, ...]:
    # Cached by the raw bytes: a child SA offer differs between handshakes only in its
    # SPI, so its transforms (the bulk of the parse) repeat (the result is immutable).
    body = Buffer(raw)
    transforms = []
    more = count > 0
    for _ in range(count):
        if not more:
            raise malformed("transform after the last one")
        more, transform = _pull_transform(body)
        transforms.append(transform)
    if more or not body.eof():
        raise malformed("transform count disagrees with the proposal length")
    return tuple(transforms)


def pull_sa(buf: Buffer) -> SaPayload:
    """Parse an SA payload body (the rest of ``buf``)."""
    return sa_from_bytes(buf.pull_bytes(buf.remaining()))


def sa_from_bytes(data: bytes) -> SaPayload:
    """Parse an SA payload body given as bytes (by slicing: the handshake's hot path)."""
    proposals: list[WireProposal] = []
    pos, end = 0, len(data)
    more = True
    while more:
        if len(proposals) >= MAX_PROPOSALS:
            raise RemoteProtocolError(DropReason.TOO_LARGE, "too many proposals")
        if end - pos < 8:
            raise malformed("proposal shorter than its header")
        last, _, length, number, protocol, spi_size, count = _PROPOSAL.unpack_from(data, pos)
        if length < 8 or length > end - pos:
            raise malformed(f"proposal length {length} is invalid")
        if count > MAX_TRANSFORMS:
            raise RemoteProtocolError(DropReason.TOO_LARGE, f"{count} transforms in one proposal")
        if spi_size > length - 8:
            raise BufferReadError(f"need {spi_size} SPI bytes, have {length - 8}")
        spi_end = pos + 8 + spi_size
        transforms = _pull_transforms(count, data[spi_end : pos + length])
        if last not in (0, 2):
            raise malformed(f"proposal 'last substruc' is {last}")
        proposals.append(WireProposal(number, protocol, data[pos + 8 : spi_end], transforms))
        more = last == 2
        pos += length
    if pos != end:
        raise malformed("data after the last proposal")
    return SaPayload(tuple(proposals))


def push_sa(buf: Buffer, sa: SaPayload) -> None:
    """Serialise an SA payload body."""
    buf.push_bytes(sa_body(sa))


def sa_body(sa: SaPayload) -> bytes:
    """The encoded body of ``sa``, computed once per object (configured offers are sent
    again and again)."""
    known: bytes | None = getattr(sa, "_memo", None)  # recall(), inlined: hot
    if known is not None:
        return known
    wire = sa_wire(sa)
    remember(sa, wire)
    return wire


def sa_wire(sa: SaPayload) -> bytes:
    """The encoded body of ``sa``, not memoised: for a payload built to be sent once (a
    child SA offer or answer, with its fresh SPI), where looking for a memo that is not
    there and leaving one would cost more than they save."""
    parts = []
    last = len(sa.proposals) - 1
    for pindex, proposal in enumerate(sa.proposals):
        data = proposal.spi + _transforms_bytes(proposal.transforms)
        parts.append(
            _PROPOSAL.pack(
                0 if pindex == last else 2,
                0,
                8 + len(data),
                proposal.number,
                proposal.protocol,
                len(proposal.spi),
                len(proposal.transforms),
            )
        )
        parts.append(data)
    return b"".join(parts)


@functools.lru_cache(maxsize=256)
def _transforms_bytes(transforms: tuple[Transform, ...]) -> bytes:
    # Cached: a child offer is the configured transforms with a fresh SPI each time.
    parts = []
    count = len(transforms)
    for tindex, transform in enumerate(transforms):
        attrs = b""
        if transform.key_length is not None:
            attrs = _KEY_LENGTH.pack(_TV_FLAG | ATTR_KEY_LENGTH, transform.key_length)
        more = 0 if tindex == count - 1 else 3
        parts.append(
            _TRANSFORM.pack(more, 0, 8 + len(attrs), transform.type, 0, transform.id) + attrs
        )
    return b"".join(parts)
