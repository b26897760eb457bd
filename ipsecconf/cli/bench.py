"""``ipsecconf bench``: the dataplane's speed on this machine, like ``openssl speed``.

``bench esp`` measures encapsulation (single packets and 32-packet bursts) and
decapsulation per suite and inner packet size (64, 512, 1400 bytes), and in the same run
the bare ``cryptography`` AES-GCM call rate on the same plaintext, with the ratio;
``--udp`` carries ESP in UDP (RFC 3948), as the engine does behind a NAT.
``bench spd`` measures the SPD lookup over 100,000 distinct random flows (hits and misses)
with 100 and with 100,000 policies, and the ratio.  ``bench ike`` measures IKE SA + first
CHILD SA establishments per second on one core (both peers in this process, in memory)
for x25519 + PSK, ecp256 + RSA-2048 certificates and modp2048 + PSK, and in the same run
the crypto-only bound of one establishment (ipsecconf.ike.benchwork), with the ratio.
Only this module prints; the lower layers are called as they are in the engine, with
caches that would flatter the figures turned off (the outer-header cache, no flow cache
exists).  Figures on a shared machine are noisy: each is the best of three runs (ESP: of
a hundred shorter ones, in CPU time of the benchmarking thread).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import random
import struct
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from ipsecconf.esp import api, ip
from ipsecconf.esp.spd import Action, Direction, Policy, PolicyTable
from ipsecconf.model.algorithms import CIPHERS, INTEGRITIES
from ipsecconf.model.selectors import ANY_PORT, Endpoint, Selector

SIZES = (64, 512, 1400)
ESP_SUITES: tuple[tuple[str, str], ...] = (
    ("aes128gcm", "none"),
    ("aes256gcm", "none"),
    ("chacha20poly1305", "none"),
    ("aes128", "sha256"),
    ("aes256", "sha512"),
    ("3des", "sha1"),
    ("null", "sha256"),
)
BURST = 32
ESP_ROUNDS = 100


def register(subparsers: Any) -> None:
    """Add ``bench`` to the ``ipsecconf`` sub-command parsers."""
    p = subparsers.add_parser(
        "bench",
        help="measure speed (ESP suites, SPD lookup, IKE handshakes)",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument("what", nargs="?", choices=("all", "esp", "spd", "ike"), default="all")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("--seconds", type=float, default=0.3, help="time per measurement (default 0.3)")
    p.add_argument(
        "--size", type=int, action="append", help="inner packet size (repeatable; 64, 512, 1400)"
    )
    p.add_argument(
        "--suite",
        action="append",
        help="ESP suite as cipher or cipher/integrity, e.g. aes128gcm, aes128/sha256 (repeatable)",
    )
    p.add_argument("--udp", action="store_true", help="ESP in UDP 4500 (NAT traversal, RFC 3948)")
    p.set_defaults(func=run)


def _rates(
    fns: list[tuple[Callable[[], object], int]],
    seconds: float,
    rounds: int = 3,
    clock: Callable[[], float] = time.perf_counter,
) -> list[float]:
    """Operations per second of each ``(fn, operations per call)``.  The functions are
    timed in turn, ``rounds`` rounds sharing the budget, best round kept: on a shared
    machine, interleaving makes the ratios between them fairer than timing one after the
    other.  ``clock`` is wall time, or the thread's CPU time where that is fairer."""
    reps = []
    for fn, _ in fns:  # calibrate: calls that take about 1/rounds of the budget
        n = 1
        while True:
            t0 = clock()
            for _ in range(n):
                fn()
            dt = clock() - t0
            if dt >= seconds / 30 or n >= 1 << 24:
                break
            n *= 4
        reps.append(max(1, int(n * seconds / rounds / max(dt, 1e-9))))
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for k, (fn, _) in enumerate(fns):
            t0 = clock()
            for _ in range(reps[k]):
                fn()
            best[k] = min(best[k], clock() - t0)
    return [reps[k] * per / best[k] for k, (_, per) in enumerate(fns)]


