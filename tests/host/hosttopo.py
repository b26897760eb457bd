"""A client and a filer, each with its own ipsecconf engine, on two links joined by a
router, built from network namespaces (test helper for the seed's host-to-host case).

::

    client 198.51.100.21/24 --+
    client2 198.51.100.22/24 -+- 198.51.100.1 (bridge) | router | 203.0.113.1 -- 203.0.113.10 filer
    (IPv6: 2001:db8:1::21, ::22 and ::1 on the clients' side, 2001:db8:2::1 and ::10)

The router's link towards the filer can be given a smaller MTU (the path MTU of the MTU
test).  Reuses :class:`tests.engine.topo.Sites` for engines and commands: side ``a`` is
the client (namespace key ``ga``), side ``b`` the filer (``gb``), side ``c`` the second
client (``gc``, only with ``clients=2``), ``r`` the router.  Only
the RFC 5737 / RFC 3849 ranges, namespaces named with this process's pid and deleted by
name, every process stopped by its own pid.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from tests.engine import topo

CLIENT, FILER = "198.51.100.21", "203.0.113.10"
CLIENT6, FILER6 = "2001:db8:1::21", "2001:db8:2::10"
CLIENT2, CLIENT2_6 = "198.51.100.22", "2001:db8:1::22"
ADDRS = {"a": (CLIENT, CLIENT6), "c": (CLIENT2, CLIENT2_6)}
PSK = "host-test-psk-0123456789abcdef"

POLICY = """\
  - name: {name}
    source: {src}
    destination: {dst}
    direction: {direction}
    protocol: {proto}
    encryption: {enc}
    authentication: {auth}
    level: {level}
"""


class Hosts(topo.Sites):
    """Client, router and filer namespaces; engines on the client (a) and the filer (b)."""

    def __init__(self, workdir: Path, wan_mtu: int = 1500, clients: int = 1) -> None:
        super().__init__(workdir)
        tag = f"{os.getpid() % 100000}"
        keys = ("ga", "r", "gb", "gc")[: 3 + (clients > 1)]
        self.ns = {k: f"ipch{k}{tag}" for k in keys}
        self.wan_mtu = wan_mtu

    def engine_ns(self, side: str) -> str:
        return {"a": "ga", "b": "gb", "c": "gc"}[side]

    def build(self) -> None:
        for name in self.ns.values():
            topo.sh("ip", "netns", "add", name)
        links = [("ga", "r", "cl"), ("r", "gb", "fl")] + (
            [("gc", "r", "cc")] if "gc" in self.ns else []
        )
        for left, right, tag in links:
            topo.sh("ip", "link", "add", f"{tag}0", "netns", self.ns[left], "type", "veth",
                    "peer", "name", f"{tag}1", "netns", self.ns[right])  # fmt: skip
        # The clients share one LAN: a bridge in the router.
        self.ip("r", "link", "add", "br0", "type", "bridge")
        for dev in ("cl1", "cc1") if "gc" in self.ns else ("cl1",):
            self.ip("r", "link", "set", dev, "master", "br0")
            self.ip("r", "link", "set", dev, "up")
        addrs = {
            ("ga", "cl0"): [f"{CLIENT}/24", f"{CLIENT6}/64"],
            ("r", "br0"): ["198.51.100.1/24", "2001:db8:1::1/64"],
            ("r", "fl0"): ["203.0.113.1/24", "2001:db8:2::1/64"],
            ("gb", "fl1"): [f"{FILER}/24", f"{FILER6}/64"],
        }
        if "gc" in self.ns:
            addrs[("gc", "cc0")] = [f"{CLIENT2}/24", f"{CLIENT2_6}/64"]
        for (n, dev), items in addrs.items():
            for a in items:
                self.ip(n, "addr", "add", a, "dev", dev, "nodad")
            self.ip(n, "link", "set", dev, "up")
        for n in self.ns:
            self.ip(n, "link", "set", "lo", "up")
        if self.wan_mtu != 1500:
            # The router's link to the filer: the path MTU between the two engines.
            self.ip("r", "link", "set", "fl0", "mtu", str(self.wan_mtu))
            self.ip("gb", "link", "set", "fl1", "mtu", str(self.wan_mtu))
        for c in ("ga", "gc") if "gc" in self.ns else ("ga",):
            self.ip(c, "route", "add", "default", "via", "198.51.100.1")
            self.ip(c, "-6", "route", "add", "default", "via", "2001:db8:1::1")
        self.ip("gb", "route", "add", "default", "via", "203.0.113.1")
        self.ip("gb", "-6", "route", "add", "default", "via", "2001:db8:2::1")
        self.run("r", "sysctl", "-qw", "net.ipv4.ip_forward=1")
        self.run("r", "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")

    def write_hosts(
        self, side: str, proto: str = "esp", level: str = "restrict", ipv6: bool = False,
        enc: str = "aes128gcm", auth: str = "none",
    ) -> Path:  # fmt: skip
        """The CIFS policy as the seed wrote it, on the filer (``b``: clients' range in,
        port 139, mirrored, no peer) or its mirror on a client (``a``, ``c``); keys from
        psk.txt by address."""
        d = self.workdir / side
        d.mkdir(parents=True, exist_ok=True)
        if proto == "ah":
            enc, auth = "null", (auth if auth != "none" else "sha256")
        client4, client6 = ADDRS.get(side, ADDRS["a"])
        fam = [("", client4, FILER, "198.51.100.0/24")]
        if ipv6:
            fam.append(("6", client6, FILER6, "2001:db8:1::/64"))
        keys, policies = [], []
        for suffix, client, filer, client_net in fam:
            if side == "b":
                # One key per client address (the seed's psk.txt), looked up by address.
                keys += [
                    f"{pair[bool(suffix)]} {PSK}-{pair[bool(suffix)]}" for pair in ADDRS.values()
                ]
                src, dst, direction = client_net, f"{filer}/{128 if suffix else 32}[139]", "in"
            else:
                keys.append(f"{filer} {PSK}-{client}")  # each client its own key
                src, dst = (
                    f"{client}/{128 if suffix else 32}",
                    f"{filer}/{128 if suffix else 32}[139]",
                )
                direction = "out"
            policies.append(
                POLICY.format(name=f"cifs{suffix}", src=src, dst=dst, direction=direction,
                              proto=proto, enc=enc, auth=auth, level=level)
            )  # fmt: skip
        (d / "psk.txt").write_text("\n".join(keys) + "\n")
        os.chmod(d / "psk.txt", 0o600)
        cfg = d / "ipsec.yaml"
        cfg.write_text("psk_file: psk.txt\npolicies:\n" + "".join(policies))
        return cfg


@contextlib.contextmanager
def hosts(workdir: Path, wan_mtu: int = 1500, clients: int = 1) -> Iterator[Hosts]:
    """Built hosts, always torn down."""
    h = Hosts(workdir, wan_mtu, clients)
    try:
        h.build()
        yield h
    finally:
        h.close()
