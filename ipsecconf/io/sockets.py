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

Batches (UDP segmentation and receive offload, as wireguard-go uses them): a run of
ESP-in-UDP IPv4 packets from port 4500 to one peer, equal in size (the last may be
shorter), with DF set, the same TOS and TTL -- what the segments of one TCP super-packet
become -- leaves in one ``sendmsg`` on the port-4500 socket with ``UDP_SEGMENT``: the
kernel builds the same datagrams (plus a UDP checksum, which RFC 3948 allows) from the
one buffer list, and a peer whose socket asks for ``UDP_GRO`` gets them back in one
``recvmsg`` (the engine's 4500 sockets ask; they cut the buffer at the announced size).
The 4500 socket sends such runs with ``IP_PMTUDISC_DO`` (the DF bit the raw path copies
from the clear packet) and IKE with the default, so a large IKE message may still be
fragmented.  A run the kernel refuses (too big for the path, for one) is sent packet by
packet through the raw socket instead, which reports and counts as before.

:class:`Sockets` implements the engine's :class:`~ipsecconf.engine.ports.Wire` port.
"""

from __future__ import annotations

import contextlib
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
IP_MTU_DISCOVER = 10
IP_PMTUDISC_WANT = 1
IP_PMTUDISC_DO = 2
SOL_UDP = 17
UDP_SEGMENT = 103
UDP_GRO = 104
GSO_MAX_SEGMENTS = 64
"""Datagrams per ``UDP_SEGMENT`` send (the kernel's limit was 64 before Linux 5.5)."""
GSO_MAX_BYTES = 0xFFFF - 20 - 8
"""Payload bytes per ``UDP_SEGMENT`` send: one IPv4 datagram's worth."""
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


_PKTINFO = struct.Struct("@i4s4s")
"""``struct in_pktinfo``: interface index, source to use (``ipi_spec_dst``), address."""
_U16 = struct.Struct("@H")
_INT = struct.Struct("@i")


def _run_end(packets: Sequence[bytes], i: int, count: int) -> int:
    """The end of the run of packets from ``i`` that may leave as one ``UDP_SEGMENT``
    send: ESP-in-UDP over IPv4 without options from port 4500, DF set, the same TOS,
    TTL, addresses and destination port, the same size but for a shorter last one,
    within the kernel's limits.  ``i + 1`` when ``packets[i]`` starts no such run."""
    first = packets[i]
    size = len(first)
    if (
        size <= 28
        or first[0] != 0x45
        or first[9] != 17
        or first[20:22] != b"\x11\x94"
        or first[6] & 0xBF  # DF only: no fragment, no MF
        or not first[6] & 0x40
        or first[7]
    ):
        return i + 1
    # The same DF/fragment word, TTL and protocol; addresses and ports; TOS.
    flags_ttl, ends, tos = first[6:10], first[12:24], first[1]
    limit = min(count, i + GSO_MAX_SEGMENTS, i + GSO_MAX_BYTES // (size - 28))
    j = i + 1
    while j < limit:
        p = packets[j]
        n = len(p)
        if n > size or n <= 28 or p[0] != 0x45 or p[12:24] != ends or p[6:10] != flags_ttl:
            break
        if p[1] != tos:
            break
        j += 1
        if n < size:
            break
    return j


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
                    # (A kernel before 5.0 refuses: one datagram per receive then.)
                    with contextlib.suppress(OSError):
                        s.setsockopt(SOL_UDP, UDP_GRO, 1)
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
        self._dont_fragment: set[socket.socket] = set()
        """4500 sockets currently set to IP_PMTUDISC_DO (batches) rather than the default."""
        self.batches = 0
        """Runs sent with UDP_SEGMENT (for tests and benchmarks)."""
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
            if sock in self._dont_fragment:
                sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_WANT)
                self._dont_fragment.discard(sock)
            sock.sendto(data, remote)
        except OSError:
            self.send_errors += 1

    def send_packets(self, packets: Sequence[bytes]) -> int:
        udp4 = self.udp.get((socket.AF_INET, 4500))
        if udp4 is None or len(packets) < 2:
            return self._send_raw(packets)
        failed = 0
        i, count = 0, len(packets)
        while i < count:
            end = _run_end(packets, i, count)
            if end - i >= 2:
                if self._send_batch(udp4, packets, i, end):
                    self.batches += 1
                else:
                    failed += self._send_raw(packets[i:end])
            else:
                failed += self._send_raw(packets[i:end])
            i = end
        return failed

    def _send_batch(self, sock: socket.socket, packets: Sequence[bytes], i: int, end: int) -> bool:
        """Send ``packets[i:end]`` (a run, see :func:`_run_end`) as one ``UDP_SEGMENT``
        message; False when the kernel refuses it (nothing was sent)."""
        first = packets[i]
        if sock not in self._dont_fragment:
            sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO)
            self._dont_fragment.add(sock)
        anc = [
            (socket.IPPROTO_IP, IP_PKTINFO, _PKTINFO.pack(0, first[12:16], b"\0\0\0\0")),
            (SOL_UDP, UDP_SEGMENT, _U16.pack(len(first) - 28)),
            (socket.IPPROTO_IP, socket.IP_TTL, _INT.pack(first[8])),
        ]
        if first[1]:
            anc.append((socket.IPPROTO_IP, socket.IP_TOS, _INT.pack(first[1])))
        dst = (socket.inet_ntoa(first[16:20]), (first[22] << 8) | first[23])
        try:
            sock.sendmsg([memoryview(p)[28:] for p in packets[i:end]], anc, 0, dst)
        except OSError as exc:
            if exc.errno not in _SEND_ERRORS and exc.errno != errno.EIO:
                raise
            return False
        return True

    def _send_raw(self, packets: Sequence[bytes]) -> int:
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
    def recv_udp(
        sock: socket.socket, burst: int = 64
    ) -> list[tuple[list[bytes], tuple[str, int], str]]:
        """Receives ready on a UDP socket: (datagrams, remote, local address) each; what the
        kernel hands over merged (``UDP_GRO``) comes out as the datagrams it was."""
        out: list[tuple[list[bytes], tuple[str, int], str]] = []
        for _ in range(burst):
            try:
                data, anc, _flags, addr = sock.recvmsg(65535, 256)
            except BlockingIOError:
                break
            local = ""
            size = 0
            for level, kind, value in anc:
                if level == socket.IPPROTO_IP and kind == IP_PKTINFO:
                    local = socket.inet_ntoa(value[8:12])  # ipi_addr: the header's destination
                elif level == socket.IPPROTO_IPV6 and kind == IPV6_PKTINFO:
                    local = socket.inet_ntop(socket.AF_INET6, value[:16])
                elif level == SOL_UDP and kind == UDP_GRO:
                    size = _INT.unpack(value)[0]
            remote = (str(addr[0]), int(addr[1]))
            if 0 < size < len(data):
                out.append(([data[j : j + size] for j in range(0, len(data), size)], remote, local))
            else:
                out.append(([data], remote, local))
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
