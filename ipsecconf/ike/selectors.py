"""Traffic selector arithmetic: policy selectors to TS payloads, and narrowing (RFC 7296 2.9).

The initiator proposes TSi from the sources and TSr from the destinations of its child's
``out`` selectors, all in one payload each (a port without a protocol gives a TCP and a
UDP entry).  With populate-from-packet the first entry of each is the triggering packet's
host, as section 2.9 asks, and a responder that also populates from the packet narrows to
those first entries, so that each remote host of a range gets its own child SA (DESIGN.md).

Narrowing is the intersection of what was proposed with what the local policy allows;
an empty result on either side is TS_UNACCEPTABLE.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass
from typing import Any

from ipsecconf.ike.config import ChildConfig, TriggerPacket, derived
from ipsecconf.ike.payloads_ts import IPAddress, TsEntry, TsPayload, ts_body
from ipsecconf.model.selectors import Endpoint, Selector

_FULL: dict[int, tuple[IPAddress, IPAddress]] = {
    4: (ipaddress.IPv4Address(0), ipaddress.IPv4Address(2**32 - 1)),
    6: (ipaddress.IPv6Address(0), ipaddress.IPv6Address(2**128 - 1)),
}


def _entries(endpoint: Endpoint, protocol: int, family: int | None) -> list[TsEntry]:
    lo_port, hi_port = endpoint.ports if protocol else (0, 65535)
    if endpoint.network is not None:
        net = endpoint.network
        return [TsEntry(net[0], net[-1], protocol, lo_port, hi_port)]
    families = [family] if family else [4, 6]
    return [TsEntry(*_FULL[f], protocol, lo_port, hi_port) for f in families]


def _protocols(selector: Selector) -> tuple[int, ...]:
    """A port without a protocol means TCP and UDP (DESIGN.md): two selectors."""
    if selector.protocol == 0 and (selector.source.has_ports or selector.destination.has_ports):
        return (6, 17)
    return (selector.protocol,)


def _host(addr: IPAddress, endpoint: Endpoint, protocol: int) -> TsEntry:
    lo, hi = endpoint.ports if protocol else (0, 65535)
    return TsEntry(addr, addr, protocol, lo, hi)


def _in(addr: IPAddress, endpoint: Endpoint) -> bool:
    net = endpoint.network
    return net is None or (net.version == addr.version and addr in net)


def proposed(
    child: ChildConfig, trigger: TriggerPacket | None = None
) -> tuple[list[TsEntry], list[TsEntry]]:
    """The (local, remote) TS lists an initiator sends for ``child``.

    With populate-from-packet, the first entries are the packet's two hosts, with the
    protocol and ports of the policy selectors that match the packet (addresses come
    from the packet, RFC 4301 4.4.1.1), so that one child SA covers one remote host.
    """
    local: list[TsEntry] = []
    remote: list[TsEntry] = []

    def add(into: list[TsEntry], entries: list[TsEntry]) -> None:
        into.extend(e for e in entries if e not in into)

    if trigger is not None and child.populate_from_packet:
        for selector in child.selectors:
            if _in(trigger.source, selector.source) and _in(
                trigger.destination, selector.destination
            ):
                for proto in _protocols(selector):
                    add(local, [_host(trigger.source, selector.source, proto)])
                    add(remote, [_host(trigger.destination, selector.destination, proto)])
        if not local:
            add(local, [TsEntry(trigger.source, trigger.source)])
            add(remote, [TsEntry(trigger.destination, trigger.destination)])
    for selector in child.selectors:
        family = selector.source.version or selector.destination.version
        for proto in _protocols(selector):
            add(local, _entries(selector.source, proto, family))
            add(remote, _entries(selector.destination, proto, family))
    return local, remote


def policy_sides(child: ChildConfig) -> tuple[list[TsEntry], list[TsEntry]]:
    """The (local, remote) entries a responder allows for ``child``."""
    return proposed(child, None)


def intersect(a: TsEntry, b: TsEntry) -> TsEntry | None:
    """The selector both ``a`` and ``b`` cover, or ``None``."""
    if a.start_addr.version != b.start_addr.version:
        return None
    if a.ip_protocol and b.ip_protocol and a.ip_protocol != b.ip_protocol:
        return None
    start: IPAddress = max(a.start_addr, b.start_addr)
    end: IPAddress = min(a.end_addr, b.end_addr)
    if start > end:  # type: ignore[operator]
        return None
    lo = max(a.start_port, b.start_port)
    hi = min(a.end_port, b.end_port)
    if lo > hi:
        return None
    return TsEntry(start, end, a.ip_protocol or b.ip_protocol, lo, hi)


def narrow(offered: list[TsEntry], allowed: list[TsEntry]) -> list[TsEntry]:
    """Every non-empty intersection of an offered entry with an allowed one, deduplicated."""
    out: list[TsEntry] = []
    for o in offered:
        for a in allowed:
            r = intersect(o, a)
            if r is not None and r not in out:
                out.append(r)
    return out


def covered(entry: TsEntry, by: list[TsEntry]) -> bool:
    """True when one entry of ``by`` contains ``entry`` entirely."""
    return any(intersect(entry, b) == entry for b in by)


def responder_narrow(
    child: ChildConfig, tsi: list[TsEntry], tsr: list[TsEntry]
) -> tuple[list[TsEntry], list[TsEntry]] | None:
    """The responder's (TSi, TSr) answer for ``child``, or ``None`` when unacceptable.

    A child that populates from the packet narrows to the hosts of the first entries
    (the packet's, RFC 7296 2.9), keeping every protocol and port its policy allows.
    """
    local, remote = policy_sides(child)
    out_i = narrow(tsi, remote)
    out_r = narrow(tsr, local)
    if child.populate_from_packet and tsi and tsr:
        host_i = narrow(out_i, [TsEntry(tsi[0].start_addr, tsi[0].end_addr)])
        host_r = narrow(out_r, [TsEntry(tsr[0].start_addr, tsr[0].end_addr)])
        if host_i and host_r:
            return host_i, host_r
    if not out_i or not out_r:
        return None
    return out_i, out_r


def to_selectors(local: list[TsEntry], remote: list[TsEntry]) -> list[Selector]:
    """Negotiated TS lists as ``out``-direction selectors for the dataplane (cross product,
    keeping only pairs of one family and a compatible protocol; ranges that are not a
    prefix are split into prefixes)."""
    return list(_to_selectors(tuple(local), tuple(remote)))


@functools.lru_cache(maxsize=1024)
def _to_selectors(local: tuple[TsEntry, ...], remote: tuple[TsEntry, ...]) -> tuple[Selector, ...]:
    # Cached: every rekey of a child negotiates the same selectors again, and splitting
    # ranges into prefixes is costly (values are immutable, so sharing them is safe).
    out: list[Selector] = []
    for lo in local:
        for re_ in remote:
            if lo.start_addr.version != re_.start_addr.version:
                continue
            if lo.ip_protocol and re_.ip_protocol and lo.ip_protocol != re_.ip_protocol:
                continue
            proto = lo.ip_protocol or re_.ip_protocol
            for src in _prefixes(lo):
                for dst in _prefixes(re_):
                    ports = proto != 0
                    out.append(
                        Selector(
                            Endpoint(src, (lo.start_port, lo.end_port) if ports else (0, 65535)),
                            Endpoint(dst, (re_.start_port, re_.end_port) if ports else (0, 65535)),
                            proto,
                        )
                    )
    return tuple(out)


def _prefixes(entry: TsEntry) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return list(ipaddress.summarize_address_range(entry.start_addr, entry.end_addr))


# -- memoised per child config ----------------------------------------------------------
# The functions above are pure; a child negotiates the same selectors in every handshake
# (and every rekey), so their results are remembered in the child's config, keyed by the
# canonical encoding of the TS payloads involved (cheap to hash, unlike address objects).
_MEMO_SIZE = 64
_UNKNOWN: Any = object()  # not in a memo (whose values may be None: "unacceptable")


@dataclass(frozen=True, slots=True)
class Narrowed:
    """A negotiated pair of TS lists: TSi and TSr, as payloads, and the dataplane's
    ``out`` selectors for them (from the local side: TSi for the initiator)."""

    tsi: TsPayload
    tsr: TsPayload
    selectors: tuple[Selector, ...]


def offer(child: ChildConfig, trigger: TriggerPacket | None) -> tuple[TsPayload, TsPayload]:
    """The TSi and TSr payloads an initiator sends for ``child`` (:func:`proposed`)."""
    if trigger is None or not child.populate_from_packet:  # proposed() ignores it then
        return derived(child, "ts-offer", lambda: _as_payloads(proposed(child, None)))
    return _as_payloads(proposed(child, trigger))


def _as_payloads(sides: tuple[list[TsEntry], list[TsEntry]]) -> tuple[TsPayload, TsPayload]:
    return TsPayload(True, tuple(sides[0])), TsPayload(False, tuple(sides[1]))


def _memo(child: ChildConfig, name: str) -> dict[Any, Any]:
    memo: dict[Any, Any] = derived(child, name, dict)
    if len(memo) >= _MEMO_SIZE:
        memo.clear()
    return memo


def responder_answer(child: ChildConfig, tsi: TsPayload, tsr: TsPayload) -> Narrowed | None:
    """:func:`responder_narrow` of the initiator's TSi and TSr, with our ``out``
    selectors (TSr is our side), or ``None`` when unacceptable."""
    memo = _memo(child, "ts-answers")
    key = (ts_body(tsi), ts_body(tsr))
    found: Narrowed | None = memo.get(key, _UNKNOWN)
    if found is not _UNKNOWN:
        return found
    narrowed = responder_narrow(child, list(tsi.selectors), list(tsr.selectors))
    answer = None
    if narrowed is not None:
        out_i, out_r = narrowed
        answer = Narrowed(
            TsPayload(True, tuple(out_i)),
            TsPayload(False, tuple(out_r)),
            tuple(to_selectors(out_r, out_i)),
        )
    memo[key] = answer
    return answer


def initiator_check(
    child: ChildConfig, sent: tuple[TsPayload, TsPayload], tsi: TsPayload, tsr: TsPayload
) -> tuple[Selector, ...] | None:
    """Our ``out`` selectors for the responder's TSi and TSr, or ``None`` when it
    widened what we ``sent`` (each of its entries must lie inside one of ours)."""
    memo = _memo(child, "ts-checks")
    key = (ts_body(sent[0]), ts_body(sent[1]), ts_body(tsi), ts_body(tsr))
    found: tuple[Selector, ...] | None = memo.get(key, _UNKNOWN)
    if found is not _UNKNOWN:
        return found
    local, remote = list(sent[0].selectors), list(sent[1].selectors)
    ok = all(covered(t, local) for t in tsi.selectors) and all(
        covered(t, remote) for t in tsr.selectors
    )
    result = tuple(to_selectors(list(tsi.selectors), list(tsr.selectors))) if ok else None
    memo[key] = result
    return result
