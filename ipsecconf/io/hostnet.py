"""The engine's footprint on the host: the TUN's link settings, the policy routing rule and
routing table of its own, and its nftables table (DESIGN.md "The user-space dataplane on
Linux").  Implements :class:`~ipsecconf.engine.ports.HostNetwork`.

* ``ip rule add not fwmark MARK table TABLE pref PREF`` (IPv4 and IPv6): every packet
  without the engine's mark looks up the engine's table first; the table holds a route
  into the TUN for each protected destination, and nothing else, so other traffic falls
  through to the main table.  The engine's own sockets carry the mark.
* The nftables table ``inet ipsecconf``: a prerouting chain dropping (and counting) clear
  inbound packets that a restrict policy covers unless they come out of the TUN; a
  postrouting chain dropping unmarked packets of a restrict policy that would leave by
  another interface (so a crashed engine fails closed: its routes vanish with the TUN,
  the table stays until the next start replaces it); a forward chain clamping the TCP
  MSS of SYNs through the TUN to its MTU.  With ``default_action: discard`` both chains
  end in a drop of what no rule accepted, after accepting loopback, IKE, ESP, AH and the
  ICMP errors and neighbour discovery that IP itself needs.
* The TUN's rp_filter is loose (2): decapsulated packets arrive on it.  Its queue is
  longer than the default (:attr:`Names.txqueuelen`).

Everything is named by the engine's own names and numbers, so :meth:`HostNet.cleanup`
can remove what a killed predecessor left without touching anything else.  Driven with
``ip`` and ``nft -j`` (the nftables JSON interface); every command is bounded in time.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from typing import Any

from ipsecconf.engine.ports import ClearDrop, HostConfig
from ipsecconf.errors import IpsecconfError

NFT_TABLE = "ipsecconf"
TIMEOUT = 10.0


class HostNetError(IpsecconfError):
    """A routing or firewall command failed."""


@dataclass(frozen=True, slots=True)
class Names:
    """The engine's own names and numbers on the host."""

    tun: str = "ipsecconf0"
    table: int = 4500
    pref: int = 4500
    mark: int = 0x4500
    mtu: int = 1400
    txqueuelen: int = 2000
    """Packets the kernel queues on the TUN for the engine to read.  The default 500 holds
    a third of what one TCP stream keeps in flight through a user-space dataplane
    (measured: 500 to 2500 retransmits in 8 s of iperf3, none with 2000)."""
    tso: bool = False
    """Ask the kernel for TCP super-packets on the TUN (:class:`~ipsecconf.io.tun.TunDevice`):
    off, since segmenting them in Python costs the engine more than the reads they save."""


