"""The per-packet outbound fast path for CBC suites with HMAC integrity (AES-CBC, 3DES,
DES with any HMAC) and 32-bit sequence numbers in tunnel mode, IPv4 outer header, with or
without UDP encapsulation, and an IPv4 inner packet with DF set and no options -- the same
packets :mod:`ipsecconf.esp.fastpath` serves for AEAD suites.

It emits exactly what :meth:`SecurityAssociation.encapsulate_general` emits for such a
packet (the tests compare both byte for byte, with the same RNG): the cipher's chained
encryption (:meth:`EspCbc.encrypt`, one pool of random blocks per SA, DESIGN.md
"Algorithms") gives ``IV || ciphertext``; the HMAC, from a copy of the keyed context,
covers ESP header, IV and ciphertext.  The outer IPv4 header is atomic (DF,
identification 0) with its checksum computed from a per-SA constant.

Anything else -- a state other than Mature, a lifetime due, a mark crossed, exhaustion,
other packet shapes -- goes to the general path before any state changes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from ipsecconf.esp.fastpath import Encapsulate, EncapsulateBatch, outer_v4, sequence_mark
from ipsecconf.esp.packet import ESP_HEADER, PAD

if TYPE_CHECKING:
    from ipsecconf.esp.sa import SecurityAssociation

# Outer IPv4 header: version/IHL + TOS, total length, identification + flags + TTL +
# protocol as one constant, checksum, both addresses.
_IPV4 = struct.Struct("!HH6sH8s")
# The same with a UDP header (ports as one constant, length, checksum 0).
_IPV4_UDP = struct.Struct("!HH6sH8sIHH")


def cbc_tunnel_v4(
    sa: SecurityAssociation, general: Encapsulate
) -> tuple[Encapsulate, EncapsulateBatch, Callable[[], None]]:
    """The fast ``encapsulate`` and ``encapsulate_batch`` for an ESP CBC + HMAC tunnel SA
    without ESN and with an IPv4 outer header, and the hook that refreshes their lifetime
    marks (the SA calls it when its state changes)."""
    ctx = sa.esp_context
    cbc, mac = ctx.cbc, ctx.hmac
    assert not ctx.esn and cbc is not None and mac is not None
    encrypt = cbc.encrypt
    keyed = mac.keyed
    icv_len = mac.icv_bytes
    block = cbc.block
    rng = ctx.rng
    spi = ctx.spi
    esp_header = ESP_HEADER.pack
    counters = sa.counters
    middle, addrs, ports, outer, neg_base = outer_v4(sa)
    udp = sa.config.encap is not None
    outer_header = _IPV4_UDP.pack if udp else _IPV4.pack
    # By packet length mod block: the trailer (padding, pad length, next header 4) and
    # the total length of the outer packet minus the inner length.
    pads = tuple(-(k + 2) % block for k in range(block))
    trailers = tuple(PAD[p] + bytes((p, 4)) for p in pads)
    extra = tuple(outer + 8 + block + p + 2 + icv_len for p in pads)
    mask = block - 1
    join = b"".join
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
        k = n & mask
        total = n + extra[k]
        tos = packet[1]
        sealed = encrypt(packet, rng, trailers[k])
        esp = esp_header(spi, seq)
        h = keyed()
        h.update(esp)
        h.update(sealed)
        csum = (neg_base - tos - total) % 0xFFFF
        if udp:
            head = outer_header(0x4500 | tos, total, middle, csum, addrs, ports, total - 20, 0)
        else:
            head = outer_header(0x4500 | tos, total, middle, csum, addrs)
        out = join((head, esp, sealed, h.finalize()[:icv_len]))
        counters.packets += 1
        counters.bytes = b = counters.bytes + n
        if b >= bmark:
            sa.check_lifetimes(now)
            refresh()
        return out

    def encapsulate_batch(packets: list[bytes], now: float) -> list[bytes]:
        # HMAC and CBC dominate here; a burst is the single path in a loop.
        return [encapsulate(p, now) for p in packets]

    refresh()
    return encapsulate, encapsulate_batch, refresh
