"""The per-packet outbound fast path of the most common case: ESP with an AEAD cipher
(AES-GCM, ChaCha20-Poly1305) and 32-bit sequence numbers in tunnel mode, IPv4 outer
header, with or without UDP encapsulation (RFC 3948, the NAT-T case), and an IPv4 inner
packet with DF set (as TCP sends) and no options.

It does exactly what :meth:`SecurityAssociation.encapsulate_general` does for such a packet
-- the tests compare both byte for byte -- but as one closure with every constant bound to
a local: at 1400 bytes, Python attribute lookups, helper calls and extra struct fields cost
as much as the AES-GCM call itself.  So:

* The outer IPv4 header, the UDP header (NAT-T) and the ESP header with its IV are packed
  in one ``struct`` call whose constant fields are pre-joined byte strings (identification,
  flags, TTL and protocol are one field; both addresses another).  The outer header is an
  atomic datagram (DF, identification 0, RFC 6864 section 4.1) whose checksum is a per-SA
  constant plus TOS and length, modulo 0xFFFF, so nothing is cached per packet.
* Nonce (salt || 64-bit IV) and AAD (SPI || sequence number) live in one per-SA 20-byte
  scratch buffer; one ``pack_into`` writes the sequence number into both and the AEAD reads
  them through memoryviews made once.  Without ESN the sequence number fits 32 bits, so it
  is both the ESP header field and the 64-bit IV.
* The result is ``headers + ciphertext`` as ``bytes`` (callers hash, slice and parse it).

Lifetime marks are kept in closure cells and refreshed whenever the SA checks its
lifetimes or the general path runs (a stale mark is only ever too low, which just triggers
a check).  Anything else -- another state, a lifetime due, a mark crossed, exhaustion,
other packet shapes -- goes to the general path before any state changes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from operator import itemgetter
from typing import TYPE_CHECKING, NamedTuple

from ipsecconf.esp.packet import PAD

if TYPE_CHECKING:
    from ipsecconf.esp.sa import SecurityAssociation

Encapsulate = Callable[[bytes, float], bytes]
EncapsulateBatch = Callable[[list[bytes], float], list[bytes]]

# Outer IPv4 header (version/IHL + TOS, total length, identification + flags + TTL +
# protocol as one constant, checksum, both addresses) + ESP SPI, sequence number and IV.
_ESP = struct.Struct("!HH6sH8sIIQ")
# The same with a UDP header (ports as one constant, length, checksum 0) before the ESP.
_UDP_ESP = struct.Struct("!HH6sH8sIHHIIQ")
# Into the nonce/AAD scratch ``salt | 0 (4) | seq | SPI | seq`` at offset 8.
_NONCE_AAD = struct.Struct("!III")
# ESP header 8 + IV 8 + trailer (pad length, next header) 2 + ICV 16.
_ESP_OVERHEAD = 34


class OuterV4(NamedTuple):
    """The per-SA constants of an atomic outer IPv4 header (with a UDP header for NAT-T)."""

    middle: bytes
    """Identification 0, flags DF, TTL and protocol."""
    addrs: bytes
    """Source and destination addresses."""
    ports: int
    """UDP source and destination ports as one 32-bit field (0 without UDP)."""
    length: int
    """Header bytes before the ESP header: 20, or 28 with UDP."""
    neg_base: int
    """The header checksum is ``(neg_base - TOS - total length) % 0xFFFF``: the ones'
    complement sum is the plain sum modulo 0xFFFF (see ip.internet_checksum)."""


def outer_v4(sa: SecurityAssociation) -> OuterV4:
    """The outer-header constants of ``sa`` (an IPv4 tunnel SA)."""
    csum_base, ttl, proto, src, dst = sa.outer_header.atomic_v4()
    encap = sa.config.encap
    return OuterV4(
        struct.pack("!HHBB", 0, 0x4000, ttl, proto),
        src + dst,
        (encap.sport << 16 | encap.dport) if encap is not None else 0,
        20 if encap is None else 28,
        # atomic_v4() counts the payload length; the fast paths add the total length.
        20 - csum_base,
    )


def sequence_mark(sa: SecurityAssociation) -> float:
    """The outbound sequence number at which the general path must take over: a packet
    lifetime or the rekey point (one number per packet sent), or 0 when the SA is not
    Mature."""
    from ipsecconf.esp.sa import SaState

    if sa.state is not SaState.MATURE:
        return 0
    return min(sa.packets_mark - sa.counters.packets + sa.ctx.seq, sa.seq_soft)


def aead_tunnel_v4(
    sa: SecurityAssociation, general: Encapsulate
) -> tuple[Encapsulate, EncapsulateBatch, Callable[[], None]]:
    """The fast ``encapsulate`` and ``encapsulate_batch`` for an ESP AEAD tunnel SA without
    ESN and with an IPv4 outer header, with or without UDP encapsulation, and the hook
    that refreshes their lifetime marks (the SA calls it when its state changes)."""
    ctx = sa.esp_context
    assert not ctx.esn
    enc = ctx.aead_encrypt
    spi = ctx.spi
    counters = sa.counters
    middle, addrs, ports, outer, neg_base = outer_v4(sa)
    udp = sa.config.encap is not None
    headers = _UDP_ESP.pack if udp else _ESP.pack
    # By packet length mod 4: the trailer (padding to 4 bytes, pad length, next header 4
    # for IPv4) and the total length of the outer packet minus the inner length.
    trailers = tuple(PAD[-(k + 2) & 3] + bytes((-(k + 2) & 3, 4)) for k in range(4))
    extra = tuple(outer + _ESP_OVERHEAD + (-(k + 2) & 3) for k in range(4))
    scratch = bytearray(20)
    scratch[:4] = ctx.aead_salt
    view = memoryview(scratch)
    nonce, aad = view[:12], view[12:]
    nonce_aad = _NONCE_AAD.pack_into
    # Lifetime marks: time, bytes, and sequence number (see sequence_mark()).
    tmark = bmark = smark = 0.0

    def refresh() -> None:
        nonlocal tmark, bmark, smark
        tmark, bmark, smark = sa.time_mark, sa.bytes_mark, sequence_mark(sa)

    def slow(packet: bytes, now: float) -> bytes:
        try:
            return general(packet, now)
        finally:
            refresh()

    def encapsulate(packet: bytes, now: float) -> bytes:
        n = len(packet)
        seq = ctx.seq + 1
        if now >= tmark or seq >= smark or n < 20 or packet[0] != 0x45 or not packet[6] & 0x40:
            return slow(packet, now)
        ctx.seq = seq
        # The header code is repeated in the burst loop below: a call costs ~5% here.
        k = n & 3
        total = n + extra[k]
        tos = packet[1]
        nonce_aad(scratch, 8, seq, spi, seq)
        if udp:
            head = headers(
                0x4500 | tos,
                total,
                middle,
                (neg_base - tos - total) % 0xFFFF,
                addrs,
                ports,
                total - 20,
                0,
                spi,
                seq,
                seq,
            )
        else:
            head = headers(
                0x4500 | tos, total, middle, (neg_base - tos - total) % 0xFFFF, addrs, spi, seq, seq
            )
        out = head + enc(nonce, packet + trailers[k], aad)
        counters.packets += 1
        counters.bytes = b = counters.bytes + n
        if b >= bmark:
            sa.check_lifetimes(now)
            refresh()
        return out

    shape = itemgetter(0, 6)  # version/IHL and flags
    fast_shape = {(0x45, 0x40)}  # IPv4 without options, DF, not a fragment

    def encapsulate_batch(packets: list[bytes], now: float) -> list[bytes]:
        # The common burst -- every packet fast, no mark crossed -- is checked up front
        # with C-level passes over the burst, so that the loop below only protects.
        # Anything else (a mark crossed, another shape) goes packet by packet.
        count = len(packets)
        seq = ctx.seq
        if count and now < tmark and seq + count < smark:
            lens = list(map(len, packets))
            nbytes = sum(lens)
            if (
                counters.bytes + nbytes < bmark
                and min(lens) >= 20
                and set(map(shape, packets)) == fast_shape
            ):
                out: list[bytes] = []
                append = out.append
                # encapsulate() inlined, its checks done for the whole burst above.
                for packet, n in zip(packets, lens, strict=True):
                    seq += 1
                    k = n & 3
                    total = n + extra[k]
                    tos = packet[1]
                    nonce_aad(scratch, 8, seq, spi, seq)
                    if udp:
                        head = headers(
                            0x4500 | tos,
                            total,
                            middle,
                            (neg_base - tos - total) % 0xFFFF,
                            addrs,
                            ports,
                            total - 20,
                            0,
                            spi,
                            seq,
                            seq,
                        )
                    else:
                        head = headers(
                            0x4500 | tos,
                            total,
                            middle,
                            (neg_base - tos - total) % 0xFFFF,
                            addrs,
                            spi,
                            seq,
                            seq,
                        )
                    append(head + enc(nonce, packet + trailers[k], aad))
                ctx.seq = seq
                counters.packets += count
                counters.bytes += nbytes
                return out
        return [encapsulate(p, now) for p in packets]

    refresh()
    return encapsulate, encapsulate_batch, refresh
