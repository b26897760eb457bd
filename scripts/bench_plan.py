"""Benchmark plan and apply through the CLI: 1,000 / 10,000 / 100,000 policies.

Run from the repository root::

    python scripts/bench_plan.py                 # 1000, 10000 and 100000 policies
    python scripts/bench_plan.py --sizes 1000 10000

For each size it writes a desired state (block style, 16 fields per policy, every policy
mirrored, a ``defaults`` section, a tenth of the policies from one Jinja2 loop), applies
it to a fresh store, changes 1% of the policies, and then times, each from a cold start
(a new ``python -m ipsecconf`` process): ``plan`` of the changed set, ``apply`` of it, and
a no-op ``plan`` afterwards.  Addresses are from 198.51.100.0/24 and 203.0.113.0/24 (plus
a 10.x space for the many distinct sources a benchmark needs).  Targets (DESIGN.md /
issue 3, 2-core machine): 10,000 policies plan in <= 3 s and apply in <= 5 s.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.gen_policies import write as generate  # noqa: E402


def timed(argv: list[str], expect: tuple[int, ...] = (0,)) -> tuple[float, float]:
    """Wall-clock and CPU (user + system) seconds of one cold-start CLI run.

    The CPU figure is what the run costs on a machine others share; wall-clock is what a
    person waits.
    """
    env = dict(os.environ, BENCH_PSK="bench-psk-value", PYTHONPATH=str(ROOT))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "ipsecconf", *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode not in expect:
        raise SystemExit(f"ipsecconf {' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr}")
    return elapsed, cpu


def run(count: int, work: Path) -> dict[str, tuple[float, float]]:
    base, changed = work / f"base-{count}", work / f"changed-{count}"
    generate(base, count)
    generate(changed, count, changed_every=100)  # 1% of the policies
    db = str(work / f"state-{count}.db")
    state = ["--state", db]
    out: dict[str, tuple[float, float]] = {}
    out["initial apply"] = timed([*state, "apply", str(base), "--auto-approve"])
    out["plan (1%)"] = timed([*state, "plan", str(changed), "--detailed-exitcode"], (2,))
    out["apply (1%)"] = timed([*state, "apply", str(changed), "--auto-approve"])
    out["no-op plan"] = timed([*state, "plan", str(changed), "--detailed-exitcode"], (0,))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    args = parser.parse_args()
    cols = ("initial apply", "plan (1%)", "apply (1%)", "no-op plan")
    print(f"{'policies':>9} {'SPD rows':>9} " + " ".join(f"{c:>18}" for c in cols))
    with tempfile.TemporaryDirectory(prefix="ipsecconf-bench-") as tmp:
        for count in args.sizes:
            r = run(count, Path(tmp))
            cells = " ".join(f"{r[c][0]:>7.2f}s ({r[c][1]:>5.2f}s)" for c in cols)
            print(f"{count:>9} {2 * count:>9} {cells}", flush=True)
    print("Each figure: wall-clock seconds of one cold-start `python -m ipsecconf` run")
    print("(imports included), and in brackets its CPU seconds (user + system).")


if __name__ == "__main__":
    main()
