"""Benchmark two ipsecconf engines in tunnel mode: iperf3 TCP throughput through the tunnel
and the time to establish the IKE SA and its child SA.

Run as root from the repository root (it builds its own network namespaces with the
RFC 5737 ranges only, and deletes them)::

    sudo PYTHONPATH=. .venv/bin/python scripts/bench_tunnel.py [--seconds 10] [--samples 3]

Fixed settings, so figures compare across runs: veth MTU 1500, TUN MTU 1400, iperf3 one TCP
stream (``iperf3 -c HOST -t SECONDS -O 1 -J``), suites AES-CBC-128 + HMAC-SHA2-256-128 and
AES-GCM-128 (IKE: the default proposals).  Establishment time is measured in the
initiator's log, from its IKE_SA_INIT to the installed child SA (both exchanges, the DH and
the SA installation), over ``--samples`` fresh starts of both engines.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests.engine import topo

SUITES = {
    "aes128-sha256 (AES-CBC-128 + HMAC-SHA2-256-128)": ("aes128", "sha256"),
    "aes128gcm (AES-GCM-128)": ("aes128gcm", "none"),
}
PAIRS = {"a": [("site", "198.51.100.0/25", "198.51.100.128/25")],
         "b": [("site", "198.51.100.128/25", "198.51.100.0/25")]}  # fmt: skip


def _ts(line: dict[str, str]) -> float:
    return datetime.datetime.fromisoformat(line["ts"]).timestamp()


def establish_time(s: topo.Sites) -> float:
    """Seconds from IKE_SA_INIT to the installed child SA, from A's JSON log."""
    start = end = None
    for raw in s.log("a").splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if line["msg"].startswith("IKE_SA_INIT to"):
            start, end = _ts(line), None
        elif line["msg"].startswith("SA installed") and start is not None:
            end = _ts(line)
    if start is None or end is None:
        raise RuntimeError("no negotiation in the log")
    return end - start


def iperf(s: topo.Sites, seconds: int) -> float:
    """Mbit/s received by iperf3 through the tunnel."""
    server = s.popen("hb", "iperf3", "-s", "-1", "-B", "198.51.100.130")
    time.sleep(0.5)
    try:
        res = s.run("ha", "iperf3", "-c", "198.51.100.130", "-t", str(seconds), "-O", "1", "-J",
                    timeout=seconds + 30)  # fmt: skip
    finally:
        server.wait(timeout=10)
    data = json.loads(res.stdout)
    return float(data["end"]["sum_received"]["bits_per_second"]) / 1e6


def bench_suite(label: str, enc: str, auth: str, seconds: int, samples: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-tunnel") as tmp, topo.sites(Path(tmp)) as s:
        for side in ("a", "b"):
            s.apply(side, s.write_config(side, PAIRS[side], {"site": (enc, auth)}))
        times = []
        for _ in range(samples):
            s.start_engine("b", "--log-format", "json")
            s.start_engine("a", "--log-format", "json")
            s.run("ha", "ping", "-c", "1", "-W", "5", "198.51.100.130")
            times.append(establish_time(s))
            s.stop_engine("a")
            s.stop_engine("b")
        s.start_engine("b")
        s.start_engine("a")
        s.run("ha", "ping", "-c", "2", "-W", "5", "198.51.100.130")
        mbits = iperf(s, seconds)
    return {"mbit_s": mbits, "establish_ms": statistics.median(times) * 1000}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=10, help="iperf3 duration (default 10)")
    ap.add_argument("--samples", type=int, default=3, help="establishment samples (default 3)")
    args = ap.parse_args()
    why = topo.missing()
    if why:
        print(f"bench_tunnel: {why}", file=sys.stderr)
        return 1
    print(f"iperf3 -t {args.seconds} -O 1, one TCP stream, TUN MTU 1400, veth MTU 1500")
    print(f"{'suite':52} {'TCP Mbit/s':>11} {'IKE+CHILD SA ms':>16}")
    for label, (enc, auth) in SUITES.items():
        r = bench_suite(label, enc, auth, args.seconds, args.samples)
        print(f"{label:52} {r['mbit_s']:11.1f} {r['establish_ms']:16.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
