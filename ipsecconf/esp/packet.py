"""ESP wire format (RFC 4303 section 2) and UDP encapsulation (RFC 3948).

An ESP packet is ``SPI(4) | Sequence Number(4) | IV | encrypted(payload | padding |
pad length | next header) | ICV``.  Padding is the default monotonic 1, 2, 3, ... scheme
(RFC 4303 section 2.4); the receiver checks it, together with the pad length.  The
plaintext plus the two trailer bytes is aligned to the cipher block (4 for AEAD and NULL).
Field names follow scapy's ``_ESPPlain``: spi, seq, iv, data, padding, padlen, nh, icv.

NAT traversal (RFC 3948): ESP rides in UDP (port 4500); IKE on the same port starts with a
four-byte zero *non-ESP marker* (an SPI of zero is never valid), and a single 0xFF byte is a
NAT-keepalive.  :func:`classify_udp4500` tells the three apart.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from ipsecconf.esp.errors import DecodeError, DropReason

ESP_HEADER = struct.Struct("!II")
"""SPI and 32-bit sequence number."""
UDP_HEADER = struct.Struct("!HHHH")
NATT_PORT = 4500
NON_ESP_MARKER = b"\x00\x00\x00\x00"
NATT_KEEPALIVE = b"\xff"

# PAD[n] is the default padding of n bytes: 1, 2, ..., n (RFC 4303 section 2.4).
PAD: tuple[bytes, ...] = tuple(bytes(range(1, n + 1)) for n in range(256))
# PAD_TAILS[n] is what padding of n bytes leaves before the next header: 1, 2, ..., n, n
# (padding and pad length), so that a receiver checks both with one ``endswith``.
PAD_TAILS: tuple[bytes, ...] = tuple(PAD[n] + bytes((n,)) for n in range(256))
# TRAILER[block][(pad << 8) | nh] would be 64k entries per block size; instead the trailer
# for (pad, nh) is built from PAD and cached, since only a few (pad, nh) pairs occur.
_TRAILERS: dict[int, bytes] = {}


def trailer(payload_len: int, block: int, nh: int) -> bytes:
    """Padding, pad length and next header for a payload of ``payload_len`` bytes."""
    pad = -(payload_len + 2) % block
    key = (pad << 8) | nh
    t = _TRAILERS.get(key)
    if t is None:
        t = _TRAILERS[key] = PAD[pad] + bytes((pad, nh))
    return t


def strip_trailer(plaintext: bytes) -> tuple[int, int]:
    """``(payload_len, nh)`` of a decrypted ESP plaintext; checks pad length and padding."""
    n = len(plaintext)
    if n < 2:
        raise DecodeError(DropReason.TRUNCATED, "ESP plaintext shorter than its trailer")
    padlen = plaintext[-2]
    end = n - 2 - padlen
    if end < 0:
        raise DecodeError(DropReason.BAD_PADDING, f"pad length {padlen} exceeds the payload")
    if padlen and plaintext[end : n - 2] != PAD[padlen]:
        raise DecodeError(DropReason.BAD_PADDING, "padding bytes are not 1, 2, 3, ...")
    return end, plaintext[-1]


@dataclass(slots=True)
class EspPayload:
    """A decrypted ESP packet, field by field (scapy ``_ESPPlain`` names)."""

    spi: int
    """Security Parameters Index."""
    seq: int
    """Sequence number; the full 64-bit value when ESN is on."""
    iv: bytes
    """The explicit IV as sent (empty for NULL)."""
    data: bytes
    """The protected payload: an IP packet (tunnel) or an upper-layer segment (transport)."""
    padding: bytes
    """The padding bytes."""
    padlen: int
    """Pad Length field."""
    nh: int
    """Next Header field."""
    icv: bytes
    """Integrity Check Value (AEAD tag or truncated HMAC)."""


def pull_esp_header(packet: bytes | memoryview, offset: int = 0) -> tuple[int, int]:
    """``(spi, seq)`` of the ESP header at ``offset``."""
    if len(packet) < offset + 8:
        raise DecodeError(DropReason.TRUNCATED, "shorter than an ESP header")
    spi, seq = ESP_HEADER.unpack_from(packet, offset)
    return int(spi), int(seq)


def push_udp_header(sport: int, dport: int, payload_len: int, checksum: int = 0) -> bytes:
    """A UDP header; RFC 3948 section 2.1: the checksum is sent as zero over IPv4."""
    return UDP_HEADER.pack(sport, dport, 8 + payload_len, checksum)


class UdpKind(enum.Enum):
    """What a datagram on UDP port 4500 carries."""

    ESP = "esp"
    IKE = "ike"
    KEEPALIVE = "keepalive"


def classify_udp4500(payload: bytes | memoryview) -> UdpKind:
    """Tell ESP, IKE (non-ESP marker) and NAT-keepalive apart (RFC 3948 section 2)."""
    if len(payload) == 1 and payload[0] == 0xFF:
        return UdpKind.KEEPALIVE
    if len(payload) < 8:
        if len(payload) >= 4 and bytes(payload[:4]) == NON_ESP_MARKER:
            return UdpKind.IKE
        raise DecodeError(DropReason.TRUNCATED, "UDP-encapsulated packet shorter than ESP header")
    if bytes(payload[:4]) == NON_ESP_MARKER:
        return UdpKind.IKE
    return UdpKind.ESP


def natt_keepalive() -> bytes:
    """The NAT-keepalive payload to send periodically on port 4500 (RFC 3948 section 2.3)."""
    return NATT_KEEPALIVE