def _run(args: list[str], stdin: str | None = None, check: bool = True) -> str:
    try:
        res = subprocess.run(
            args, input=stdin, capture_output=True, text=True, timeout=TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HostNetError(f"{args[0]}: {exc}") from None
    if check and res.returncode != 0:
        raise HostNetError(f"{' '.join(args[:4])}...: {res.stderr.strip()}")
    return res.stdout


class HostNet:
    """Routes, rules, nftables table and TUN link settings of one engine."""

    def __init__(self, names: Names) -> None:
        self.names = names
        self._routes: set[str] = set()

    def cleanup(self) -> list[str]:
        """Remove what an earlier engine with these names left; returns what was found."""
        n = self.names
        found = []
        for fam in ("-4", "-6"):
            for _ in range(16):  # bounded: normally one rule per family
                if not _run(["ip", fam, "rule", "show", "pref", str(n.pref)], check=False).strip():
                    break
                found.append(f"ip {fam} rule pref {n.pref}")
                _run(["ip", fam, "rule", "del", "pref", str(n.pref)], check=False)
            if _run(["ip", fam, "route", "show", "table", str(n.table)], check=False).strip():
                found.append(f"ip {fam} routes of table {n.table}")
                _run(["ip", fam, "route", "flush", "table", str(n.table)], check=False)
        if _run(["nft", "list", "table", "inet", NFT_TABLE], check=False).strip():
            # Kept until the new ruleset replaces it in one batch: its restrict rules keep
            # protected flows closed until the engine is back.
            found.append(f"nftables table inet {NFT_TABLE} (replaced atomically)")
        return found

    def setup(self) -> None:
        """Bring the TUN up with its MTU and queue length, relax rp_filter, add the rules."""
        n = self.names
        _run(["ip", "link", "set", "dev", n.tun, "mtu", str(n.mtu), "txqueuelen",
              str(n.txqueuelen), "up"])  # fmt: skip
        try:
            with open(f"/proc/sys/net/ipv4/conf/{n.tun}/rp_filter", "w") as fh:
                fh.write("2\n")
        except OSError as exc:
            raise HostNetError(f"cannot relax rp_filter on {n.tun}: {exc.strerror}") from None
        for fam in ("-4", "-6"):
            _run(
                ["ip", fam, "rule", "add", "not", "fwmark", hex(n.mark), "table", str(n.table),
                 "pref", str(n.pref)]
            )  # fmt: skip

    def apply(self, config: HostConfig) -> None:
        """Routes into the TUN and the nftables table, as ``config`` says."""
        n = self.names
        for prefix in sorted(config.routes - self._routes):
            fam = "-6" if ":" in prefix else "-4"
            _run(["ip", fam, "route", "replace", prefix, "dev", n.tun, "table", str(n.table)])
        for prefix in sorted(self._routes - config.routes):
            fam = "-6" if ":" in prefix else "-4"
            _run(["ip", fam, "route", "del", prefix, "table", str(n.table)], check=False)
        self._routes = set(config.routes)
        _run(
            ["nft", "-j", "-f", "-"],
            stdin=json.dumps(self.ruleset(config.clear_drops, config.default_discard)),
        )

    def ruleset(self, drops: tuple[ClearDrop, ...], discard: bool = False) -> dict[str, Any]:
        """The whole nftables table as one JSON batch (replaced atomically)."""
        n = self.names
        table = {"family": "inet", "name": NFT_TABLE}
        pre = {**table, "name": "clear_in", "table": NFT_TABLE, "type": "filter",
               "hook": "prerouting", "prio": -150, "policy": "accept"}  # fmt: skip
        post = {**table, "name": "clear_out", "table": NFT_TABLE, "type": "filter",
                "hook": "postrouting", "prio": 0, "policy": "accept"}  # fmt: skip
        fwd = {**table, "name": "mss", "table": NFT_TABLE, "type": "filter",
               "hook": "forward", "prio": 0, "policy": "accept"}  # fmt: skip
        cmds: list[dict[str, Any]] = [
            {"add": {"table": table}},
            {"delete": {"table": table}},
            {"add": {"table": table}},
            {"add": {"chain": pre}},
            {"add": {"chain": post}},
            {"add": {"chain": fwd}},
            # The engine's own packets (IKE, ESP, bypassed clear traffic) carry its mark.
            {"add": {"rule": {"family": "inet", "table": NFT_TABLE, "chain": "clear_out",
                              "expr": [_match({"meta": {"key": "mark"}}, n.mark),
                                       {"accept": None}]}}},
        ]  # fmt: skip
        for d in drops:
            chain = "clear_out" if d.outbound else "clear_in"
            cmds.append({"add": {"rule": {"family": "inet", "table": NFT_TABLE,
                                          "chain": chain, "comment": d.policy[:100],
                                          "expr": _drop_expr(n.tun, d)}}})  # fmt: skip
        if discard:
            cmds += [{"add": {"rule": {"family": "inet", "table": NFT_TABLE, "chain": chain,
                                       "comment": DEFAULT_DISCARD, "expr": expr}}}
                     for chain, expr in _closing_rules(n.tun)]  # fmt: skip
        for v, mss in ((4, n.mtu - 40), (6, n.mtu - 60)):
            for direction in ("oifname", "iifname"):
                expr = [
                    _match({"meta": {"key": direction}}, n.tun),
                    _match({"meta": {"key": "nfproto"}}, "ipv4" if v == 4 else "ipv6"),
                    _match({"payload": {"protocol": "tcp", "field": "flags"}}, "syn", "in"),
                    _match(_MSS, mss, ">"),
                    {"mangle": {"key": _MSS, "value": mss}},
                ]
                cmds.append({"add": {"rule": {"family": "inet", "table": NFT_TABLE,
                                              "chain": "mss", "expr": expr}}})  # fmt: skip
        return {"nftables": cmds}

    def drop_counts(self) -> dict[str, int]:
        """Packets dropped per restrict policy (from the rules' counters)."""
        out = _run(["nft", "-j", "list", "chain", "inet", NFT_TABLE, "clear_in"], check=False)
        counts: dict[str, int] = {}
        try:
            items = json.loads(out).get("nftables", [])
        except ValueError:
            return counts
        for item in items:
            rule = item.get("rule")
            if not rule:
                continue
            for e in rule.get("expr", []):
                if "counter" in e:
                    name = rule.get("comment", "")
                    counts[name] = counts.get(name, 0) + int(e["counter"]["packets"])
        return counts

    def teardown(self) -> None:
        """Remove rules, routes and the nftables table (the TUN goes with its fd)."""
        n = self.names
        for fam in ("-4", "-6"):
            _run(["ip", fam, "rule", "del", "pref", str(n.pref)], check=False)
            _run(["ip", fam, "route", "flush", "table", str(n.table)], check=False)
        _run(["nft", "delete", "table", "inet", NFT_TABLE], check=False)
        self._routes.clear()


_MSS = {"tcp option": {"name": "maxseg", "field": "size"}}
DEFAULT_DISCARD = "default_action discard"
_UDP_DPORT = {"payload": {"protocol": "udp", "field": "dport"}}
_ICMP_NEEDED = {
    "icmp": ["destination-unreachable", "time-exceeded", "parameter-problem"],
    "icmpv6": ["destination-unreachable", "packet-too-big", "time-exceeded",
               "parameter-problem", "nd-router-solicit", "nd-router-advert",
               "nd-neighbor-solicit", "nd-neighbor-advert", "nd-redirect"],
}  # fmt: skip


def _closing_rules(tun: str) -> list[tuple[str, list[dict[str, Any]]]]:
    """(chain, expression) of ``default_action: discard``, after every policy's rule."""
    accept: list[dict[str, Any]] = [{"accept": None}]
    rules: list[tuple[str, list[dict[str, Any]]]] = [
        ("clear_in", [_match({"meta": {"key": "iifname"}}, "lo"), *accept]),
        ("clear_out", [_match({"meta": {"key": "oifname"}}, "lo"), *accept]),
        # ESP, AH and IKE (500, and 4500 with ESP-in-UDP) are what protects the rest.
        ("clear_in", [_match({"meta": {"key": "l4proto"}}, {"set": [50, 51]}), *accept]),
        ("clear_in", [_match(_UDP_DPORT, {"set": [500, 4500]}), *accept]),
    ]
    for proto, types in _ICMP_NEEDED.items():
        match = _match({"payload": {"protocol": proto, "field": "type"}}, {"set": types})
        rules += [("clear_in", [match, *accept]), ("clear_out", [match, *accept])]
    drop: list[dict[str, Any]] = [{"counter": None}, {"drop": None}]
    rules += [
        ("clear_in", [_match({"meta": {"key": "iifname"}}, tun, "!="), *drop]),
        ("clear_out", [_match({"meta": {"key": "oifname"}}, tun, "!="), *drop]),
    ]
    return rules


def _match(left: dict[str, Any], right: Any, op: str = "==") -> dict[str, Any]:
    return {"match": {"op": op, "left": left, "right": right}}


def _drop_expr(tun: str, d: ClearDrop) -> list[dict[str, Any]]:
    fam = "ip" if d.version == 4 else "ip6"
    expr = [_match({"meta": {"key": "oifname" if d.outbound else "iifname"}}, tun, "!=")]
    for field, prefix in (("saddr", d.source), ("daddr", d.destination)):
        addr, length = prefix.split("/")
        expr.append(
            _match({"payload": {"protocol": fam, "field": field}},
                   {"prefix": {"addr": addr, "len": int(length)}})
        )  # fmt: skip
    if d.protocol:
        expr.append(_match({"meta": {"key": "l4proto"}}, d.protocol))
    proto = {6: "tcp", 17: "udp"}.get(d.protocol)
    for field, ports in (("sport", d.source_ports), ("dport", d.destination_ports)):
        if ports is not None and proto is not None:
            lo, hi = ports
            right: Any = lo if lo == hi else {"range": [lo, hi]}
            expr.append(_match({"payload": {"protocol": proto, "field": field}}, right))
    expr += [{"accept": None}] if d.accept else [{"counter": None}, {"drop": None}]
    return expr
