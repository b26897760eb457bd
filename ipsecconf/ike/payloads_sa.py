"""The SA payload: proposals and transforms (RFC 7296 sections 3.3 to 3.3.6).

A transform attribute this codec does not know marks the transform ``unknown`` instead of
failing the message: RFC 7296 3.3.6 says such a transform is rejected, not the whole
proposal list.  Only the Key Length attribute (type 14, TV format) is known.
"""

from __future__ import annotations

from dataclasses import dataclass

from ipsecconf.codec import Buffer
from ipsecconf.ike.errors import DropReason, RemoteProtocolError, malformed

MAX_PROPOSALS = 64
MAX_TRANSFORMS = 64
ATTR_KEY_LENGTH = 14
_TV_FLAG = 0x8000


@dataclass(frozen=True, slots=True)
class Transform:
    """One transform substructure: a type, an id and an optional key length."""

    type: int
    id: int
    key_length: int | None = None
    unknown_attribute: bool = False
    """True when the transform carried an attribute we do not understand (reject it)."""


@dataclass(frozen=True, slots=True)
class WireProposal:
    """One proposal substructure, numbered from 1, with its SPI (empty in IKE_SA_INIT)."""

    number: int
    protocol: int
    spi: bytes
    transforms: tuple[Transform, ...]


@dataclass(frozen=True, slots=True)
class SaPayload:
    """The Security Association payload: proposals in the sender's order of preference."""

    proposals: tuple[WireProposal, ...]


def _pull_transform(buf: Buffer) -> tuple[bool, Transform]:
    last = buf.pull_uint8()
    buf.pull_uint8()
    length = buf.pull_uint16()
    if length < 8 or length - 4 > buf.remaining():
        raise malformed(f"transform length {length} is invalid")
    ttype = buf.pull_uint8()
    buf.pull_uint8()
    tid = buf.pull_uint16()
    key_length: int | None = None
    unknown = False
    attrs = Buffer(buf.pull_bytes(length - 8))
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


def _pull_proposal(buf: Buffer) -> tuple[bool, WireProposal]:
    last = buf.pull_uint8()
    buf.pull_uint8()
    length = buf.pull_uint16()
    if length < 8 or length - 4 > buf.remaining():
        raise malformed(f"proposal length {length} is invalid")
    body = Buffer(buf.pull_bytes(length - 4))
    number = body.pull_uint8()
    protocol = body.pull_uint8()
    spi_size = body.pull_uint8()
    count = body.pull_uint8()
    if count > MAX_TRANSFORMS:
        raise RemoteProtocolError(DropReason.TOO_LARGE, f"{count} transforms in one proposal")
    spi = body.pull_bytes(spi_size)
    transforms = []
    more = count > 0
    for index in range(count):
        if not more:
            raise malformed("transform after the last one")
        more, transform = _pull_transform(body)
        del index
        transforms.append(transform)
    if more or not body.eof():
        raise malformed("transform count disagrees with the proposal length")
    if last not in (0, 2):
        raise malformed(f"proposal 'last substruc' is {last}")
    return last == 2, WireProposal(number, protocol, spi, tuple(transforms))


def pull_sa(buf: Buffer) -> SaPayload:
    """Parse an SA payload body."""
    proposals: list[WireProposal] = []
    more = True
    while more:
        if len(proposals) >= MAX_PROPOSALS:
            raise RemoteProtocolError(DropReason.TOO_LARGE, "too many proposals")
        more, proposal = _pull_proposal(buf)
        proposals.append(proposal)
    if not buf.eof():
        raise malformed("data after the last proposal")
    return SaPayload(tuple(proposals))


def push_sa(buf: Buffer, sa: SaPayload) -> None:
    """Serialise an SA payload body."""
    for pindex, proposal in enumerate(sa.proposals):
        body = Buffer()
        body.push_uint8(proposal.number)
        body.push_uint8(proposal.protocol)
        body.push_uint8(len(proposal.spi))
        body.push_uint8(len(proposal.transforms))
        body.push_bytes(proposal.spi)
        for tindex, transform in enumerate(proposal.transforms):
            attrs = b""
            if transform.key_length is not None:
                attrs = (_TV_FLAG | ATTR_KEY_LENGTH).to_bytes(
                    2, "big"
                ) + transform.key_length.to_bytes(2, "big")
            body.push_uint8(0 if tindex == len(proposal.transforms) - 1 else 3)
            body.push_uint8(0)
            body.push_uint16(8 + len(attrs))
            body.push_uint8(transform.type)
            body.push_uint8(0)
            body.push_uint16(transform.id)
            body.push_bytes(attrs)
        data = body.data()
        buf.push_uint8(0 if pindex == len(sa.proposals) - 1 else 2)
        buf.push_uint8(0)
        buf.push_uint16(4 + len(data))
        buf.push_bytes(data)