def _packet(size: int) -> bytes:
    payload = os.urandom(size - 28)
    l4 = struct.pack("!HHHH", 40000, 5001, 8 + len(payload), 0) + payload
    src, dst = (
        ipaddress.ip_address("198.51.100.7").packed,
        ipaddress.ip_address("203.0.113.9").packed,
    )
    return ip.ipv4_header(src, dst, 17, len(l4), df=True) + l4


def bench_esp(
    seconds: float,
    sizes: tuple[int, ...] = SIZES,
    suites: tuple[tuple[str, str], ...] = ESP_SUITES,
    udp: bool = False,
) -> dict[str, Any]:
    """Encapsulation/decapsulation rates per suite and size, and the bare AEAD rate;
    ``udp`` carries ESP in UDP (RFC 3948)."""
    from ipsecconf.crypto.transforms import EspAead  # the bare library call, same key size

    rows: list[dict[str, Any]] = []
    bare: dict[int, float] = {}
    for size in sizes:
        pkt = _packet(size)
        aead = EspAead(CIPHERS["aes128gcm"], os.urandom(20))
        plain = pkt + b"\x01\x02\x02\x04"[: 2 + (-(size + 2) % 4)]
        nonce, aad, enc = os.urandom(12), os.urandom(8), aead.encrypt_nonce
        bare_call = partial(enc, nonce, plain, aad)
        for cipher_word, integ_word in suites:
            c, i = CIPHERS[cipher_word], INTEGRITIES[integ_word]
            keys = dict(enc_key=os.urandom(c.key_bytes), integ_key=os.urandom(i.key_bytes))
            common = dict(
                spi=0x1001,
                src="198.51.100.1",
                dst="203.0.113.1",
                encryption=cipher_word,
                authentication=integ_word,
                rng=os.urandom,
                udp_encap=udp,
                **keys,
            )
            out = api.make_sa(direction="out", **common)  # type: ignore[arg-type]
            out.outer_header.caching = False  # "caches off"
            burst_pkts = [pkt] * BURST
            inn = api.make_sa(direction="in", replay_window=0, manual=True, **common)  # type: ignore[arg-type]
            wire = out.encapsulate(pkt, 1.0)
            info = ip.parse(wire)
            # The CPU time of this thread, in many short rounds: on a shared machine, time
            # spent by other processes is not charged to the packets, and a round that
            # ran undisturbed (caches warm, the core to itself) is likely among many.
            bare[size], single, burst, decap = _rates(
                [
                    (bare_call, 1),
                    (partial(out.encapsulate, pkt, 1.0), 1),
                    (partial(out.encapsulate_batch, burst_pkts, 1.0), BURST),
                    (partial(inn.decapsulate, wire, info, 1.0), 1),
                ],
                seconds,
                rounds=ESP_ROUNDS,
                clock=time.thread_time,
            )
            row = {
                "suite": f"{cipher_word}/{integ_word}" if integ_word != "none" else cipher_word,
                "size": size,
                "encap_pps": round(single),
                "encap_gbps": round(single * size * 8 / 1e9, 3),
                "burst_pps": round(burst),
                "burst_gbps": round(burst * size * 8 / 1e9, 3),
                "decap_pps": round(decap),
                "decap_gbps": round(decap * size * 8 / 1e9, 3),
            }
            if cipher_word == "aes128gcm":
                row["bare_aesgcm_pps"] = round(bare[size])
                row["encap_vs_bare"] = round(single / bare[size], 3)
                row["burst_vs_bare"] = round(burst / bare[size], 3)
            rows.append(row)
    inner = "IPv4/UDP with DF, tunnel mode, IPv4 outer" + (", ESP in UDP 4500" if udp else "")
    return {"esp": rows, "burst": BURST, "inner": inner}


