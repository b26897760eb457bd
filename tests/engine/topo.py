"""Two sites behind two ipsecconf engines, built from network namespaces (test helper).

::

    hostA 198.51.100.10/25 -- gwA 198.51.100.1/25 | 203.0.113.1/24 == 203.0.113.2/24 | gwB
    gwB 198.51.100.129/25 -- hostB 198.51.100.130/25

IPv6 alongside: 2001:db8:a::/64 behind A, 2001:db8:b::/64 behind B, outer 2001:db8:f::/64.
Only the RFC 5737 / RFC 3849 ranges DESIGN.md allows, only inside namespaces named with
this process's pid, deleted by name in :meth:`Sites.close`; every process started here is
stopped by its own pid; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
PSK = "engine-test-psk-0123456789abcdef"

SITE_YAML = """\
peers:
  - name: {peer_name}
    address: {peer_addr}
    local_address: {local_addr}
    auth: psk
    psk: file:psk.txt
    liveness_interval: {liveness}
{extra_peers}policies:
{policies}
"""

PEER6_YAML = """\
  - name: gw6
    address: {peer}
    local_address: {local}
    auth: psk
    psk: file:psk.txt
"""
V6_OUTER = {"a": ("2001:db8:f::1", "2001:db8:f::2"), "b": ("2001:db8:f::2", "2001:db8:f::1")}
V6_INNER = {
    "a": ("2001:db8:a::/64", "2001:db8:b::/64"),
    "b": ("2001:db8:b::/64", "2001:db8:a::/64"),
}

POLICY_YAML = """\
  - name: {name}
    source: {src}
    destination: {dst}
    direction: out
    mode: tunnel
    peer: {peer_name}
    tunnel:
      local: {local_addr}
      remote: {peer_addr}
    encryption: {encryption}
    authentication: {authentication}
    start: {start}
    udp_encapsulation: {udp}
"""


def missing() -> str | None:
    """Why the namespace tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, TUN, raw sockets)"
    for tool in ("ip", "nft", "tcpdump", "ping"):
        if shutil.which(tool) is None:
            return f"needs {tool} (scripts/install-test-deps.sh)"
    if not os.path.exists("/dev/net/tun"):
        return "needs /dev/net/tun"
    return None


