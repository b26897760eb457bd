"""``default_action: discard`` on the filer of the seed's CIFS example (RFC 4301's closing
rule): port 139 still protected, a bypass policy's port still open in clear, and
everything else -- another TCP port, a ping -- dropped by the filer both ways.

One client/filer pair for the module; the client keeps the default bypass.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.engine import topo
from tests.engine.wiretools import ping, tcp_transfer
from tests.host import hosttopo
from tests.host.checks import clear_drops, mature

pytestmark = [pytest.mark.slow, pytest.mark.netns]

EXTRA = """\
default_action: discard
  - name: admin
    source: 198.51.100.0/24
    destination: 203.0.113.10/32[5022]
    direction: in
    ip_protocol: tcp
    protocol: none
"""


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[hosttopo.Hosts]:
    why = topo.missing()
    if why:
        pytest.skip(why)
    with hosttopo.hosts(tmp_path_factory.mktemp("discard")) as h:
        h.apply("a", h.write_hosts("a"))
        cfg = h.write_hosts("b")
        first, bypass = EXTRA.split("\n", 1)
        cfg.write_text(first + "\n" + cfg.read_text() + bypass)
        h.apply("b", cfg)
        for side in ("a", "b"):
            h.start_engine(side)
        yield h


def test_protected_and_bypassed_ports_pass_the_rest_is_dropped(pair: hosttopo.Hosts) -> None:
    payload = os.urandom(5000)
    assert tcp_transfer(pair, "ga", "gb", hosttopo.FILER, payload, port=139) == payload
    assert len(mature(pair, "b")) == 2
    assert tcp_transfer(pair, "ga", "gb", hosttopo.FILER, payload, port=5022) == payload
    before = clear_drops(pair, "b")
    # No policy: the filer drops it, in and out (the handshake never completes).
    server = pair.popen("gb", sys.executable, "-c", LISTEN, hosttopo.FILER, "445")
    try:
        client = subprocess.run(
            ["ip", "netns", "exec", pair.ns["ga"], sys.executable, "-c", CONNECT,
             hosttopo.FILER, "445"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert client.stdout.strip() == "timeout", client.stdout + client.stderr
    finally:
        server.kill()
        server.wait(timeout=10)
    assert ping(pair, "ga", hosttopo.FILER, 3)[1] == 0
    assert clear_drops(pair, "b") >= before + 4  # SYN retries and pings, counted
    # The filer's own outbound traffic without a policy goes nowhere either.
    assert ping(pair, "gb", hosttopo.CLIENT, 3)[1] == 0
    assert ping(pair, "ga", "203.0.113.1", 2)[1] == 2  # the router is not behind the filer


LISTEN = """\
import socket, sys, time
s = socket.create_server((sys.argv[1], int(sys.argv[2])))
time.sleep(30)
"""
CONNECT = """\
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
    print("connected")
except TimeoutError:
    print("timeout")
"""
