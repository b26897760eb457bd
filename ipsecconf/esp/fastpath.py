"""The per-packet fast path of the most common outbound case: ESP with an AEAD cipher
(AES-GCM, ChaCha20-Poly1305) and 32-bit sequence numbers in tunnel mode, IPv4 outer
header without UDP encapsulation, and an IPv4 inner packet with DF set (as TCP sends) and
no options.

It does exactly what :meth:`SecurityAssociation.encapsulate_general` does for such a packet
-- the tests compare both byte for byte -- but as one closure with every constant bound to
a local: at 1400 bytes, Python attribute lookups and helper calls cost more than the
AES-GCM call itself.  The outer IPv4 header and the ESP header with its IV are packed in
one call; the outer header is an atomic datagram (DF, identification 0, RFC 6864 section
4.1) whose checksum is a per-SA constant plus TOS and length, modulo 0xFFFF, so nothing is
cached.  Without ESN the sequence number fits 32 bits, so it is both the ESP header field
and the 64-bit IV.  Lifetime marks are kept in closure cells and refreshed whenever the SA
checks its lifetimes or the general path runs (a stale mark is only ever too low, which
just triggers a check).  Anything else -- another state, a lifetime due, a mark crossed,
exhaustion, other packet shapes -- goes to the general path before any state changes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from ipsecconf.esp.packet import PAD

if TYPE_CHECKING:
    from ipsecconf.esp.sa import SecurityAssociation

Encapsulate = Callable[[bytes, float], bytes]
EncapsulateBatch = Callable[[list[bytes], float], list[bytes]]

# Outer IPv4 header (no options) + ESP SPI, sequence number and 64-bit IV.
_HEADERS = struct.Struct("!BBHHHBBH4s4sIIQ")


def aead_tunnel_v4(
    sa: SecurityAssociation, general: Encapsulate
) -> tuple[Encapsulate, EncapsulateBatch]:
    """The fast ``encapsulate`` and ``encapsulate_batch`` for an ESP AEAD tunnel SA without
    ESN and with an IPv4 outer header."""
    from ipsecconf.esp.sa import SaState

    ctx = sa.esp_context
    assert not ctx.esn
    enc = ctx.aead_encrypt
    salt = ctx.aead_salt
    spi = ctx.spi
    counters = sa.counters
    csum_base, ttl, proto, src, dst = sa.outer_header.atomic_v4()
    # Padding to 4 bytes, pad length, next header 4 (IPv4), indexed by the pad length.
    trailers = tuple(PAD[p] + bytes((p, 4)) for p in range(4))
    headers = _HEADERS.pack
    aad = struct.Struct("!II").pack
    nonce = struct.Struct("!4sQ").pack
    mature = SaState.MATURE
    # Lifetime marks in sequence-number terms (outbound: one number per packet sent).
    marks = [0.0, 0.0, 0]  # time mark, bytes mark, sequence mark

    def refresh() -> None:
        marks[0] = sa.time_mark
        marks[1] = sa.bytes_mark
        marks[2] = min(sa.packets_mark - counters.packets + ctx.seq, sa.seq_soft)

    def slow(packet: bytes, now: float) -> bytes:
        try:
            return general(packet, now)
        finally:
            refresh()

    def encapsulate(packet: bytes, now: float) -> bytes:
        n = len(packet)
        if (
            now >= marks[0]
            or sa.state is not mature
            or n < 20
            or packet[0] != 0x45
            or not packet[6] & 0x40
        ):
            return slow(packet, now)
        seq = ctx.seq + 1
        if seq >= marks[2]:
            return slow(packet, now)
        ctx.seq = seq
        pad = -(n + 2) & 3
        esp_len = 34 + n + pad  # header 8, IV 8, trailer 2 + pad, ICV 16
        tos = packet[1]
        c = csum_base + tos + esp_len
        out = headers(
            0x45,
            tos,
            20 + esp_len,
            0,
            0x4000,
            ttl,
            proto,
            (0xFFFF - c % 0xFFFF) % 0xFFFF,
            src,
            dst,
            spi,
            seq,
            seq,
        ) + enc(nonce(salt, seq), packet + trailers[pad], aad(spi, seq))
        counters.packets += 1
        counters.bytes = b = counters.bytes + n
        if b >= marks[1]:
            sa.check_lifetimes(now)
            refresh()
        return out

    def encapsulate_batch(packets: list[bytes], now: float) -> list[bytes]:
        # A burst shares one ``now``: the state and time checks run once per run of fast
        # packets, and the sequence number and counters live in locals until the end of
        # the run (a packet that needs the general path first sees the state written back).
        out: list[bytes] = []
        append = out.append
        i = 0
        count = len(packets)
        while i < count:
            if now >= marks[0] or sa.state is not mature:
                append(slow(packets[i], now))
                i += 1
                continue
            seq = ctx.seq
            total = counters.bytes
            sent = counters.packets
            bmark, smark = marks[1], marks[2]
            while i < count:
                packet = packets[i]
                n = len(packet)
                if (
                    seq + 1 >= smark
                    or total + n >= bmark
                    or n < 20
                    or packet[0] != 0x45
                    or not packet[6] & 0x40
                ):
                    break
                seq += 1
                sent += 1
                total += n
                pad = -(n + 2) & 3
                esp_len = 34 + n + pad
                tos = packet[1]
                c = csum_base + tos + esp_len
                append(
                    headers(
                        0x45,
                        tos,
                        20 + esp_len,
                        0,
                        0x4000,
                        ttl,
                        proto,
                        (0xFFFF - c % 0xFFFF) % 0xFFFF,
                        src,
                        dst,
                        spi,
                        seq,
                        seq,
                    )
                    + enc(nonce(salt, seq), packet + trailers[pad], aad(spi, seq))
                )
                i += 1
            ctx.seq = seq
            counters.bytes = total
            counters.packets = sent
            if i < count:
                # This packet crosses a mark or has another shape: the general path.
                append(slow(packets[i], now))
                i += 1
        return out

    refresh()
    return encapsulate, encapsulate_batch
