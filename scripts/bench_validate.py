"""Benchmark: ``ipsecconf validate`` from a cold start on 1,000 / 10,000 / 100,000 policies.

Run: ``.venv/bin/python scripts/bench_validate.py [--sizes 1000,10000,100000] [--runs 3]``.
Each size is generated once (scripts/gen_policies.py: block style, 17 fields per policy,
mirrored, with defaults and one template loop), then validated in a fresh process so
that imports count, every semantic check on (shadowing included).  The best of the runs
is reported, with the time per policy, so that growth can be read off directly.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from scripts.gen_policies import write  # noqa: E402


def measure(directory: str, runs: int) -> float:
    env = {**os.environ, "BENCH_PSK": "benchmark-psk", "PYTHONPATH": os.path.dirname(HERE)}
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "ipsecconf", "validate", directory],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"validate failed on {directory}:\n{proc.stderr[-2000:]}")
        best = min(best, elapsed)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"{'policies':>9} {'seconds':>8} {'us/policy':>10}  (best of {args.runs}, cold start)")
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            directory = os.path.join(tmp, str(n))
            write(directory, n)
            seconds = measure(directory, args.runs if n < 100_000 else 1)
            print(f"{n:>9} {seconds:>8.2f} {seconds / n * 1e6:>10.1f}", flush=True)


if __name__ == "__main__":
    main()
