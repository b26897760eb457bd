"""The seed man page's CIFS example between two ipsecconf engines, transport mode ESP:
the filer's policy exactly as the seed wrote it (clients' range in, port 139 without a
protocol, esp, restrict, mirrored, no peer, keys from psk.txt by address).

One client/filer pair for the module: port 139 protected on the wire, another port in
clear, the SA listed alike on both sides, and a clear datagram spoofed from the client's
namespace to port 139 dropped by the filer's restrict rule and counted; a second client
of the range gets an IKE SA and a child SA of its own, with its own key.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine import topo
from tests.engine.wiretools import capture, read_pcap, tcp_transfer
from tests.host import hosttopo
from tests.host.checks import clear_drops, mature, spoof_tcp, spoof_udp, to_port

pytestmark = [pytest.mark.slow, pytest.mark.netns]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[hosttopo.Hosts]:
    why = topo.missing()
    if why:
        pytest.skip(why)
    with hosttopo.hosts(tmp_path_factory.mktemp("cifs"), clients=2) as h:
        for side in ("a", "b", "c"):
            h.apply(side, h.write_hosts(side))
            h.start_engine(side)
        yield h


def test_port_139_protected_other_port_clear(pair: hosttopo.Hosts, tmp_path: Path) -> None:
    marker, other = os.urandom(32), os.urandom(32)
    payload = os.urandom(6000) + marker + os.urandom(6000)
    pcap = tmp_path / "wire.pcap"
    with capture(pair, "r", "fl0", pcap):
        got = tcp_transfer(pair, "ga", "gb", hosttopo.FILER, payload, port=139)
        clear = tcp_transfer(pair, "ga", "gb", hosttopo.FILER, other * 4, port=445)
    assert got == payload, pair.log("a") + pair.log("b")
    assert clear == other * 4
    frames = read_pcap(pcap)
    esp = [f for f in frames if f.proto == 50]
    raw = pcap.read_bytes()
    assert marker not in raw  # port 139: never in clear
    assert other in raw  # port 445: no policy, bypassed in clear
    assert to_port(frames, 6, 139) == []
    assert len(to_port(frames, 6, 445)) >= 6  # handshake, data, close
    # Every segment of the 12 kB transfer and its handshake crossed as ESP, host to host:
    # transport mode keeps the hosts' own addresses on the outer header.
    assert len(esp) >= 12000 // 1400 + 3
    addrs = {bytes([198, 51, 100, 21]), bytes([203, 0, 113, 10])}
    assert all({f.src, f.dst} == addrs for f in esp)


def test_sa_show_lists_the_sa_on_both_sides(pair: hosttopo.Hosts) -> None:
    a, b = mature(pair, "a"), mature(pair, "b")
    assert len(a) == 2 and set(a) == set(b), (a, b)
    for spi, sa in a.items():
        assert (sa["source"], sa["destination"]) == (b[spi]["source"], b[spi]["destination"])
        assert sa["policy"] == "cifs" and sa["protocol"] == "esp"
    text = pair.ipsec("b", "sa", "show").stdout
    assert len(re.findall(r"esp/M/[0-9a-f]{8}", text)) == 2, text
    assert f"{hosttopo.CLIENT}->{hosttopo.FILER}" in text
    assert f"{hosttopo.FILER}->{hosttopo.CLIENT}" in text
    log = pair.log("b")
    assert "ESP transport" in log and f"policy cifs with {hosttopo.CLIENT}" in log


def policy_drops(h: hosttopo.Hosts, side: str) -> int:
    out = h.cli(side, "show", "stats", "--json", "--state", h.state(side)).stdout
    return int(json.loads(out)["counters"]["policy_drops"])


def test_restrict_drops_spoofed_clear_datagram(pair: hosttopo.Hosts, tmp_path: Path) -> None:
    before = clear_drops(pair, "b")
    stats_before = policy_drops(pair, "b")
    marker = os.urandom(32)
    pcap = tmp_path / "spoof.pcap"
    with capture(pair, "r", "fl0", pcap):
        got = spoof_udp(pair, "ga", "gb", hosttopo.FILER, 139, marker)
    assert marker in pcap.read_bytes()  # it crossed the wire in clear...
    assert got == b""  # ...and the filer's restrict rule kept it from the socket
    assert clear_drops(pair, "b") == before + 1
    assert policy_drops(pair, "b") == stats_before + 1  # the engine's own stats count it
    # The same datagram to a port no policy covers is delivered: the drop is the policy's.
    assert spoof_udp(pair, "ga", "gb", hosttopo.FILER, 138, marker) == marker


def test_restrict_drops_spoofed_clear_tcp(pair: hosttopo.Hosts) -> None:
    before = clear_drops(pair, "b")
    # The SYNs reach the filer in clear and vanish there: no answer, not even a reset.
    assert spoof_tcp(pair, "ga", "gb", hosttopo.FILER, 139) == "TimeoutError"
    assert clear_drops(pair, "b") >= before + 1
    assert spoof_tcp(pair, "ga", "gb", hosttopo.FILER, 140) == "connected"


def test_each_client_of_the_range_gets_its_own_sa(pair: hosttopo.Hosts, tmp_path: Path) -> None:
    marker = os.urandom(32)
    pcap = tmp_path / "second.pcap"
    with capture(pair, "r", "fl0", pcap):
        got = tcp_transfer(pair, "gc", "gb", hosttopo.FILER, os.urandom(3000) + marker, port=139)
    assert got.endswith(marker), pair.log("c") + pair.log("b")
    assert marker not in pcap.read_bytes()
    second = {bytes([198, 51, 100, 22]), bytes([203, 0, 113, 10])}
    assert [f for f in read_pcap(pcap) if f.proto == 50 and {f.src, f.dst} == second]
    filer = mature(pair, "b")
    peers = sorted(
        (sa["source"], sa["destination"]) for sa in filer.values() if sa["policy"] == "cifs"
    )
    assert peers == sorted(
        [(hosttopo.CLIENT, hosttopo.FILER), (hosttopo.FILER, hosttopo.CLIENT),
         (hosttopo.CLIENT2, hosttopo.FILER), (hosttopo.FILER, hosttopo.CLIENT2)]
    )  # fmt: skip
    assert set(mature(pair, "c")) <= set(filer)
    log = pair.log("b")
    assert f"IKE SA with {hosttopo.CLIENT2} established as responder" in log
    assert f"SA installed for policy cifs with {hosttopo.CLIENT2}: ESP transport" in log
