"""The engine's sockets, all carrying its firewall mark (SO_MARK) so that the policy
routing rule (``not fwmark MARK``) never steers them into the TUN device:

* UDP 500 and 4500 on IPv4 and IPv6 (wildcard, with IP_PKTINFO / IPV6_RECVPKTINFO so the
  engine learns which local address a datagram reached): IKE, and on 4500 ESP-in-UDP
  told apart by the non-ESP marker (RFC 3948);
* raw IP protocol 50 and 51 receivers on IPv4 (the kernel hands over the IP header too);
  on IPv6 the raw socket gives the payload only, so for ESP the fixed header is rebuilt
  from the addresses; AH over IPv6 covers the whole header chain (extension headers and
  the real payload length), so it is read from a packet socket (``AF_PACKET``, with a
  classic BPF filter that passes only IPv6 packets whose chain may hold AH), and the raw
  protocol-51 socket stays open with a filter that keeps nothing -- only so that the
  kernel, seeing a taker, sends no "parameter problem" back;
* raw ICMP and ICMPv6 receivers: "fragmentation needed" / "packet too big" about the
  engine's own packets teach it the path MTU to a peer (:mod:`ipsecconf.engine.pmtu`);
* raw ``IPPROTO_RAW`` senders (header included) for every protected packet and for the
  bypassed clear packets read from the TUN.

:class:`Sockets` implements the engine's :class:`~ipsecconf.engine.ports.Wire` port.
"""

from __future__ import annotations

import ctypes
import errno
import ipaddress
import socket
import struct
from collections.abc import Sequence

SO_MARK = 36
IP_PKTINFO = 8
IP_MTU = 14
IPV6_MTU = 24
IPV6_RECVPKTINFO = 49
IPV6_PKTINFO = 50
IKE_PORTS = (500, 4500)
_IPV6_HDR = struct.Struct("!IHBB16s16s")
_SEND_ERRORS = frozenset(
    (errno.EMSGSIZE, errno.ENOBUFS, errno.EAGAIN, errno.EHOSTUNREACH, errno.ENETUNREACH,
     errno.EPERM, errno.EINVAL)
)  # fmt: skip


ETH_P_IPV6 = 0x86DD
SO_ATTACH_FILTER = 26
PACKET_OUTGOING = 4
_EXT_BEFORE_AH = (0, 43, 60)
"""Hop-by-Hop, Routing and Destination Options may come before AH."""
_KEEP_NOTHING = [(0x06, 0, 0, 0)]
"""Classic BPF: ``ret #0``."""
_IPV6_MAYBE_AH = [
    (0x30, 0, 0, 6),  # ldb [6]: the fixed header's next header
    (0x15, 4, 0, 51),  # AH
    (0x15, 3, 0, 0),  # Hop-by-Hop
    (0x15, 2, 0, 43),  # Routing
    (0x15, 1, 0, 60),  # Destination Options
    (0x06, 0, 0, 0),  # ret #0
    (0x06, 0, 0, 0x40000),  # ret: the whole packet
]


def _attach_filter(sock: socket.socket, program: list[tuple[int, int, int, int]]) -> None:
    """Attach a classic BPF program (SO_ATTACH_FILTER; the kernel copies it)."""
    code = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in program))
    fprog = struct.pack("HL", len(program), ctypes.addressof(code))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def _mark(sock: socket.socket, mark: int) -> None:
    sock.setsockopt(socket.SOL_SOCKET, SO_MARK, mark)


