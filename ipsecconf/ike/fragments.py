"""IKE message fragmentation (RFC 7383): SKF payloads out, reassembly in.

Both sides announce IKEV2_FRAGMENTATION_SUPPORTED in IKE_SA_INIT; after that an
encrypted message larger than ``IkeConfig.fragment_size`` goes out as several messages
with the same ID, each carrying one Encrypted Fragment payload (SKF): the generic header
(Next Payload is the first inner payload's type in fragment 1, zero after), Fragment
Number, Total Fragments, then IV, ciphertext and ICV exactly as an SK payload, with the
fragment numbers authenticated (2.5).  Fragments are protected one by one, so each is
checked on arrival and a forged one is dropped without spoiling the others (2.6).

:class:`Reassembly` keeps the fragments of at most one message per direction; a message
with another ID replaces it (a peer sends only the message the window allows).
"""

from __future__ import annotations

import struct

from ipsecconf.ike.constants import PayloadType
from ipsecconf.ike.errors import DropReason, RemoteProtocolError, malformed
from ipsecconf.ike.message import (
    HEADER_BYTES,
    Header,
    Message,
    SkCrypto,
    header_bytes,
    pull_inner,
)
from ipsecconf.ike.payloads import push_chain

MAX_FRAGMENTS = 32
"""Fragments of one message we accept (a 64 KiB message in 2 KiB pieces)."""
MIN_FRAGMENT_BYTES = 256
_SKF_HEAD = struct.Struct("!BBHHH")


def encode_fragments(
    message: Message, crypto: SkCrypto, max_bytes: int, chain: tuple[int, bytes] | None = None
) -> list[bytes]:
    """``message`` (encrypted) as SKF fragments of at most about ``max_bytes`` each;
    ``chain`` is its payload chain as :func:`push_chain` encodes it, when known."""
    first_inner, inner = chain if chain is not None else push_chain(message.payloads)
    room = max(MIN_FRAGMENT_BYTES, max_bytes) - HEADER_BYTES - 8 - crypto.sealed_length(0)
    room -= room % 16  # whole cipher blocks, so that padding never pushes past max_bytes
    pieces = [inner[i : i + room] for i in range(0, len(inner), room)] or [b""]
    total = len(pieces)
    out = []
    for number, piece in enumerate(pieces, 1):
        length = HEADER_BYTES + 4 + crypto.sealed_length(len(piece))
        header = header_bytes(message, PayloadType.SKF, length)
        extra = struct.pack("!HH", number, total)
        out.append(header + crypto.seal(header, first_inner if number == 1 else 0, piece, extra))
    return out


class Reassembly:
    """Collects the fragments of one message (request or response) at a time."""

    __slots__ = ("_first", "_first_inner", "_message_id", "_pieces", "_total")

    def __init__(self) -> None:
        self._message_id = -1
        self._total = 0
        self._pieces: dict[int, bytes] = {}
        self._first = b""
        self._first_inner = 0

    def add(self, data: bytes, header: Header, crypto: SkCrypto | None) -> Message | None:
        """Check and keep one fragment; the whole message once all have arrived."""
        if crypto is None:
            raise RemoteProtocolError(DropReason.STATE, "fragment before keys exist")
        if len(data) < HEADER_BYTES + 8:
            raise RemoteProtocolError(DropReason.TRUNCATED, "fragment shorter than its headers")
        next_type, _, length, number, total = _SKF_HEAD.unpack_from(data, HEADER_BYTES)
        if HEADER_BYTES + length != len(data):
            raise malformed("SKF payload length disagrees with the message")
        if not 1 <= number <= total or total > MAX_FRAGMENTS:
            raise malformed(f"fragment {number} of {total}")
        if header.message_id != self._message_id or total != self._total:
            if header.message_id == self._message_id and total < self._total:
                raise RemoteProtocolError(DropReason.RETRANSMIT, "fragment of an older split")
            self._message_id, self._total = header.message_id, total
            self._pieces.clear()
        if number in self._pieces:
            raise RemoteProtocolError(DropReason.RETRANSMIT, f"fragment {number} again")
        plain = crypto.open(data, data[HEADER_BYTES + 8 :], extra=4)  # raises on forgery
        self._pieces[number] = plain
        if number == 1:
            self._first, self._first_inner = data, next_type
        if len(self._pieces) < total:
            return None
        inner = b"".join(self._pieces[n] for n in range(1, total + 1))
        self._pieces.clear()
        self._message_id = -1
        payloads = pull_inner(inner, self._first_inner, "a fragmented message")
        return Message(
            exchange=header.exchange,
            message_id=header.message_id,
            spi_i=header.spi_i,
            spi_r=header.spi_r,
            from_initiator=header.from_initiator,
            is_response=header.is_response,
            payloads=payloads,
            encrypted=True,
        )

    @property
    def first(self) -> bytes:
        """The first fragment of the message last completed (what a retransmission of
        the request repeats byte for byte)."""
        return self._first
