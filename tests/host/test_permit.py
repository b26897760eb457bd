"""The seed's permit level between two engines: port 139 is protected; the filer's engine
stops (deleting its SAs with the client), the client's next negotiation fails, the client
says so in its log and sends port 139 in clear; once the filer's engine is back, the
flow is renegotiated and protected again.

Both engines run with a short IKE retransmission schedule (``--ike-timeout 0.5
--ike-tries 2``: a negotiation fails after about 3 s instead of strongSwan's 165 s).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine import topo
from tests.engine.wiretools import capture, read_pcap, tcp_transfer
from tests.host import hosttopo
from tests.host.checks import mature, to_port

pytestmark = [pytest.mark.slow, pytest.mark.netns]

FAST_IKE = ("--ike-timeout", "0.5", "--ike-tries", "2")


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[hosttopo.Hosts]:
    why = topo.missing()
    if why:
        pytest.skip(why)
    with hosttopo.hosts(tmp_path_factory.mktemp("permit")) as h:
        h.apply("a", h.write_hosts("a", level="permit"))
        h.apply("b", h.write_hosts("b", level="permit"))
        yield h


def send(h: hosttopo.Hosts, marker: bytes) -> bytes:
    return tcp_transfer(h, "ga", "gb", hosttopo.FILER, os.urandom(2000) + marker, port=139)


def test_permit_clear_after_failure_then_protected_again(
    pair: hosttopo.Hosts, tmp_path: Path
) -> None:
    pair.start_engine("a", *FAST_IKE)
    pair.start_engine("b", *FAST_IKE)
    protected = os.urandom(32)
    pcap0 = tmp_path / "up0.pcap"
    with capture(pair, "r", "fl0", pcap0):
        assert send(pair, protected).endswith(protected), pair.log("a")
    assert protected not in pcap0.read_bytes()
    assert [f for f in read_pcap(pcap0) if f.proto == 50]
    # The filer's engine stops (deleting its SAs with the client).
    pair.stop_engine("b")
    assert "deleted by the peer" in pair.log("a")
    first = os.urandom(32)
    pcap = tmp_path / "down.pcap"
    with capture(pair, "r", "fl0", pcap):
        started = time.monotonic()
        # TCP retransmits its SYN while the negotiation runs and fails; then the flow
        # falls back to clear and the connection completes.
        assert send(pair, first).endswith(first), pair.log("a")
        waited = time.monotonic() - started
    log = pair.log("a")
    assert "for policy cifs failed: peer-not-responding" in log, log
    assert "policy cifs is permit: traffic to 203.0.113.10 goes in clear" in log
    raw = pcap.read_bytes()
    assert first in raw  # in clear, after the failure
    frames = read_pcap(pcap)
    assert [f for f in frames if f.proto == 50] == []
    assert len([f for f in frames if f.proto == 17 and f.data[22:24] == b"\x01\xf4"]) >= 2
    print(f"permit: clear traffic {waited:.1f} s after the first packet")

    # The peer is back: the client's engine negotiates again after its backoff.
    pair.start_engine("b", *FAST_IKE)
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline and not mature(pair, "a"):
        # The flow goes on in clear meanwhile; the engine renegotiates on its backoff
        # schedule with the packet that first asked (0.5 s doubling to 30 s).
        send(pair, os.urandom(32))
        time.sleep(1.0)
    assert mature(pair, "a"), pair.log("a")
    log = pair.log("a")
    assert "policy cifs is permit: negotiating again with 203.0.113.10" in log
    assert "policy cifs is permit: traffic with 203.0.113.10 is protected again" in log
    again = os.urandom(32)
    pcap2 = tmp_path / "up.pcap"
    with capture(pair, "r", "fl0", pcap2):
        assert send(pair, again).endswith(again)
    frames = read_pcap(pcap2)
    assert again not in pcap2.read_bytes()
    assert to_port(frames, 6, 139) == []
    assert len([f for f in frames if f.proto == 50]) >= 4
