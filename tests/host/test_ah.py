"""The CIFS example with AH (``-p ah``) between two engines, IPv4 and IPv6, transport
mode: the wire shows AH with the payload in clear (AH only authenticates), and scapy
(the oracle: no other AH implementation runs here) verifies the ICV of every AH packet
with the negotiated keys, which the engines export through their test-only key log
(:mod:`ipsecconf.engine.keylog`).  A packet changed by one bit fails scapy's check, so
the check is not vacuous.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ipsecconf.engine import keylog
from tests.engine import topo
from tests.engine.wiretools import Frame, capture, read_pcap, tcp_transfer
from tests.host import hosttopo
from tests.host.checks import UDP_SERVER, mature, to_port

pytestmark = [pytest.mark.slow, pytest.mark.netns]
ipsec = pytest.importorskip("scapy.layers.ipsec")
inet = pytest.importorskip("scapy.layers.inet")
inet6 = pytest.importorskip("scapy.layers.inet6")

SCAPY_AUTH = {"sha256": "SHA2-256-128", "sha1": "HMAC-SHA1-96", "sha384": "SHA2-384-192",
              "sha512": "SHA2-512-256", "md5": "HMAC-MD5-96"}  # fmt: skip


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[hosttopo.Hosts]:
    why = topo.missing()
    if why:
        pytest.skip(why)
    with hosttopo.hosts(tmp_path_factory.mktemp("ah")) as h:
        h.apply("a", h.write_hosts("a", proto="ah", ipv6=True))
        h.apply("b", h.write_hosts("b", proto="ah", ipv6=True))
        for side in ("a", "b"):
            h.env[keylog.ENV] = str(h.workdir / f"keys-{side}.jsonl")
            h.start_engine(side)
        h.env.pop(keylog.ENV)
        yield h


def oracle(h: hosttopo.Hosts) -> dict[int, Any]:
    """scapy SAs by SPI, from the client's key log (it holds both directions)."""
    sas = {}
    for line in (h.workdir / "keys-a.jsonl").read_text().splitlines():
        k = json.loads(line)
        assert k["protocol"] == "ah" and k["mode"] == "transport" and k["cipher"] == "null"
        sas[k["spi"]] = ipsec.SecurityAssociation(
            ipsec.AH, spi=k["spi"], auth_algo=SCAPY_AUTH[k["integrity"]],
            auth_key=bytes.fromhex(k["integ_key"]),
        )  # fmt: skip
    return sas


def verify_all(h: hosttopo.Hosts, frames: list[Frame]) -> int:
    """Check every AH frame's ICV with scapy; returns how many were checked."""
    sas = oracle(h)
    n = 0
    for f in frames:
        if f.proto != 51:
            continue
        pkt = inet.IP(f.data) if f.version == 4 else inet6.IPv6(f.data)
        spi = pkt[ipsec.AH].spi
        assert spi in sas, f"AH with an SPI no SA has: {spi:#x}"
        clear = sas[spi].decrypt(pkt)  # raises IPSecIntegrityError on a bad ICV
        assert ipsec.AH not in clear
        n += 1
    return n


def run_flow(h: hosttopo.Hosts, tmp_path: Path, dst: str, version: int) -> None:
    marker = os.urandom(32)
    payload = os.urandom(3000) + marker + os.urandom(3000)
    pcap = tmp_path / f"ah{version}.pcap"
    with capture(h, "r", "fl0", pcap):
        assert tcp_transfer(h, "ga", "gb", dst, payload, port=139) == payload, h.log("b")
    frames = [f for f in read_pcap(pcap) if f.version == version]
    assert marker in pcap.read_bytes()  # AH authenticates only: the payload is in clear
    assert [f for f in frames if f.proto == 50] == []
    assert to_port(frames, 6, 139) == []  # no bare TCP: every segment carries AH
    checked = verify_all(h, frames)
    assert checked >= 6000 // 1400 + 3, checked
    # One bit changed in the TCP payload of a captured packet: scapy refuses it.
    victim = next(f for f in frames if f.proto == 51 and len(f.data) > 200)
    data = bytearray(victim.data)
    data[-1] ^= 1
    pkt = inet.IP(bytes(data)) if version == 4 else inet6.IPv6(bytes(data))
    with pytest.raises(ipsec.IPSecIntegrityError):
        oracle(h)[pkt[ipsec.AH].spi].decrypt(pkt)


def test_ah_ipv4_on_the_wire_icv_checked_by_scapy(pair: hosttopo.Hosts, tmp_path: Path) -> None:
    run_flow(pair, tmp_path, hosttopo.FILER, 4)
    text = pair.ipsec("a", "sa", "show").stdout
    assert text.count("ah/M/") == 2, text


def test_ah_ipv6_on_the_wire_icv_checked_by_scapy(pair: hosttopo.Hosts, tmp_path: Path) -> None:
    run_flow(pair, tmp_path, hosttopo.FILER6, 6)
    ah = [sa for sa in mature(pair, "b").values() if sa["protocol"] == "ah"]
    assert {sa["policy"] for sa in ah} == {"cifs", "cifs6"}
    assert "AH transport" in pair.log("b")


RAW6_SEND = """
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
s.setsockopt(socket.SOL_SOCKET, 36, 0x4500)  # SO_MARK: around the engine's rule
s.sendto(bytes.fromhex(sys.argv[2]), (sys.argv[1], 0))
"""


def test_ah_ipv6_after_a_hop_by_hop_header(pair: hosttopo.Hosts) -> None:
    """The ICV covers IPv6 extension headers before AH, which a raw IPv6 socket never
    shows: the filer reads inbound IPv6 AH from a packet socket.  scapy signs a UDP
    datagram to port 139 behind a Hop-by-Hop header with the client's outbound SA."""
    out = next(
        json.loads(line)
        for line in (pair.workdir / "keys-a.jsonl").read_text().splitlines()
        if json.loads(line)["src"] == hosttopo.CLIENT6
    )
    sa = ipsec.SecurityAssociation(
        ipsec.AH, spi=out["spi"], seq_num=1 << 20, auth_algo=SCAPY_AUTH[out["integrity"]],
        auth_key=bytes.fromhex(out["integ_key"]),
    )  # fmt: skip
    marker = os.urandom(32)
    clear = (
        inet6.IPv6(src=hosttopo.CLIENT6, dst=hosttopo.FILER6)
        / inet6.IPv6ExtHdrHopByHop(options=[inet6.PadN(optdata=b"\x00" * 4)])
        / inet.UDP(sport=40139, dport=139)
        / marker
    )
    signed = bytes(sa.encrypt(inet6.IPv6(bytes(clear))))
    assert signed[6] == 0 and signed[40] == 51  # Hop-by-Hop, then AH
    bad = bytearray(signed)
    bad[-1] ^= 1
    for packet, expect in ((bytes(bad), b""), (signed, marker)):
        server = pair.popen("gb", sys.executable, "-c", UDP_SERVER, hosttopo.FILER6, "139", "2")
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        pair.run("ga", sys.executable, "-c", RAW6_SEND, hosttopo.FILER6, packet.hex())
        got, _ = server.communicate(timeout=10)
        assert got.strip() == (expect.hex() or "nothing"), pair.log("b")
