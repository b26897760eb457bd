"""Test helpers on the wire: a pcap reader (classic libpcap format, Ethernet), a capture
started and stopped by pid, and a TCP transfer carrying a marker between two namespaces."""

from __future__ import annotations

import contextlib
import signal
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.engine.topo import Sites


@dataclass(frozen=True, slots=True)
class Frame:
    """One captured IP packet."""

    version: int
    proto: int
    src: bytes
    dst: bytes
    data: bytes


def read_pcap(path: Path) -> list[Frame]:
    """IP frames of an Ethernet pcap file."""
    raw = path.read_bytes()
    if len(raw) < 24:
        return []
    magic = struct.unpack_from("<I", raw)[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    off, out = 24, []
    while off + 16 <= len(raw):
        _s, _u, incl, _orig = struct.unpack_from(endian + "IIII", raw, off)
        pkt = raw[off + 16 : off + 16 + incl]
        off += 16 + incl
        if len(pkt) < 14:
            continue
        etype = struct.unpack_from("!H", pkt, 12)[0]
        ip = pkt[14:]
        if etype == 0x0800 and len(ip) >= 20:
            out.append(Frame(4, ip[9], ip[12:16], ip[16:20], ip))
        elif etype == 0x86DD and len(ip) >= 40:
            out.append(Frame(6, ip[6], ip[8:24], ip[24:40], ip))
    return out


@contextlib.contextmanager
def capture(sites: Sites, ns: str, dev: str, path: Path) -> Iterator[Path]:
    """tcpdump on ``dev`` in namespace ``ns`` while the block runs (stopped by its pid)."""
    p = sites.popen(
        ns, "tcpdump", "-i", dev, "-U", "--immediate-mode", "-n", "-s", "0", "-w", str(path)
    )
    deadline = time.monotonic() + 10
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    try:
        yield path
    finally:
        time.sleep(0.3)
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)


SERVER = """
import socket, sys
s = socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1); s.settimeout(30)
print('ready', flush=True)
c, _ = s.accept(); c.settimeout(30)
data = b''
while True:
    chunk = c.recv(65536)
    if not chunk:
        break
    data += chunk
sys.stdout.write(data.hex()); sys.stdout.flush()
"""

CLIENT = """
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
s.sendall(bytes.fromhex(sys.stdin.read().strip())); s.close()
"""


def tcp_transfer(
    sites: Sites, src_ns: str, dst_ns: str, dst: str, payload: bytes, port: int = 5001
) -> bytes:
    """Send ``payload`` over TCP from ``src_ns`` to ``dst``:``port`` in ``dst_ns``;
    returns what the server received."""
    import sys

    server = sites.popen(dst_ns, sys.executable, "-c", SERVER, dst, str(port))
    assert server.stdout is not None
    line = server.stdout.readline().strip()
    assert line == "ready", line
    client = subprocess.run(
        ["ip", "netns", "exec", sites.ns[src_ns], sys.executable, "-c", CLIENT, dst, str(port)],
        input=payload.hex(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert client.returncode == 0, client.stderr
    out, _err = server.communicate(timeout=60)
    return bytes.fromhex(out.strip())


def ping(
    sites: Sites, ns: str, dst: str, count: int, interval: float = 0.2, src: str | None = None
) -> tuple[int, int]:
    """(transmitted, received) of a ping run."""
    args = ["ping", "-n", "-c", str(count), "-i", str(interval), "-W", "1"]
    if src:
        args += ["-I", src]
    res = sites.run(ns, *args, dst, check=False, timeout=count * interval + 30)
    return parse_ping(res.stdout)


def parse_ping(text: str) -> tuple[int, int]:
    """(transmitted, received) from ping's summary line."""
    for line in text.splitlines():
        if "packets transmitted" in line:
            parts = line.split(",")
            return int(parts[0].split()[0]), int(parts[1].split()[0])
    return 0, 0
