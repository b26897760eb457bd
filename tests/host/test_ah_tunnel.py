"""AH in tunnel mode between two engines (site to site, on the topology of
:mod:`tests.engine.topo`), IPv4 in IPv4 and IPv6 in IPv6: the outer headers are the
gateways', the inner packet follows AH in clear, and scapy verifies every AH packet's
ICV with the keys of the test-only key log."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ipsecconf.engine import keylog
from tests.engine import topo
from tests.engine.wiretools import capture, read_pcap, tcp_transfer

pytestmark = [pytest.mark.slow, pytest.mark.netns]
ipsec = pytest.importorskip("scapy.layers.ipsec")
inet = pytest.importorskip("scapy.layers.inet")
inet6 = pytest.importorskip("scapy.layers.inet6")

POLICY = """\
  - name: {name}
    source: {src}
    destination: {dst}
    direction: out
    mode: tunnel
    peer: {peer}
    tunnel:
      local: {local}
      remote: {remote}
    protocol: ah
    encryption: "null"
    authentication: sha256
"""
OUTER = {"a": ("203.0.113.1", "203.0.113.2"), "b": ("203.0.113.2", "203.0.113.1")}
INNER = {"a": ("198.51.100.0/25", "198.51.100.128/25"),
         "b": ("198.51.100.128/25", "198.51.100.0/25")}  # fmt: skip


def config(s: topo.Sites, side: str) -> Path:
    local, remote = OUTER[side]
    local6, remote6 = topo.V6_OUTER[side]
    src, dst = INNER[side]
    src6, dst6 = topo.V6_INNER[side]
    policies = POLICY.format(name="ah4", src=src, dst=dst, peer="gw", local=local, remote=remote)
    policies += POLICY.format(
        name="ah6", src=src6, dst=dst6, peer="gw6", local=local6, remote=remote6
    )
    peers = topo.PEER6_YAML.format(peer=remote6, local=local6)
    d = s.workdir / side
    d.mkdir(parents=True, exist_ok=True)
    (d / "psk.txt").write_text(topo.PSK + "\n")
    os.chmod(d / "psk.txt", 0o600)
    cfg = d / "ipsec.yaml"
    cfg.write_text(
        topo.SITE_YAML.format(
            peer_name="gw", peer_addr=remote, local_addr=local, policies=policies,
            liveness=30, extra_peers=peers,
        )
    )  # fmt: skip
    return cfg


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[topo.Sites]:
    why = topo.missing()
    if why:
        pytest.skip(why)
    with topo.sites(tmp_path_factory.mktemp("ahtun")) as s:
        for side in ("a", "b"):
            s.apply(side, config(s, side))
            s.env[keylog.ENV] = str(s.workdir / f"keys-{side}.jsonl")
            s.start_engine(side)
        s.env.pop(keylog.ENV)
        yield s


def oracle(s: topo.Sites) -> dict[int, Any]:
    out = {}
    for line in (s.workdir / "keys-a.jsonl").read_text().splitlines():
        k = json.loads(line)
        assert (k["protocol"], k["mode"], k["integrity"]) == ("ah", "tunnel", "sha256")
        out[k["spi"]] = ipsec.SecurityAssociation(
            ipsec.AH, spi=k["spi"], auth_algo="SHA2-256-128",
            auth_key=bytes.fromhex(k["integ_key"]),
            tunnel_header=inet.IP(src=k["src"], dst=k["dst"]) if ":" not in k["src"]
            else inet6.IPv6(src=k["src"], dst=k["dst"]),
        )  # fmt: skip
    return out


@pytest.mark.parametrize(
    ("version", "dst", "outer"),
    [(4, "198.51.100.130", {"203.0.113.1", "203.0.113.2"}),
     (6, "2001:db8:b::10", {"2001:db8:f::1", "2001:db8:f::2"})],
)  # fmt: skip
def test_ah_tunnel_icv_checked_by_scapy(
    sites: topo.Sites, tmp_path: Path, version: int, dst: str, outer: set[str]
) -> None:
    marker = os.urandom(32)
    payload = os.urandom(3000) + marker
    pcap = tmp_path / "wan.pcap"
    with capture(sites, "ga", "wan0", pcap):
        got = tcp_transfer(sites, "ha", "hb", dst, payload, port=5003 + version)
    assert got == payload, sites.log("a") + sites.log("b")
    assert marker in pcap.read_bytes()  # authenticated, not encrypted
    frames = [f for f in read_pcap(pcap) if f.version == version]
    ah = [f for f in frames if f.proto == 51]
    assert len(ah) >= 3000 // 1400 + 3
    assert [f for f in frames if f.proto == 6] == []  # no bare TCP: all inside AH
    sas = oracle(sites)
    for f in ah:
        pkt = inet.IP(f.data) if version == 4 else inet6.IPv6(f.data)
        assert {pkt.src, pkt.dst} == outer
        sas[pkt[ipsec.AH].spi].decrypt(pkt)  # raises IPSecIntegrityError on a bad ICV
        body = bytes(pkt[ipsec.AH].payload)  # the hosts' packet, whole, after AH
        inner = inet.IP(body) if version == 4 else inet6.IPv6(body)
        assert dst in (inner.src, inner.dst)
    assert "AH tunnel" in sites.log("a")
