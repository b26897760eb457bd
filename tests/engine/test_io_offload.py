"""The offload plumbing of the I/O layer without root: the TUN device's reads and writes
over a socket pair standing in for ``/dev/net/tun`` (one message per packet, as the
device), which runs of ESP-in-UDP packets leave as one ``UDP_SEGMENT`` send, and how a
``UDP_GRO`` receive is cut back into datagrams."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import pytest

from ipsecconf.esp import offload
from ipsecconf.io import sockets
from ipsecconf.io.sockets import Sockets
from ipsecconf.io.tun import TunDevice
from tests.esp.test_offload import gso_frame, tcp_packet

A, B = bytes([203, 0, 113, 1]), bytes([203, 0, 113, 2])


@pytest.fixture
def tun() -> Iterator[tuple[TunDevice, socket.socket]]:
    """A TunDevice whose "kernel" end is the other half of a SEQPACKET pair."""
    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.setblocking(False)
    dev = TunDevice(ours.detach(), "test0")
    try:
        yield dev, kernel
    finally:
        dev.close()
        kernel.close()


def test_reads_cut_super_packets_and_finish_checksums(tun: tuple[TunDevice, socket.socket]) -> None:
    dev, kernel = tun
    big = tcp_packet(False, bytes(range(256)) * 20, options=b"\x01\x01\x08\x0a" + bytes(8))
    plain = tcp_packet(True, b"plain")
    head = bytes(20)
    udp = struct.pack("!HHHH", 5353, 53, 12, 0) + b"abcd"
    kernel.send(gso_frame(big, 1000))
    kernel.send(offload.EMPTY_HDR + plain)
    kernel.send(offload.VNET_HDR.pack(offload.F_NEEDS_CSUM, 0, 0, 0, 20, 6) + head + udp)
    kernel.send(offload.VNET_HDR.pack(0, 3, 0, 1400, 0, 0) + plain)  # UFO: refused
    got = dev.read_burst()
    segments = offload.split(gso_frame(big, 1000))
    assert len(segments) == 6
    assert got[:7] == [*segments, plain]
    assert got[7][:26] == head + udp[:6] and got[7][26:28] != b"\0\0"
    assert len(got) == 8
    assert (dev.super_packets, dev.offload_errors) == (1, 1)
    assert dev.read_burst() == []


def test_writes_merge_segments_and_count_refusals(tun: tuple[TunDevice, socket.socket]) -> None:
    dev, kernel = tun
    big = tcp_packet(False, bytes(range(200)) * 30)
    segments = offload.split(gso_frame(big, 1200))
    icmp = bytes([0x45]) + bytes(27)
    dev.write_packets([*segments, icmp])
    merged = kernel.recv(70000)
    assert merged == b"".join(bytes(b) for b in offload.coalesce(segments)[0])
    assert offload.VNET_HDR.unpack_from(merged)[1] == offload.GSO_TCPV4
    assert kernel.recv(70000) == offload.EMPTY_HDR + icmp
    assert (dev.merged_writes, dev.write_errors) == (1, 0)
    # A queue that is full (EAGAIN) drops and counts the packets it refused.
    kernel.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    for _ in range(200):
        dev.write_packets(segments)
    assert dev.write_errors > 0 and dev.write_errors % len(segments) == 0


def esp_udp(size: int, dst: bytes = B, *, df: bool = True, tos: int = 0, ttl: int = 64) -> bytes:
    """An ESP-in-UDP IPv4 packet from port 4500 with a payload of ``size`` bytes."""
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, tos, 28 + size, 0, 0x4000 if df else 0, ttl, 17,
                     0, A, dst)  # fmt: skip
    return ip + struct.pack("!HHHH", 4500, 4500, 8 + size, 0) + bytes([size & 0xFF]) * size


def runs(packets: list[bytes]) -> list[int]:
    """The lengths of the runs :func:`sockets._run_end` cuts ``packets`` into."""
    out, i = [], 0
    while i < len(packets):
        end = sockets._run_end(packets, i, len(packets))
        out.append(end - i)
        i = end
    return out


def test_runs_of_equal_datagrams_to_one_peer() -> None:
    full, short = esp_udp(1400), esp_udp(700)
    assert runs([full] * 5 + [short] + [full] * 2) == [6, 2]
    # Another peer, another TOS or TTL, no DF, a larger packet: a new run.
    assert runs([full, full, esp_udp(1400, A)]) == [2, 1]
    assert runs([full, esp_udp(1400, tos=4), full]) == [1, 1, 1]
    assert runs([full, esp_udp(1400, ttl=3)]) == [1, 1]
    assert runs([full, esp_udp(1400, df=False), full]) == [1, 1, 1]
    assert runs([short, full]) == [1, 1]
    # Not ESP-in-UDP from port 4500 (an IKE port 500 datagram; raw ESP): never batched.
    ike = full[:20] + struct.pack("!H", 500) + full[22:]
    esp = full[:9] + b"\x32" + full[10:]
    assert runs([ike, ike, esp, esp]) == [1, 1, 1, 1]
    # The kernel's limits: 64 segments, one IPv4 datagram's worth of bytes.
    assert runs([esp_udp(100)] * 70) == [64, 6]
    assert runs([esp_udp(1400)] * 50) == [46, 4]


class _FakeUdp:
    """recvmsg() answers of a UDP socket, then EAGAIN."""

    def __init__(self, answers: list[tuple[bytes, list[tuple[int, int, bytes]]]]) -> None:
        self.answers = answers

    def recvmsg(
        self, _size: int, _anc: int
    ) -> tuple[bytes, list[tuple[int, int, bytes]], int, tuple[str, int]]:
        if not self.answers:
            raise BlockingIOError
        data, anc = self.answers.pop(0)
        return data, anc, 0, ("203.0.113.1", 4500)


def test_a_gro_receive_comes_out_as_its_datagrams() -> None:
    info = (socket.IPPROTO_IP, sockets.IP_PKTINFO, sockets._PKTINFO.pack(3, B, B))
    gro = (sockets.SOL_UDP, sockets.UDP_GRO, struct.pack("@i", 1000))
    merged = b"a" * 1000 + b"b" * 1000 + b"c" * 10
    fake = _FakeUdp([(merged, [info, gro]), (b"single", [info])])
    got = Sockets.recv_udp(fake)  # type: ignore[arg-type]
    remote, local = ("203.0.113.1", 4500), "203.0.113.2"
    assert got == [
        ([b"a" * 1000, b"b" * 1000, b"c" * 10], remote, local),
        ([b"single"], remote, local),
    ]
