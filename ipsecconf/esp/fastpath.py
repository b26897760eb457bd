"""The per-packet fast path of the most common outbound case: ESP with an AEAD cipher
(AES-GCM, ChaCha20-Poly1305) in tunnel mode, IPv4 outer header without UDP encapsulation,
and an IPv4 inner packet with DF set (as TCP sends) and no options.

It does exactly what :meth:`SecurityAssociation.encapsulate_general` does for such a packet
-- the tests compare both byte for byte -- but as one closure with every constant bound to
a local: Python attribute lookups and helper calls cost more than the AES-GCM call itself
at 1400 bytes.  Anything else (another state, a lifetime due, sequence exhaustion, other
packet shapes) goes to the general path before any state changes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from ipsecconf.esp.ip import IPV4_PACK
from ipsecconf.esp.packet import PAD

if TYPE_CHECKING:
    from ipsecconf.esp.sa import SecurityAssociation

Encapsulate = Callable[[bytes, float], bytes]
EncapsulateBatch = Callable[[list[bytes], float], list[bytes]]

_M32 = 0xFFFFFFFF


def aead_tunnel_v4(
    sa: SecurityAssociation, general: Encapsulate
) -> tuple[Encapsulate, EncapsulateBatch]:
    """The fast ``encapsulate`` and ``encapsulate_batch`` for an ESP AEAD tunnel SA with an
    IPv4 outer header."""
    from ipsecconf.esp.sa import SaState

    ctx = sa.esp_context
    enc = ctx.aead_encrypt
    salt = ctx.aead_salt
    spi = ctx.spi
    esn = ctx.esn
    seq_max = ctx.seq_max
    counters = sa.counters
    # The outer IPv4 header of an atomic datagram (DF, identification 0, RFC 6864 4.1)
    # varies only in TOS and length: its checksum is a constant plus those two, modulo
    # 0xFFFF, packed in one call.  No header cache is needed.
    csum_base, ttl, proto, src, dst = sa.outer_header.atomic_v4()
    pack_v4 = IPV4_PACK
    # Padding to 4 bytes, pad length, next header 4 (IPv4), indexed by the pad length.
    trailers = tuple(PAD[p] + bytes((p, 4)) for p in range(4))
    hdr_iv = struct.Struct("!IIQ").pack
    aad32 = struct.Struct("!II").pack
    aad64 = struct.Struct("!III").pack
    nonce = struct.Struct("!4sQ").pack
    join = b"".join
    mature = SaState.MATURE
    seq_soft = sa.seq_soft

    def encapsulate(packet: bytes, now: float) -> bytes:
        if (
            sa.state is not mature
            or now >= sa.time_mark
            or len(packet) < 20
            or packet[0] != 0x45
            or not packet[6] & 0x40
        ):
            return general(packet, now)
        seq = ctx.seq + 1
        if seq > seq_max:
            return general(packet, now)
        ctx.seq = seq
        n = len(packet)
        pad = -(n + 2) & 3
        lo = seq & _M32
        esp_len = 34 + n + pad  # header 8, IV 8, trailer 2 + pad, ICV 16
        tos = packet[1]
        c = csum_base + tos + esp_len
        hdr = pack_v4(
            0x45, tos, 20 + esp_len, 0, 0x4000, ttl, proto, (0xFFFF - c % 0xFFFF) % 0xFFFF, src, dst
        )
        sealed = enc(
            nonce(salt, seq),
            packet + trailers[pad],
            aad64(spi, seq >> 32, lo) if esn else aad32(spi, lo),
        )
        out = join((hdr, hdr_iv(spi, lo, seq), sealed))
        counters.packets += 1
        counters.bytes += n
        if (
            counters.bytes >= sa.bytes_mark
            or counters.packets >= sa.packets_mark
            or seq >= seq_soft
        ):
            sa.check_lifetimes(now)
        return out

    def encapsulate_batch(packets: list[bytes], now: float) -> list[bytes]:
        # A burst shares one ``now``: the state and time checks run once, and the sequence
        # number and counters live in locals until the end (or until a packet needs the
        # general path, which first sees the state written back).
        out: list[bytes] = []
        append = out.append
        i = 0
        count = len(packets)
        while i < count:
            if sa.state is not mature or now >= sa.time_mark:
                append(general(packets[i], now))
                i += 1
                continue
            seq = ctx.seq
            total = counters.bytes
            sent = counters.packets
            bmark = sa.bytes_mark
            pmark = sa.packets_mark
            while i < count:
                packet = packets[i]
                n = len(packet)
                if (
                    sent + 1 >= pmark
                    or total + n >= bmark
                    or seq + 1 >= seq_soft
                    or n < 20
                    or packet[0] != 0x45
                    or not packet[6] & 0x40
                ):
                    break
                seq += 1
                sent += 1
                total += n
                pad = -(n + 2) & 3
                lo = seq & _M32
                esp_len = 34 + n + pad
                tos = packet[1]
                c = csum_base + tos + esp_len
                hdr = pack_v4(
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
                )
                sealed = enc(
                    nonce(salt, seq),
                    packet + trailers[pad],
                    aad64(spi, seq >> 32, lo) if esn else aad32(spi, lo),
                )
                append(join((hdr, hdr_iv(spi, lo, seq), sealed)))
                i += 1
            ctx.seq = seq
            counters.bytes = total
            counters.packets = sent
            if i < count:
                # This packet crosses a mark or has another shape: the general path.
                append(general(packets[i], now))
                i += 1
        return out

    return encapsulate, encapsulate_batch
