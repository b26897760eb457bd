"""The per-packet inbound fast path for CBC suites with HMAC integrity (AES-CBC, 3DES, DES
with any HMAC): ESP decapsulation for a tunnel-mode SA with 32-bit sequence numbers,
carried directly in IP or in UDP (RFC 3948), whatever the outer IP version -- the packets
:mod:`ipsecconf.esp.fastpath_in` serves for AEAD suites.

It does what :meth:`SecurityAssociation.decapsulate` does for such a packet -- the tests
compare both on valid, replayed, forged and malformed packets -- in the order RFC 4303
section 3.4 requires: the replay check (pure), the truncated HMAC over ESP header, IV and
ciphertext compared in constant time *before* decryption, then the chained decryption
(:meth:`EspCbc.decrypt`), the window update, the padding and next-header checks and the
counters.

Whatever is not the plain good case -- the SA not Mature, a lifetime due, a sequence number
the window would reject, a short or unaligned packet, bad padding, a next header other than
IPv4/IPv6 -- goes to the general path before any state changes, which then raises the
typed error; only a forged ICV is answered here, without decrypting.

The frame around the cipher -- lifetime marks, replay check, window update, padding check,
counters -- repeats :func:`~ipsecconf.esp.fastpath_in.aead_tunnel_in` line for line on
purpose: one shared frame calling the cipher step costs a Python call per packet, measured
at 4-7% of a 64-byte packet for both suites.  The tests hold both to the general path.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from hmac import compare_digest
from typing import TYPE_CHECKING

from ipsecconf.esp import ip
from ipsecconf.esp.errors import IntegrityError
from ipsecconf.esp.fastpath_in import Decapsulate
from ipsecconf.esp.packet import PAD_TAILS

if TYPE_CHECKING:
    from ipsecconf.esp.sa import SecurityAssociation

# The sequence number, after the SPI (which the SAD lookup already matched).
_SEQ = struct.Struct("!4xI")


def cbc_tunnel_in(
    sa: SecurityAssociation, general: Decapsulate
) -> tuple[Decapsulate, Callable[[], None]]:
    """The fast ``decapsulate`` for an ESP CBC + HMAC tunnel SA without ESN, and the hook
    that refreshes its lifetime marks (the SA calls it when its state changes)."""
    from ipsecconf.esp.sa import SaState

    ctx = sa.esp_context
    cbc, mac = ctx.cbc, ctx.hmac
    assert not ctx.esn and cbc is not None and mac is not None
    decrypt = cbc.decrypt
    keyed = mac.keyed
    icv_len = mac.icv_bytes
    block = cbc.block
    # ESP header, IV and ICV around the ciphertext, which must be whole blocks (the
    # general path's TRUNCATED and MALFORMED cases); the block size is a power of two.
    fixed = 8 + block + icv_len
    align = block - 1
    window = ctx.replay
    size = window.size
    mask = (1 << size) - 1
    counters = sa.counters
    pad_tails = PAD_TAILS
    seq_of = _SEQ.unpack_from
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
        body = end - off - fixed
        if now >= tmark or body <= 0 or body & align:
            return slow(packet, info, now)
        (seq,) = seq_of(packet, off)
        # The replay check of ReplayWindow.check() (32-bit numbers), pure.
        top = window.top
        if seq <= top and (
            not seq or (size and (top - seq >= size or window.bitmap >> (top - seq) & 1))
        ):
            return slow(packet, info, now)
        icv_at = end - icv_len
        view = memoryview(packet)
        h = keyed()
        h.update(view[off:icv_at])
        if not compare_digest(h.finalize()[:icv_len], view[icv_at:end]):
            raise IntegrityError()
        plain = decrypt(view[off + 8 : icv_at])
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