def _random_policies(n: int, rnd: random.Random) -> list[Policy]:
    """Realistic host/subnet policies over the documentation prefixes: IPv4 in
    198.51.100.0/24 <-> 203.0.113.0/24 and IPv6 in 2001:db8::/32, prefix lengths from a
    small set, a third with a protocol, some with ports."""
    v6 = int(ipaddress.ip_address("2001:db8::"))
    v4a = int(ipaddress.ip_address("198.51.100.0"))
    v4b = int(ipaddress.ip_address("203.0.113.0"))
    out = []
    for k in range(n):
        if rnd.random() < 0.5:
            sl, dl = rnd.choice((24, 28, 32)), rnd.choice((24, 28, 32))
            s = ipaddress.ip_network((v4a + rnd.randrange(256) >> (32 - sl) << (32 - sl), sl))
            d = ipaddress.ip_network((v4b + rnd.randrange(256) >> (32 - dl) << (32 - dl), dl))
        else:
            sl, dl = rnd.choice((48, 64, 128)), rnd.choice((48, 64, 128))
            s = ipaddress.ip_network((v6 + (rnd.getrandbits(96)) >> (128 - sl) << (128 - sl), sl))
            d = ipaddress.ip_network((v6 + (rnd.getrandbits(96)) >> (128 - dl) << (128 - dl), dl))
        proto = rnd.choice((0, 0, 6, 17))
        dports = ANY_PORT
        if proto and rnd.random() < 0.5:
            p = rnd.randrange(1, 65000)
            dports = (p, p + rnd.choice((0, 0, 10, 1000)))
        out.append(
            Policy(
                name=f"bench{k:06d}",
                direction=Direction.OUT,
                action=rnd.choice((Action.PROTECT, Action.BYPASS, Action.DISCARD)),
                selectors=(Selector(Endpoint(s), Endpoint(d, dports), proto),),
                priority=rnd.choice((None, None, None, rnd.randrange(100))),
            )
        )
    return out


def _flows(policies: list[Policy], n: int, rnd: random.Random) -> list[tuple[Any, ...]]:
    """``n`` distinct flows: half inside a random policy's prefixes (hits), half random."""
    flows: set[tuple[Any, ...]] = set()
    while len(flows) < n:
        if len(flows) % 2:
            sel = rnd.choice(policies).selectors[0]
            assert sel.source.network is not None and sel.destination.network is not None
            s, d = sel.source.network, sel.destination.network
            src = int(s.network_address) + rnd.randrange(s.num_addresses)
            dst = int(d.network_address) + rnd.randrange(d.num_addresses)
            version = s.version
        else:
            version = rnd.choice((4, 6))
            src = rnd.getrandbits(32 if version == 4 else 128)
            dst = rnd.getrandbits(32 if version == 4 else 128)
        proto = rnd.choice((6, 17, 1))
        ports = (rnd.randrange(65536), rnd.randrange(65536)) if proto != 1 else (-1, -1)
        flows.add((Direction.OUT, version, src, dst, proto, *ports))
    return list(flows)


