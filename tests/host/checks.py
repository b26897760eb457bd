"""Shared checks of the host tests: SAs as the CLI shows them, frames of a flow, the
filer's restrict counters, a UDP datagram sent around the engine (its firewall mark)."""

from __future__ import annotations

import json
import sys
from typing import Any

from tests.engine.topo import Sites
from tests.engine.wiretools import Frame

MARK = 0x4500

UDP_SERVER = """
import socket, sys
s = socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2]))); s.settimeout(float(sys.argv[3]))
print('ready', flush=True)
try:
    data, _ = s.recvfrom(65535)
    print(data.hex(), flush=True)
except socket.timeout:
    print('nothing', flush=True)
"""

UDP_SPOOF = """
import socket, sys
s = socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, 36, int(sys.argv[3]))  # SO_MARK: around the engine's rule
s.sendto(bytes.fromhex(sys.argv[4]), (sys.argv[1], int(sys.argv[2])))
"""


def sas(s: Sites, side: str) -> list[dict[str, Any]]:
    out = s.cli(side, "show", "sas", "--json", "--state", s.state(side)).stdout
    return list(json.loads(out))


def mature(s: Sites, side: str) -> dict[int, dict[str, Any]]:
    return {sa["spi"]: sa for sa in sas(s, side) if sa["state"] == "M"}


def to_port(frames: list[Frame], proto: int, port: int) -> list[Frame]:
    """Clear frames of ``proto`` (TCP/UDP) to or from ``port``."""
    out = []
    for f in frames:
        if f.proto != proto:
            continue
        hl = (f.data[0] & 0x0F) * 4 if f.version == 4 else 40
        ports = f.data[hl : hl + 4]
        if len(ports) == 4 and port in (
            int.from_bytes(ports[:2], "big"),
            int.from_bytes(ports[2:], "big"),
        ):
            out.append(f)
    return out


def clear_drops(s: Sites, side: str) -> int:
    """Packets the side's nftables restrict rules dropped (all clear_in counters)."""
    ns = s.engine_ns(side)
    out = s.run(ns, "nft", "-j", "list", "chain", "inet", "ipsecconf", "clear_in").stdout
    total = 0
    for item in json.loads(out)["nftables"]:
        for e in item.get("rule", {}).get("expr", []):
            if "counter" in e:
                total += int(e["counter"]["packets"])
    return total


def spoof_udp(s: Sites, src_ns: str, dst_ns: str, dst: str, port: int, data: bytes) -> bytes:
    """Send one clear UDP datagram from ``src_ns`` with the engine's mark (so no policy
    routing catches it); what a server on ``dst``:``port`` received (b"" for nothing)."""
    server = s.popen(dst_ns, sys.executable, "-c", UDP_SERVER, dst, str(port), "2")
    assert server.stdout is not None
    assert server.stdout.readline().strip() == "ready"
    s.run(src_ns, sys.executable, "-c", UDP_SPOOF, dst, str(port), str(MARK), data.hex())
    out, _ = server.communicate(timeout=10)
    line = out.strip()
    return b"" if line == "nothing" else bytes.fromhex(line)


TCP_SPOOF = """
import socket, sys
s = socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, 36, int(sys.argv[3]))  # SO_MARK: around the engine's rule
s.settimeout(float(sys.argv[4]))
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    print('connected')
except OSError as exc:
    print(type(exc).__name__)
"""


def spoof_tcp(s: Sites, src_ns: str, dst_ns: str, dst: str, port: int) -> str:
    """A clear TCP connect from ``src_ns`` with the engine's mark to a listener on
    ``dst``:``port``: 'connected', or the error's name ('TimeoutError' when the SYNs
    vanished)."""
    server = s.popen(dst_ns, sys.executable, "-c", LISTEN, dst, str(port))
    assert server.stdout is not None
    assert server.stdout.readline().strip() == "ready"
    res = s.run(src_ns, sys.executable, "-c", TCP_SPOOF, dst, str(port), str(MARK), "2")
    server.kill()
    server.wait(timeout=5)
    return str(res.stdout).strip()


LISTEN = """
import socket, sys, time
s = socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(4)
print('ready', flush=True)
time.sleep(20)
"""
