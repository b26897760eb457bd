"""An ipsecconf engine at site A and strongSwan at site B (test helper).

:class:`tests.engine.topo.Sites` gives the four namespaces; the engine runs in ``ga``,
charon (:class:`tests.interop.charon.Charon`) in ``gb``.  This module writes the engine's
desired state for one tunnel to strongSwan, and checks the outer link's capture.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tests.engine import topo
from tests.engine.wiretools import Frame, capture, ping, read_pcap, tcp_transfer

HOST_A = ("198.51.100.10", "2001:db8:a::10")
HOST_B = ("198.51.100.130", "2001:db8:b::10")
INNER4 = bytes([198, 51, 100])
INNER6 = (bytes.fromhex("20010db8000a"), bytes.fromhex("20010db8000b"))

ENGINE_YAML = """\
peers:
  - name: ss
    address: {peer}
    local_address: {local}
    auth: psk
    psk: file:psk.txt
    liveness_interval: {liveness}
    udp_encapsulation: true
{ike}{peer_extra}policies:
  - name: site
    source: {src}
    destination: {dst}
    direction: out
    mode: tunnel
    peer: ss
    tunnel:
      local: {local}
      remote: {peer}
    encryption: {encryption}
    authentication: {authentication}
    start: {start}
    udp_encapsulation: true
"""


def engine_yaml(
    s: topo.Sites,
    *,
    encryption: str,
    authentication: str,
    ike: str | None = None,
    family: int = 4,
    start: str = "on_demand",
    liveness: int = 30,
    peer_extra: dict[str, int] | None = None,
    policy_extra: str = "",
) -> Path:
    """Site A's desired state: one tunnel to strongSwan at B (ESP-in-UDP, as
    strongSwan's user-space dataplane needs); ``peer_extra`` adds fields to the peer,
    ``policy_extra`` YAML lines to the policy."""
    i = 0 if family == 4 else 1
    local = ("203.0.113.1", "2001:db8:f::1")[i]
    peer = ("203.0.113.2", "2001:db8:f::2")[i]
    src = ("198.51.100.0/25", "2001:db8:a::/64")[i]
    dst = ("198.51.100.128/25", "2001:db8:b::/64")[i]
    d = s.workdir / "a"
    d.mkdir(parents=True, exist_ok=True)
    (d / "psk.txt").write_text(topo.PSK + "\n")
    os.chmod(d / "psk.txt", 0o600)
    cfg = d / "ipsec.yaml"
    cfg.write_text(
        ENGINE_YAML.format(
            peer=peer, local=local, liveness=liveness, src=src, dst=dst,
            encryption=encryption, authentication=authentication, start=start,
            ike=f"    ike_proposals: [{ike}]\n" if ike else "",
            peer_extra="".join(f"    {k}: {v}\n" for k, v in (peer_extra or {}).items()),
        ) + policy_extra
    )  # fmt: skip
    return cfg


@dataclass(frozen=True, slots=True)
class Traffic:
    """What crossed the outer link while traffic ran both ways."""

    pings: tuple[tuple[int, int], tuple[int, int]]
    """(sent, received) from A to B and from B to A."""
    esp_in_udp: int
    """ESP-in-UDP frames (UDP 4500, not IKE)."""
    clear_esp: int
    """Raw ESP frames (protocol 50): there must be none with strongSwan."""
    clear_inner: int
    """Frames whose addresses are the inner subnets'."""
    marker_seen: bool
    transfers_ok: bool


def esp_in_udp(frames: list[Frame]) -> list[Frame]:
    """UDP 4500 datagrams whose payload is ESP (no zero non-ESP marker)."""
    out = []
    for f in frames:
        if f.proto != 17:
            continue
        udp = f.data[(f.data[0] & 0xF) * 4 :] if f.version == 4 else f.data[40:]
        if udp[2:4] == b"\x11\x94" and len(udp) >= 12 and udp[8:12] != bytes(4):
            out.append(f)
    return out


def inner(frames: list[Frame]) -> list[Frame]:
    """Frames on the outer link that carry the inner subnets' addresses."""
    return [
        f
        for f in frames
        if (f.version == 4 and (f.src[:3] == INNER4 or f.dst[:3] == INNER4))
        or (f.version == 6 and (f.src[:6] in INNER6 or f.dst[:6] in INNER6))
    ]


def both_ways(
    s: topo.Sites, pcap: Path, family: int = 4, count: int = 4, port: int = 5101
) -> Traffic:
    """Pings both ways and a TCP transfer carrying a random 32-byte marker each way, while
    capturing the outer link at A."""
    i = 0 if family == 4 else 1
    marker = os.urandom(32)
    payload = os.urandom(3000) + marker + os.urandom(3000)
    with capture(s, "ga", "wan0", pcap):
        ab = ping(s, "ha", HOST_B[i], count, 0.1)
        ba = ping(s, "hb", HOST_A[i], count, 0.1)
        ok = tcp_transfer(s, "ha", "hb", HOST_B[i], payload, port=port) == payload
        ok = ok and tcp_transfer(s, "hb", "ha", HOST_A[i], payload, port=port + 1) == payload
    frames = read_pcap(pcap)
    return Traffic(
        pings=(ab, ba),
        esp_in_udp=len(esp_in_udp(frames)),
        clear_esp=sum(1 for f in frames if f.proto == 50),
        clear_inner=len(inner(frames)),
        marker_seen=marker in pcap.read_bytes(),
        transfers_ok=ok,
    )
