"""The per-packet inbound fast path: ESP decapsulation for a tunnel-mode SA with an AEAD
cipher (AES-GCM, ChaCha20-Poly1305) and 32-bit sequence numbers, carried directly in IP
or in UDP (RFC 3948, the NAT-T case), whatever the outer IP version.

It does what :meth:`SecurityAssociation.decapsulate` does for such a packet -- the tests
compare both on valid, replayed, forged and malformed packets -- as one closure with every
constant bound to a local, in the order RFC 4303 section 3.4 requires: the replay check
(pure), the ICV verified by the AEAD before anything is released, then the window update,
the padding and next-header checks and the counters.  The nonce (salt || IV) and the AAD
(SPI || sequence number) are written by one ``pack_into`` into a per-SA scratch buffer read
through memoryviews made once.

Whatever is not the plain good case -- the SA not Mature, a lifetime due, a sequence number
the window would reject, a short packet, bad padding, a next header other than IPv4/IPv6
-- goes to the general path before any state changes, which then raises the typed error;
only a forged ICV is answered here (the general path would decrypt it a second time).
:mod:`ipsecconf.esp.fastpath_cbc_in` repeats this frame around its HMAC and CBC steps (it
says why); a change to one belongs in both.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from ipsecconf.crypto.transforms import AeadTagError
from ipsecconf.esp import ip
from ipsecconf.esp.errors import IntegrityError
from ipsecconf.esp.packet import PAD_TAILS

if TYPE_CHECKING:
    from ipsecconf.esp.sa import SecurityAssociation

Decapsulate = Callable[[bytes, ip.IpInfo, float], bytes]

# SPI, 32-bit sequence number and 64-bit IV.
_HEADER = struct.Struct("!IIQ")
# The scratch ``SPI | seq | salt | IV``: AAD = [0:8] (the SPI as received, like the
# general path), nonce = [8:20].
_AAD_NONCE = struct.Struct("!II4sQ")
# SPI 4 + sequence number 4 + IV 8 + trailer 2 + ICV 16.
_MIN_ESP = 34


def aead_tunnel_in(
    sa: SecurityAssociation, general: Decapsulate
) -> tuple[Decapsulate, Callable[[], None]]:
    """The fast ``decapsulate`` for an ESP AEAD tunnel SA without ESN, and the hook that
    refreshes its lifetime marks (the SA calls it when its state changes)."""
    from ipsecconf.esp.sa import SaState

    ctx = sa.esp_context
    assert not ctx.esn
    dec = ctx.aead_decrypt
    window = ctx.replay
    size = window.size
    mask = (1 << size) - 1
    counters = sa.counters
    pad_tails = PAD_TAILS
    scratch = bytearray(20)
    view = memoryview(scratch)
    aad, nonce = view[:8], view[8:]
    salt = ctx.aead_salt
    header = _HEADER.unpack_from
    aad_nonce = _AAD_NONCE.pack_into
    mature = SaState.MATURE
    udp = ip.PROTO_UDP
    # Lifetime marks; the time mark is -inf when the SA is not Mature (general path).
    tmark = bmark = pmark = 0.0

    def refresh() -> None:
        nonlocal tmark, bmark, pmark
        tmark = sa.time_mark if sa.state is mature else float("-inf")
        bmark = sa.bytes_mark
        pmark = sa.packets_mark

    def slow(packet: bytes, info: ip.IpInfo, now: float) -> bytes:
        try:
            return general(packet, info, now)
        finally:
            refresh()

    def decapsulate(packet: bytes, info: ip.IpInfo, now: float) -> bytes:
        off = info.l4 + 8 if info.proto == udp else info.l4
        end = info.length
        if now >= tmark or end - off < _MIN_ESP:
            return slow(packet, info, now)
        spi, seq, iv = header(packet, off)
        # The replay check of ReplayWindow.check() (32-bit numbers), pure.
        top = window.top
        if seq <= top and (
            not seq or (size and (top - seq >= size or window.bitmap >> (top - seq) & 1))
        ):
            return slow(packet, info, now)
        aad_nonce(scratch, 0, spi, seq, salt, iv)
        try:
            plain = dec(nonce, packet[off + 16 : end], aad)
        except AeadTagError:
            raise IntegrityError() from None
        m = len(plain)
        padlen = plain[-2]
        nh = plain[-1]
        if (nh != 4 and nh != 41) or not plain.endswith(pad_tails[padlen], 0, m - 1):
            return slow(packet, info, now)  # it raises the padding / next-header error
        # Authenticated: ReplayWindow.accept().
        if seq > top:
            if size:
                shift = seq - top
                window.bitmap = ((window.bitmap << shift) | 1) & mask if shift < size else 1
            window.top = seq
        elif size:
            window.bitmap |= 1 << (top - seq)
        out = plain[: m - 2 - padlen]
        counters.packets = p = counters.packets + 1
        counters.bytes = b = counters.bytes + len(out)
        if b >= bmark or p >= pmark:
            sa.check_lifetimes(now)
            refresh()
        return out

    refresh()
    return decapsulate, refresh
