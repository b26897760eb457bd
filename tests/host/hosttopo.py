"""A client and a filer, each with its own ipsecconf engine, on two links joined by a
router, built from network namespaces (test helper for the seed's host-to-host case).

::

    client 198.51.100.21/24 -- 198.51.100.1 | router | 203.0.113.1 -- 203.0.113.10/24 filer
    client 2001:db8:1::21/64 -- 2001:db8:1::1 | router | 2001:db8:2::1 -- 2001:db8:2::10 filer

The router's link towards the filer can be given a smaller MTU (the path MTU of the MTU
test).  Reuses :class:`tests.engine.topo.Sites` for engines and commands: side ``a`` is
the client (namespace key ``ga``), side ``b`` the filer (``gb``), ``r`` the router.  Only
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

    def __init__(self, workdir: Path, wan_mtu: int = 1500) -> None:
        super().__init__(workdir)
        tag = f"{os.getpid() % 100000}"
        self.ns = {k: f"ipch{k}{tag}" for k in ("ga", "r", "gb")}
        self.wan_mtu = wan_mtu

    def build(self) -> None:
        for name in self.ns.values():
            topo.sh("ip", "netns", "add", name)
        for left, right, tag in (("ga", "r", "cl"), ("r", "gb", "fl")):
            topo.sh("ip", "link", "add", f"{tag}0", "netns", self.ns[left], "type", "veth",
                    "peer", "name", f"{tag}1", "netns", self.ns[right])  # fmt: skip
        addrs = {
            ("ga", "cl0"): [f"{CLIENT}/24", f"{CLIENT6}/64"],
            ("r", "cl1"): ["198.51.100.1/24", "2001:db8:1::1/64"],
            ("r", "fl0"): ["203.0.113.1/24", "2001:db8:2::1/64"],
            ("gb", "fl1"): [f"{FILER}/24", f"{FILER6}/64"],
        }
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
        self.ip("ga", "route", "add", "default", "via", "198.51.100.1")
        self.ip("ga", "-6", "route", "add", "default", "via", "2001:db8:1::1")
        self.ip("gb", "route", "add", "default", "via", "203.0.113.1")
        self.ip("gb", "-6", "route", "add", "default", "via", "2001:db8:2::1")
        self.run("r", "sysctl", "-qw", "net.ipv4.ip_forward=1")
        self.run("r", "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")

    def write_hosts(
        self, side: str, proto: str = "esp", level: str = "restrict", ipv6: bool = False,
        enc: str = "aes128gcm", auth: str = "none",
    ) -> Path:  # fmt: skip
        """The CIFS policy as the seed wrote it, on the filer (``b``: clients' range in,
        port 139, mirrored, no peer) or its mirror on the client (``a``); keys from
        psk.txt by address."""
        d = self.workdir / side
        d.mkdir(parents=True, exist_ok=True)
        if proto == "ah":
            enc, auth = "null", (auth if auth != "none" else "sha256")
        fam = [("", CLIENT, FILER, "198.51.100.0/24", "203.0.113.0/24")]
        if ipv6:
            fam.append(("6", CLIENT6, FILER6, "2001:db8:1::/64", "2001:db8:2::/64"))
        keys, policies = [], []
        for suffix, client, filer, client_net, _filer_net in fam:
            if side == "b":
                keys.append(f"{client} {PSK}")
                src, dst, direction = client_net, f"{filer}/{128 if suffix else 32}[139]", "in"
            else:
                keys.append(f"{filer} {PSK}")
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
def hosts(workdir: Path, wan_mtu: int = 1500) -> Iterator[Hosts]:
    """Built hosts, always torn down."""
    h = Hosts(workdir, wan_mtu)
    try:
        h.build()
        yield h
    finally:
        h.close()
