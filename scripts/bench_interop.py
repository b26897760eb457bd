"""Benchmark the engine's dataplane against strongSwan's user-space one: iperf3 TCP
throughput through the tunnel for a pair of ipsecconf engines and for a pair of
strongSwan 5.9.8 peers (charon with kernel-libipsec), on the same namespaces, in one run.

Run as root from the repository root (it builds its own network namespaces with the
RFC 5737 ranges only, and deletes them)::

    sudo PYTHONPATH=. .venv/bin/python scripts/bench_interop.py [--seconds 10] [--rounds 1]

Same settings for both: ESP-in-UDP (strongSwan's user-space dataplane speaks nothing
else), tunnel mode between 198.51.100.0/25 and 198.51.100.128/25, veth MTU 1500, TUN MTU
1400 (both daemons' default), one TCP stream ``iperf3 -c HOST -t SECONDS -O 1 -J``.
Suites: AES-CBC-128 + HMAC-SHA2-256-128 and AES-GCM-128 (IKE: aes128-sha256-modp2048 and
aes128gcm16-prfsha256-ecp256 on both).  With ``--rounds N`` the two are measured
alternately N times and the medians compared, so that the machine's load moves both
alike; the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.engine import topo
from tests.interop.charon import Charon, conn

# label: (engine encryption, engine authentication, IKE proposal, strongSwan ESP)
SUITES = {
    "AES-CBC-128 + HMAC-SHA2-256-128": ("aes128", "sha256", "aes128-sha256-modp2048",
                                        "aes128-sha256"),
    "AES-GCM-128": ("aes128gcm", "none", "aes128gcm16-prfsha256-ecp256", "aes128gcm16"),
}  # fmt: skip
PAIRS = {"a": [("site", "198.51.100.0/25", "198.51.100.128/25")],
         "b": [("site", "198.51.100.128/25", "198.51.100.0/25")]}  # fmt: skip
HOST_B = "198.51.100.130"


def iperf(s: topo.Sites, seconds: int) -> float:
    """Mbit/s received by iperf3 through the tunnel, host A to host B."""
    server = s.popen("hb", "iperf3", "-s", "-1", "-B", HOST_B)
    time.sleep(0.5)
    try:
        res = s.run("ha", "iperf3", "-c", HOST_B, "-t", str(seconds), "-O", "1", "-J",
                    timeout=seconds + 30)  # fmt: skip
    finally:
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)
    data = json.loads(res.stdout)
    return float(data["end"]["sum_received"]["bits_per_second"]) / 1e6


def up(s: topo.Sites) -> None:
    """Wait (bounded) until a ping passes the tunnel."""
    for _ in range(20):
        if s.run("ha", "ping", "-c", "1", "-W", "1", HOST_B, check=False).returncode == 0:
            return
    raise RuntimeError("the tunnel did not come up")


def engines(s: topo.Sites, enc: str, auth: str, ike: str, seconds: int) -> float:
    """Throughput through a pair of ipsecconf engines."""
    for side in ("a", "b"):
        cfg = s.write_config(side, PAIRS[side], {"site": (enc, auth)}, udp=True)
        text = cfg.read_text().replace(
            "    liveness_interval:", f"    ike_proposals: [{ike}]\n    liveness_interval:"
        )
        cfg.write_text(text)
        s.apply(side, cfg)
    s.start_engine("b")
    s.start_engine("a")
    try:
        up(s)
        return iperf(s, seconds)
    finally:
        s.stop_engine("a")
        s.stop_engine("b")


def strongswan(s: topo.Sites, ike: str, esp: str, seconds: int) -> float:
    """Throughput through a pair of strongSwan peers."""
    peers = {ns: Charon(s, ns, s.workdir / f"ss-{ns}") for ns in ("ga", "gb")}
    try:
        for ns, c in peers.items():
            c.start()
            c.load(conn("gw", ns, ike=ike, esp=esp))
        peers["ga"].swanctl("--initiate", "--ike", "gw", "--child", "net", "--timeout", "15")
        mtu = s.run("ga", "ip", "-o", "link", "show", "ipsec0").stdout.split("mtu ")[1].split()[0]
        if mtu != "1400":
            raise RuntimeError(f"strongSwan's TUN has MTU {mtu}, not 1400")
        up(s)
        return iperf(s, seconds)
    finally:
        for c in peers.values():
            c.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=10, help="iperf3 duration (default 10)")
    ap.add_argument("--rounds", type=int, default=1, help="alternating rounds (default 1)")
    args = ap.parse_args()
    why = topo.missing()
    if why is None and not os.path.exists("/usr/lib/ipsec/charon"):
        why = "needs strongSwan (scripts/install-test-deps.sh)"
    if why:
        print(f"bench_interop: {why}", file=sys.stderr)
        return 1
    print(
        f"iperf3 -t {args.seconds} -O 1, one TCP stream, ESP-in-UDP, TUN MTU 1400, "
        f"veth MTU 1500, {os.cpu_count()} CPUs"
    )
    print(f"{'suite':34} {'ipsecconf':>10} {'strongSwan':>11} {'ratio':>6}  load average")
    for label, (enc, auth, ike, esp) in SUITES.items():
        ours: list[float] = []
        theirs: list[float] = []
        with tempfile.TemporaryDirectory(prefix="bench-interop") as tmp, topo.sites(Path(tmp)) as s:
            for _ in range(args.rounds):
                ours.append(engines(s, enc, auth, ike, args.seconds))
                theirs.append(strongswan(s, ike, esp, args.seconds))
        a, b = statistics.median(ours), statistics.median(theirs)
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"{label:34} {a:10.1f} {b:11.1f} {a / b:6.2f}  {load}", flush=True)
        if args.rounds > 1:
            print(f"{'':34} {'rounds (Mbit/s):':>22} {ours} {theirs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