def bench_spd(flows_n: int = 100_000, small_n: int = 100, big_n: int = 100_000) -> dict[str, Any]:
    """SPD lookup cost with 100 and 100,000 policies over the same distinct flows (half
    drawn inside the policies' prefixes, half random)."""
    rnd = random.Random(4301)
    big = _random_policies(big_n, rnd)
    small = big[:small_n]
    flows = _flows(small, flows_n // 2, rnd) + _flows(big, flows_n - flows_n // 2, rnd)
    result: dict[str, Any] = {"flows": len(flows)}
    labels = ("policies_small", "policies_big")
    result["sizes"] = {"policies_small": small_n, "policies_big": big_n}
    for label, pols in zip(labels, (small, big), strict=True):
        table = PolicyTable(pols)
        t0 = time.perf_counter()
        table.lookup(*flows[0])  # builds the index
        build = time.perf_counter() - t0
        lookup = table.lookup
        best = float("inf")
        hits = 0
        for _ in range(3):
            t0 = time.perf_counter()
            hits = sum(1 for f in flows if lookup(*f) is not None)
            best = min(best, time.perf_counter() - t0)
        result[label] = {
            "ns_per_lookup": round(best / len(flows) * 1e9),
            "hits": hits,
            "index_build_s": round(build, 3),
        }
    result["ratio"] = round(
        result["policies_big"]["ns_per_lookup"] / result["policies_small"]["ns_per_lookup"], 3
    )
    return result


def bench_ike(seconds: float) -> list[dict[str, Any]]:
    """Handshakes per second and the crypto-only bound, per suite (one core).  A full
    handshake takes milliseconds, so the CLI gives each at least a second."""
    import datetime

    from ipsecconf.ike.benchwork import SUITES, Workload

    rows = []
    for suite in SUITES:
        work = Workload(suite, os.urandom, lambda: datetime.datetime.now(datetime.UTC))
        # More, shorter rounds than the other benchmarks: a handshake is Python-heavy and
        # the bound is mostly C, so a busy neighbour skews one round's ratio; the best of
        # each over nine interleaved rounds is steadier.
        full, bound = _rates([(work.handshake, 1), (work.crypto, 1)], seconds, rounds=9)
        rows.append(
            {
                "suite": suite,
                "handshakes_per_s": round(full, 1),
                "crypto_bound_per_s": round(bound, 1),
                "ratio": round(full / bound, 3),
            }
        )
    return rows


def run(args: argparse.Namespace) -> int:
    """Run the chosen benchmarks and print them (text or JSON)."""
    report: dict[str, Any] = {}
    if args.what in ("all", "esp"):
        sizes = tuple(args.size) if args.size else SIZES
        suites = ESP_SUITES
        if args.suite:
            suites = tuple(
                (w.split("/")[0], w.split("/")[1] if "/" in w else "none") for w in args.suite
            )
        report.update(bench_esp(args.seconds, sizes, suites, args.udp))
    if args.what in ("all", "spd"):
        report["spd"] = bench_spd()
    if args.what in ("all", "ike"):
        report["ike"] = bench_ike(max(args.seconds, 1.0))
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    if "esp" in report:
        print(f"ESP, {report['inner']}, one core; bursts of {report['burst']}")
        print(
            f"{'suite':<22}{'size':>6}{'encap pkt/s':>13}{'Gbit/s':>8}{'burst pkt/s':>13}"
            f"{'Gbit/s':>8}{'decap pkt/s':>13}{'Gbit/s':>8}"
        )
        for r in report["esp"]:
            print(
                f"{r['suite']:<22}{r['size']:>6}{r['encap_pps']:>13,}{r['encap_gbps']:>8.2f}"
                f"{r['burst_pps']:>13,}{r['burst_gbps']:>8.2f}{r['decap_pps']:>13,}"
                f"{r['decap_gbps']:>8.2f}"
            )
        for r in report["esp"]:
            if "bare_aesgcm_pps" in r:
                print(
                    f"bare AESGCM.encrypt at {r['size']} B: {r['bare_aesgcm_pps']:,}/s; "
                    f"encapsulation {r['encap_vs_bare']:.0%} of it, bursts {r['burst_vs_bare']:.0%}"
                )
    if "ike" in report:
        print("IKE SA + first CHILD SA per second, one core, both peers in memory")
        print(f"{'suite':<18}{'handshakes/s':>14}{'crypto bound/s':>16}{'ratio':>8}")
        for r in report["ike"]:
            print(
                f"{r['suite']:<18}{r['handshakes_per_s']:>14,.1f}"
                f"{r['crypto_bound_per_s']:>16,.1f}{r['ratio']:>8.0%}"
            )
    if "spd" in report:
        s = report["spd"]
        print(f"SPD lookup over {s['flows']:,} distinct flows (hits and misses):")
        for label in ("policies_small", "policies_big"):
            v = s[label]
            print(
                f"  {s['sizes'][label]:>7,} policies: {v['ns_per_lookup']:>6} ns/lookup, "
                f"{v['hits']:,} hits, index built in {v['index_build_s']} s"
            )
        big, small = s["sizes"]["policies_big"], s["sizes"]["policies_small"]
        print(f"  ratio {big:,} / {small:,} policies: {s['ratio']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m ipsecconf.cli.bench [esp|spd] ...`` until ``ipsecconf bench`` is wired."""
    parser = argparse.ArgumentParser(prog="ipsecconf")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["bench", *(argv or [])])
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
