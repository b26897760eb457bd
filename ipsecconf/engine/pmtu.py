"""Path MTU towards the engine's peers, and the "too big" answers it implies.

The engine's ESP and AH packets leave with DF set (atomic datagrams), so a router whose
link is smaller than a protected packet drops it and sends an ICMP "fragmentation needed"
(IPv4) or "packet too big" (IPv6) to the engine's address.  The daemon hands those
messages to :meth:`PathMtu.learn_icmp4` / :meth:`PathMtu.learn_icmp6`, which remember the
MTU per peer when the quoted packet is ours (ESP, AH, or ESP-in-UDP on 4500).  From then
on an outbound protected packet too big for that path is not sent: the clear packet's
sender gets a "too big" of its own, with the MTU that leaves room for this SA's overhead,
written to the TUN as if the destination's path said so -- and TCP shrinks its segments
instead of stalling (what the kernel's XFRM does with its own path MTU).

Pure functions over bytes; the learned values expire after :data:`EXPIRY` seconds
(Linux's ``mtu_expires``), so a path that grows back is used again.
"""

from __future__ import annotations

import ipaddress
import struct

from ipsecconf.esp.ip import internet_checksum

EXPIRY = 600.0
MIN_V4, MIN_V6 = 576, 1280
SLACK = 16
"""Room for padding: the overhead of one packet may grow by a cipher block for another."""
_OURS = (50, 51)


def _ours(proto: int, quoted_l4: bytes) -> bool:
    if proto in _OURS:
        return True
    return proto == 17 and len(quoted_l4) >= 4 and quoted_l4[2:4] == b"\x11\x94"  # 4500


class PathMtu:
    """Learned path MTUs by peer address (text)."""

    def __init__(self) -> None:
        self._mtu: dict[str, tuple[int, float]] = {}

    def active(self) -> bool:
        """Whether any path MTU is known (else nothing needs checking)."""
        return bool(self._mtu)

    def get(self, peer: str, now: float) -> int | None:
        """The learned MTU towards ``peer``, or None."""
        item = self._mtu.get(peer)
        if item is None:
            return None
        if item[1] <= now:
            del self._mtu[peer]
            return None
        return item[0]

    def learn(self, peer: str, mtu: int, now: float) -> bool:
        """Remember ``mtu`` towards ``peer``; True when it is news."""
        if len(self._mtu) > 4096:
            self._mtu.clear()
        before = self.get(peer, now)
        self._mtu[peer] = (mtu, now + EXPIRY)
        return before != mtu

    def learn_icmp4(self, packet: bytes, now: float) -> tuple[str, int] | None:
        """An IPv4 ICMP packet (with its IP header): (peer, mtu) when it is a
        "fragmentation needed" about one of our packets."""
        if len(packet) < 20:
            return None
        hl = (packet[0] & 0x0F) * 4
        icmp = packet[hl:]
        if len(icmp) < 8 + 20 or icmp[0] != 3 or icmp[1] != 4:
            return None
        mtu = struct.unpack_from("!H", icmp, 6)[0]
        quoted = icmp[8:]
        qhl = (quoted[0] & 0x0F) * 4
        if quoted[0] >> 4 != 4 or not _ours(quoted[9], quoted[qhl : qhl + 8]):
            return None
        if mtu < 68:
            return None
        peer = str(ipaddress.IPv4Address(quoted[16:20]))
        mtu = max(mtu, MIN_V4)
        return (peer, mtu) if self.learn(peer, mtu, now) else None

    def learn_icmp6(self, message: bytes, now: float) -> tuple[str, int] | None:
        """An ICMPv6 message (no IPv6 header): (peer, mtu) for a "packet too big" about
        one of our packets (only the fixed header is looked at: ours carry no others)."""
        if len(message) < 8 + 40 or message[0] != 2:
            return None
        mtu = struct.unpack_from("!I", message, 4)[0]
        quoted = message[8:]
        if quoted[0] >> 4 != 6 or not _ours(quoted[6], quoted[40:48]):
            return None
        peer = str(ipaddress.IPv6Address(quoted[24:40]))
        mtu = max(mtu, MIN_V6)
        return (peer, mtu) if self.learn(peer, mtu, now) else None


def too_big(inner: bytes, mtu: int) -> bytes | None:
    """The ICMP "too big" (from the inner destination to the inner source) telling the
    sender of ``inner`` to use at most ``mtu``; None for an IPv4 packet without DF (it
    may be fragmented) or a packet that is not worth answering."""
    version = inner[0] >> 4
    if version == 4 and len(inner) >= 20:
        if not inner[6] & 0x40:
            return None
        hl = (inner[0] & 0x0F) * 4
        body = struct.pack("!BBHHH", 3, 4, 0, 0, max(mtu, 68)) + inner[: hl + 8]
        body = body[:2] + struct.pack("!H", internet_checksum(body)) + body[4:]
        total = 20 + len(body)
        hdr = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, total, 0, 0, 64, 1, 0, inner[16:20], inner[12:16]
        )
        hdr = hdr[:10] + struct.pack("!H", internet_checksum(hdr)) + hdr[12:]
        return hdr + body
    if version == 6 and len(inner) >= 40:
        src, dst = inner[24:40], inner[8:24]
        quoted = inner[: MIN_V6 - 48]
        body = struct.pack("!BBHI", 2, 0, 0, max(mtu, MIN_V6)) + quoted
        pseudo = src + dst + struct.pack("!II", len(body), 58)
        body = body[:2] + struct.pack("!H", internet_checksum(pseudo + body)) + body[4:]
        hdr = struct.pack("!IHBB16s16s", 6 << 28, len(body), 58, 64, src, dst)
        return hdr + body
    return None


def inner_mtu(path_mtu: int, inner_len: int, outer_len: int) -> int:
    """The largest clear packet whose protected form fits ``path_mtu``, judged from one
    packet's overhead (less :data:`SLACK` for padding)."""
    return path_mtu - (outer_len - inner_len) - SLACK
