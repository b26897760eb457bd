"""Bulk TCP transfer helpers for the host tests: a server that counts and hashes what it
receives, a client that sends N pseudo-random bytes with DF set (Linux TCP always sets
it; IP_PMTUDISC_DO makes it explicit), both bounded in time."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.engine.topo import Sites

SERVER = """
import hashlib, socket, sys
s = socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1); s.settimeout(60)
print('ready', flush=True)
c, _ = s.accept(); c.settimeout(30)
h, n = hashlib.sha256(), 0
while True:
    chunk = c.recv(1 << 16)
    if not chunk:
        break
    h.update(chunk); n += len(chunk)
print(n, h.hexdigest(), flush=True)
"""

CLIENT = """
import socket, sys
IP_MTU_DISCOVER, IP_PMTUDISC_DO = 10, 2
s = socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET)
if ':' not in sys.argv[1]:
    s.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO)
s.settimeout(30)
s.connect((sys.argv[1], int(sys.argv[2])))
block = bytes(range(256)) * 256
for _ in range(int(sys.argv[3]) // len(block)):
    s.sendall(block)
s.shutdown(socket.SHUT_WR); s.recv(1); s.close()
"""


def expected(size: int) -> tuple[int, str]:
    """(bytes, sha256) the server must report for a transfer of ``size`` bytes."""
    block = bytes(range(256)) * 256
    h = hashlib.sha256()
    for _ in range(size // len(block)):
        h.update(block)
    return (size // len(block)) * len(block), h.hexdigest()


def transfer(
    sites: Sites, src_ns: str, dst_ns: str, dst: str, port: int, size: int, timeout: float = 90
) -> tuple[int, str]:
    """Send ``size`` bytes from ``src_ns`` to ``dst``:``port``; (bytes, sha256) received."""
    server = sites.popen(dst_ns, sys.executable, "-c", SERVER, dst, str(port))
    assert server.stdout is not None
    assert server.stdout.readline().strip() == "ready"
    client = subprocess.run(
        ["ip", "netns", "exec", sites.ns[src_ns], sys.executable, "-c", CLIENT, dst, str(port),
         str(size)],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    out, _ = server.communicate(timeout=timeout)
    assert client.returncode == 0, client.stderr[-500:]
    n, digest = out.split()
    return int(n), digest