def sh(*args: str, check: bool = True, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    """Run a command (bounded)."""
    return subprocess.run(args, capture_output=True, text=True, check=check, timeout=timeout)


class Sites:
    """The four namespaces and the two engines."""

    def __init__(self, workdir: Path) -> None:
        tag = f"{os.getpid() % 100000}"
        self.ns = {k: f"ipc{k}{tag}" for k in ("ha", "ga", "gb", "hb")}
        self.workdir = workdir
        self.engines: dict[str, subprocess.Popen[str]] = {}
        self.procs: list[subprocess.Popen[str]] = []
        self.env = {**os.environ, "PYTHONPATH": str(ROOT)}

    # -- namespaces --------------------------------------------------------------
    def build(self) -> None:
        ns = self.ns
        for name in ns.values():
            sh("ip", "netns", "add", name)
        links = [("ha", "ga", "a-lan"), ("ga", "gb", "wan"), ("gb", "hb", "b-lan")]
        for left, right, tag in links:
            sh("ip", "link", "add", f"{tag}0", "netns", ns[left], "type", "veth",
               "peer", "name", f"{tag}1", "netns", ns[right])  # fmt: skip
        addrs = {
            ("ha", "a-lan0"): ["198.51.100.10/25", "2001:db8:a::10/64"],
            ("ga", "a-lan1"): ["198.51.100.1/25", "2001:db8:a::1/64"],
            ("ga", "wan0"): ["203.0.113.1/24", "2001:db8:f::1/64"],
            ("gb", "wan1"): ["203.0.113.2/24", "2001:db8:f::2/64"],
            ("gb", "b-lan0"): ["198.51.100.129/25", "2001:db8:b::1/64"],
            ("hb", "b-lan1"): ["198.51.100.130/25", "2001:db8:b::10/64"],
        }
        for (n, dev), items in addrs.items():
            for a in items:
                self.ip(n, "addr", "add", a, "dev", dev, "nodad")
            self.ip(n, "link", "set", dev, "up")
        for n in ns:
            self.ip(n, "link", "set", "lo", "up")
        self.ip("ha", "route", "add", "default", "via", "198.51.100.1")
        self.ip("ha", "-6", "route", "add", "default", "via", "2001:db8:a::1")
        self.ip("hb", "route", "add", "default", "via", "198.51.100.129")
        self.ip("hb", "-6", "route", "add", "default", "via", "2001:db8:b::1")
        # The gateways route the other site over the link, as real ones would by default;
        # the engines steer protected traffic into their TUN before these routes apply.
        self.ip("ga", "route", "add", "198.51.100.128/25", "via", "203.0.113.2")
        self.ip("gb", "route", "add", "198.51.100.0/25", "via", "203.0.113.1")
        self.ip("ga", "-6", "route", "add", "2001:db8:b::/64", "via", "2001:db8:f::2")
        self.ip("gb", "-6", "route", "add", "2001:db8:a::/64", "via", "2001:db8:f::1")
        for g in ("ga", "gb"):
            self.run(g, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            self.run(g, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")

    def ip(self, ns: str, *args: str) -> None:
        sh("ip", "-n", self.ns[ns], *args)

    def run(self, ns: str, *args: str, check: bool = True, timeout: float = 30):  # type: ignore[no-untyped-def]
        return sh("ip", "netns", "exec", self.ns[ns], *args, check=check, timeout=timeout)

    def popen(self, ns: str, *args: str, **kw) -> subprocess.Popen[str]:  # type: ignore[no-untyped-def]
        p = subprocess.Popen(
            ["ip", "netns", "exec", self.ns[ns], *args],
            stdout=kw.pop("stdout", subprocess.PIPE),
            stderr=kw.pop("stderr", subprocess.PIPE),
            text=True,
            env=self.env,
            **kw,
        )
        self.procs.append(p)
        return p

    # -- configuration and engines ------------------------------------------------------
    def engine_ns(self, side: str) -> str:
        """The namespace key where side ``side``'s engine runs."""
        return "ga" if side == "a" else "gb"

    def state(self, side: str) -> str:
        return str(self.workdir / side / "state.db")

    def write_config(
        self,
        side: str,
        pairs: list[tuple[str, str, str]],
        encryption: dict[str, tuple[str, str]] | None = None,
        start: str = "on_demand",
        liveness: int = 5,
        ipv6: bool = False,
        extra_policies: str = "",
        udp: bool = False,
    ) -> Path:
        """Site ``side`` ('a' or 'b') protecting (name, local subnet, remote subnet) pairs;
        with ``ipv6`` also a pair ``six`` between the IPv6 subnets over an IPv6 tunnel."""
        local, peer = (
            ("203.0.113.1", "203.0.113.2") if side == "a" else ("203.0.113.2", "203.0.113.1")
        )
        d = self.workdir / side
        d.mkdir(parents=True, exist_ok=True)
        (d / "psk.txt").write_text(PSK + "\n")
        os.chmod(d / "psk.txt", 0o600)
        enc = encryption or {}
        policies = "".join(
            POLICY_YAML.format(
                name=name,
                src=src,
                dst=dst,
                peer_name="gw",
                local_addr=local,
                peer_addr=peer,
                encryption=enc.get(name, ("aes128gcm", "none"))[0],
                authentication=enc.get(name, ("aes128gcm", "none"))[1],
                start=start,
                udp=str(udp).lower(),
            )
            for name, src, dst in pairs
        )
        extra = ""
        if ipv6:
            local6, peer6 = V6_OUTER[side]
            extra = PEER6_YAML.format(peer=peer6, local=local6)
            src6, dst6 = V6_INNER[side]
            policies += POLICY_YAML.format(
                name="six", src=src6, dst=dst6, peer_name="gw6", local_addr=local6,
                peer_addr=peer6, encryption="aes128gcm", authentication="none", start=start,
                udp=str(udp).lower(),
            )  # fmt: skip
        policies += extra_policies
        cfg = d / "ipsec.yaml"
        cfg.write_text(
            SITE_YAML.format(
                peer_name="gw", peer_addr=peer, local_addr=local, policies=policies,
                liveness=liveness, extra_peers=extra,
            )
        )  # fmt: skip
        return cfg

    def cli(
        self, side: str, *args: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """``python -m ipsecconf`` inside the side's gateway namespace."""
        ns = self.engine_ns(side)
        res = subprocess.run(
            ["ip", "netns", "exec", self.ns[ns], PYTHON, "-m", "ipsecconf", *args],
            capture_output=True, text=True, timeout=timeout, env=self.env, check=False,
        )  # fmt: skip
        if check and res.returncode != 0:
            raise AssertionError(f"ipsecconf {' '.join(args)}: {res.returncode}\n{res.stderr}")
        return res

    def ipsec(self, side: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        ns = self.engine_ns(side)
        res = subprocess.run(
            ["ip", "netns", "exec", self.ns[ns], PYTHON, "-m", "ipsecconf.cli.ipsec_main",
             "--state", self.state(side), *args],
            capture_output=True, text=True, timeout=timeout, env=self.env, check=False,
        )  # fmt: skip
        if res.returncode != 0:
            raise AssertionError(f"ipsec {' '.join(args)}: {res.returncode}\n{res.stderr}")
        return res

    def apply(self, side: str, cfg: Path) -> subprocess.CompletedProcess[str]:
        return self.cli(side, "apply", "--state", self.state(side), "--auto-approve", str(cfg))

    def start_engine(self, side: str, *extra: str, wait: float = 15.0) -> subprocess.Popen[str]:
        ns = self.engine_ns(side)
        log = open(self.workdir / f"engine-{side}.log", "a")  # noqa: SIM115
        p = self.popen(
            ns, PYTHON, "-m", "ipsecconf", "engine", "run", "--state", self.state(side), *extra,
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.engines[side] = p
        sock = self.state(side) + ".sock"
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if p.poll() is not None:
                raise AssertionError(f"engine {side} exited: {self.log(side)}")
            if (
                os.path.exists(sock)
                and self.cli(
                    side, "show", "stats", "--state", self.state(side), check=False
                ).returncode
                == 0
            ):
                return p
            time.sleep(0.1)
        raise AssertionError(f"engine {side} did not start: {self.log(side)}")

    def log(self, side: str) -> str:
        path = self.workdir / f"engine-{side}.log"
        return path.read_text() if path.exists() else ""

    def stop_engine(self, side: str, sig: int = signal.SIGTERM, wait: float = 15.0) -> int | None:
        p = self.engines.pop(side, None)
        if p is None or p.poll() is not None:
            return None if p is None else p.returncode
        # ip netns exec execs the command: the pid is the engine's own.
        p.send_signal(sig)
        try:
            return p.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            p.kill()
            return p.wait(timeout=5)

    def close(self) -> None:
        for side in list(self.engines):
            with contextlib.suppress(Exception):
                self.stop_engine(side)
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(timeout=5)
        for name in self.ns.values():
            sh("ip", "netns", "del", name, check=False)


@contextlib.contextmanager
def sites(workdir: Path) -> Iterator[Sites]:
    """Built sites, always torn down."""
    s = Sites(workdir)
    try:
        s.build()
        yield s
    finally:
        s.close()