class Sockets:
    """Every socket of the engine."""

    def __init__(self, mark: int, *, ipv6: bool = True) -> None:
        self.mark = mark
        self.udp: dict[tuple[int, int], socket.socket] = {}
        self.raw_in: dict[tuple[int, int], socket.socket] = {}
        self.icmp_in: dict[int, socket.socket] = {}
        self.ah6_sink: socket.socket | None = None
        self.ah6: socket.socket | None = None
        if ipv6:
            self.ah6 = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IPV6))
            _attach_filter(self.ah6, _IPV6_MAYBE_AH)
            self.ah6.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            self.ah6.setblocking(False)
        self.send_errors = 0
        families = [socket.AF_INET] + ([socket.AF_INET6] if ipv6 else [])
        for fam in families:
            for port in IKE_PORTS:
                s = socket.socket(fam, socket.SOCK_DGRAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                _mark(s, mark)
                if port == 4500:
                    # ESP-in-UDP arrives here in TCP-sized bursts: the default buffer
                    # (about 90 full-size datagrams) overflows and TCP through the tunnel
                    # backs off; the raw ESP receivers have the same 4 MiB.
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
                if fam == socket.AF_INET:
                    s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
                    s.bind(("0.0.0.0", port))
                else:
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
                    s.bind(("::", port))
                s.setblocking(False)
                self.udp[(fam, port)] = s
            for proto in (50, 51):
                r = socket.socket(fam, socket.SOCK_RAW, proto)
                r.setblocking(False)
                if fam == socket.AF_INET6 and proto == 51:
                    _attach_filter(r, _KEEP_NOTHING)
                    self.ah6_sink = r
                    continue
                if fam == socket.AF_INET6:
                    r.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
                r.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
                self.raw_in[(fam, proto)] = r
            # ICMP "too big" about our packets: the engine learns the path MTU to a peer.
            icmp_proto = socket.IPPROTO_ICMP if fam == socket.AF_INET else socket.IPPROTO_ICMPV6
            i = socket.socket(fam, socket.SOCK_RAW, icmp_proto)
            i.setblocking(False)
            self.icmp_in[fam] = i
        self.raw4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        _mark(self.raw4, mark)
        self.raw4.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        self.raw6: socket.socket | None = None
        if ipv6:
            # IPPROTO_RAW on IPv6 implies IPV6_HDRINCL: the packet goes out as built.
            self.raw6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
            _mark(self.raw6, mark)

    # -- the Wire port ---------------------------------------------------------------
    def send_ike(self, data: bytes, local_port: int, remote: tuple[str, int]) -> None:
        fam = socket.AF_INET6 if ":" in remote[0] else socket.AF_INET
        sock = self.udp.get((fam, local_port))
        if sock is None:
            return
        try:
            sock.sendto(data, remote)
        except OSError:
            self.send_errors += 1

    def send_packets(self, packets: Sequence[bytes]) -> int:
        raw4, raw6 = self.raw4, self.raw6
        failed = 0
        ntoa = socket.inet_ntoa
        for p in packets:
            try:
                if p[0] >> 4 == 4:
                    raw4.sendto(p, (ntoa(p[16:20]), 0))
                elif raw6 is not None:
                    raw6.sendto(p, (socket.inet_ntop(socket.AF_INET6, p[24:40]), 0))
            except OSError as exc:
                if exc.errno not in (
                    errno.EMSGSIZE,
                    errno.ENOBUFS,
                    errno.EAGAIN,
                    errno.EHOSTUNREACH,
                    errno.ENETUNREACH,
                ):
                    raise
                failed += 1
        self.send_errors += failed
        return failed

    def source_for(self, remote: str) -> str | None:
        fam = socket.AF_INET6 if ":" in remote else socket.AF_INET
        with socket.socket(fam, socket.SOCK_DGRAM) as s:
            _mark(s, self.mark)
            try:
                s.connect((remote, 500))
            except OSError:
                return None
            return str(s.getsockname()[0])

    def path_mtu(self, remote: str) -> int | None:
        fam = socket.AF_INET6 if ":" in remote else socket.AF_INET
        with socket.socket(fam, socket.SOCK_DGRAM) as s:
            _mark(s, self.mark)
            try:
                s.connect((remote, 500))
                if fam == socket.AF_INET:
                    return int(s.getsockopt(socket.IPPROTO_IP, IP_MTU))
                return int(s.getsockopt(socket.IPPROTO_IPV6, IPV6_MTU))
            except OSError:
                return None

    # -- receiving -------------------------------------------------------------------
    @staticmethod
    def recv_udp(sock: socket.socket, burst: int = 64) -> list[tuple[bytes, tuple[str, int], str]]:
        """Datagrams ready on a UDP socket: (payload, remote, local address)."""
        out = []
        for _ in range(burst):
            try:
                data, anc, _flags, addr = sock.recvmsg(65535, 256)
            except BlockingIOError:
                break
            local = ""
            for level, kind, value in anc:
                if level == socket.IPPROTO_IP and kind == IP_PKTINFO:
                    local = socket.inet_ntoa(value[8:12])  # ipi_addr: the header's destination
                elif level == socket.IPPROTO_IPV6 and kind == IPV6_PKTINFO:
                    local = socket.inet_ntop(socket.AF_INET6, value[:16])
            out.append((data, (str(addr[0]), int(addr[1])), local))
        return out

    @staticmethod
    def recv_raw4(sock: socket.socket, burst: int = 64) -> list[bytes]:
        """IPv4 packets (header included) ready on a raw socket."""
        out = []
        recv = sock.recv
        for _ in range(burst):
            try:
                out.append(recv(65535))
            except BlockingIOError:
                break
        return out

    @staticmethod
    def recv_raw6(sock: socket.socket, proto: int, burst: int = 64) -> list[bytes]:
        """IPv6 packets from a raw socket, their fixed header rebuilt (no extension
        headers: the kernel has consumed them)."""
        out = []
        for _ in range(burst):
            try:
                data, anc, _flags, addr = sock.recvmsg(65535, 256)
            except BlockingIOError:
                break
            dst = b""
            for level, kind, value in anc:
                if level == socket.IPPROTO_IPV6 and kind == IPV6_PKTINFO:
                    dst = value[:16]
            if not dst:
                continue
            src = ipaddress.IPv6Address(addr[0].split("%")[0]).packed
            out.append(_IPV6_HDR.pack(6 << 28, len(data), proto, 64, src, dst) + data)
        return out

    @staticmethod
    def recv_ah6(sock: socket.socket, burst: int = 64) -> list[bytes]:
        """IPv6 packets carrying AH, whole (header chain included), from the packet socket;
        the engine's own outgoing copies and packets without AH are left out."""
        out = []
        for _ in range(burst):
            try:
                data, addr = sock.recvfrom(65535)
            except BlockingIOError:
                break
            if addr[2] == PACKET_OUTGOING or len(data) < 40:
                continue
            nh, off = data[6], 40
            while nh in _EXT_BEFORE_AH and off + 2 <= len(data):
                nh, off = data[off], off + (data[off + 1] + 1) * 8
            if nh == 51:
                out.append(data)
        return out

    def close(self) -> None:
        """Close every socket."""
        for s in [*self.udp.values(), *self.raw_in.values(), *self.icmp_in.values(), self.raw4,
                  self.raw6, self.ah6, self.ah6_sink]:  # fmt: skip
            if s is not None:
                s.close()
