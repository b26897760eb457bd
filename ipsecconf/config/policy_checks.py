"""Checks of the security policies: algorithm combinations, selectors, pairs and shadowing.

Shadowing must stay fast at 100,000 rows, so it is not a pairwise scan: earlier rows are
bucketed by (direction, source prefix, destination prefix), and a row looks only in the
buckets of its own prefixes' ancestors, at the prefix lengths that actually occur.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from ipsecconf.config.checks import CheckContext, duplicate_names
from ipsecconf.model import proposals as prop
from ipsecconf.model.algorithms import CIPHERS
from ipsecconf.model.desired import Policy
from ipsecconf.model.selectors import PORT_PROTOCOLS, PROTOCOL_WORDS, Endpoint, Selector
from ipsecconf.model.spd import PolicyRow

MIN_REPLAY_WINDOW = 32


def _check_algorithms(ctx: CheckContext, i: int, p: Policy) -> None:
    path = ctx.path("policies", i)
    if p.protocol == "ah":
        if p.encryption not in ("auto", "null"):
            ctx.error(
                (*path, "encryption"),
                "AH authenticates only and cannot encrypt; "
                f"remove encryption {p.encryption} or use protocol esp",
            )
            return
        if p.authentication == "none":
            ctx.error((*path, "authentication"), "AH needs an integrity algorithm, not none")
            return
        if p.udp_encapsulation:
            ctx.error(
                (*path, "udp_encapsulation"),
                "AH cannot cross NAT: UDP encapsulation (RFC 3948) exists for ESP only",
            )
    elif p.protocol == "esp":
        cipher = CIPHERS.get(p.encryption)
        if p.encryption == "null" and p.authentication == "none":
            ctx.error(
                (*path, "authentication"),
                "ESP with null encryption and no integrity protects nothing",
            )
            return
        if cipher is not None and cipher.aead and p.authentication not in ("auto", "none"):
            ctx.error(
                (*path, "authentication"),
                f"{p.encryption} is an AEAD cipher and takes no integrity algorithm: "
                f"write authentication: none (RFC 7296 section 3.3)",
            )
            return
        if (
            p.authentication == "none"
            and cipher is not None
            and not cipher.aead
            and (cipher.name != "null")
        ):
            ctx.warning(
                (*path, "authentication"),
                f"{p.encryption} without integrity is open to active attacks; "
                f"add an authentication algorithm",
            )
        if p.authentication == "none" and p.encryption == "auto":
            pass  # auto then offers AEAD suites only
    else:
        return
    if p.esp_proposals:
        if p.encryption != "auto" or p.authentication != "auto":
            ctx.error(
                (*path, "esp_proposals"),
                "esp_proposals replaces encryption and "
                "authentication; set either the proposals or the two words",
            )
            return
        for k, text in enumerate(p.esp_proposals):
            try:
                proposal = prop.parse(text, p.protocol)
            except prop.ProposalError as exc:
                ctx.error((*path, "esp_proposals", k), str(exc))
                continue
            for weak in proposal.weak_names():
                ctx.warning((*path, "esp_proposals", k), f"weak algorithm {weak} (RFC 8221)")
        return
    try:
        offered = prop.child_proposals(
            p.protocol, p.encryption, p.authentication, pfs_group=p.pfs_group, esn=p.esn
        )
    except prop.ProposalError as exc:
        ctx.error(path, str(exc))
        return
    weak_words = {w for o in offered for w in o.weak_names()}
    explicit = {p.encryption, p.authentication, p.pfs_group}
    for name in sorted(weak_words & explicit):
        field_name = (
            "encryption"
            if name == p.encryption
            else "authentication"
            if name == p.authentication
            else "pfs_group"
        )
        what = "no encryption (ESP-NULL)" if name == "null" else f"weak algorithm {name}"
        ctx.warning((*path, field_name), f"{what}; RFC 8221 advises against it")


def _check_selectors(ctx: CheckContext, i: int, p: Policy) -> None:
    path = ctx.path("policies", i)
    if p.ip_protocol and p.ip_protocol not in PORT_PROTOCOLS:
        word = PROTOCOL_WORDS.get(p.ip_protocol, str(p.ip_protocol))
        for side in ("source", "destination"):
            end: Endpoint = getattr(p, side)
            if end.has_ports:
                ctx.error(
                    (*path, side),
                    f"a port needs TCP, UDP, SCTP, UDP-Lite or DCCP; ip_protocol is {word}",
                )
    v1, v2 = p.source.version, p.destination.version
    if v1 and v2 and v1 != v2:
        ctx.error((*path, "destination"), f"source is IPv{v1} but destination is IPv{v2}")


def _check_options(ctx: CheckContext, i: int, p: Policy, peers: set[str]) -> None:
    path = ctx.path("policies", i)
    if p.replay_window == 0:
        ctx.error(
            (*path, "replay_window"),
            "replay_window 0 (off) is allowed for manual SAs "
            "only; negotiated SAs keep anti-replay on",
        )
    elif p.replay_window < MIN_REPLAY_WINDOW:
        ctx.error((*path, "replay_window"), f"replay_window must be at least {MIN_REPLAY_WINDOW}")
    lt = p.lifetime
    if lt.time and lt.rekey_margin >= lt.time:
        ctx.error(
            (*path, "lifetime", "rekey_margin"),
            f"rekey_margin ({lt.rekey_margin}s) must be shorter than the lifetime ({lt.time}s)",
        )
    if p.peer is not None and p.peer not in peers:
        known = ", ".join(sorted(peers)) or "none defined"
        ctx.error((*path, "peer"), f"unknown peer {p.peer!r} (peers: {known})")
    protect = p.protocol in ("esp", "ah")
    if protect and p.mode == "tunnel" and p.peer is None:
        ctx.error(
            (*path, "mode"),
            "tunnel mode needs an explicit peer: (whose address is the tunnel's remote end)",
        )
    if protect and p.start == "immediate" and p.peer is None:
        remote = p.destination if p.direction == "out" else p.source
        net = remote.network
        if net is None or net.num_addresses != 1:
            ctx.error(
                (*path, "start"),
                "start: immediate needs a peer: or a single remote "
                "host; with a range the peer is only known from a packet",
            )
    if p.tunnel is not None and p.mode != "tunnel":
        ctx.error((*path, "tunnel"), "tunnel addresses are set but mode is transport")


def check_policies(ctx: CheckContext) -> None:
    """Per-policy rules, and duplicate names."""
    policies = ctx.document.policies
    duplicate_names(ctx, "policies", [p.name for p in policies], "policy")
    peers = {peer.name for peer in ctx.document.peers}
    for i, p in enumerate(policies):
        _check_algorithms(ctx, i, p)
        _check_selectors(ctx, i, p)
        _check_options(ctx, i, p, peers)


def _algorithms(row: PolicyRow) -> tuple[Any, ...]:
    return (row.protocol, row.encryption, row.authentication, row.esp_proposals, row.mode)


def check_pairs(ctx: CheckContext) -> None:
    """Two unmirrored rows that mirror each other form one child SA: they must agree."""
    outs: dict[tuple[Any, ...], PolicyRow] = {}
    for row in ctx.rows:
        if not row.mirrored and row.action == "protect" and row.direction == "out":
            outs[(row.selectors, row.peer)] = row
    for row in ctx.rows:
        if row.mirrored or row.action != "protect" or row.direction != "in":
            continue
        mate = outs.get((tuple(s.reversed() for s in row.selectors), row.peer))
        if mate is not None and _algorithms(mate) != _algorithms(row):
            ctx.error(
                ctx.policy_path(row.policy),
                f"policy {row.name} mirrors {mate.name} (one child SA) but names different "
                f"algorithms or mode; make them agree",
            )


_Side = tuple[int, int, int, int, int, int]
"""(IP version or 0 for any, address as int, prefix length, address bits, low port, high port)."""


def _side(end: Endpoint) -> _Side:
    net = end.network
    if net is None:
        return (0, 0, 0, 0, end.ports[0], end.ports[1])
    return (
        net.version,
        int(net.network_address),
        net.prefixlen,
        net.max_prefixlen,
        end.ports[0],
        end.ports[1],
    )


def _side_covers(outer: _Side, inner: _Side) -> bool:
    if not (outer[4] <= inner[4] and inner[5] <= outer[5]):
        return False
    if outer[0] == 0:
        return True
    if inner[0] != outer[0] or inner[2] < outer[2]:
        return False
    shift = outer[3] - outer[2]
    return inner[1] >> shift == outer[1] >> shift


def _bucket(side: _Side, length: int) -> tuple[int, int, int]:
    if side[0] == 0:
        return (0, 0, 0)
    return (side[0], side[1] >> (side[3] - length), length)


def _describe(sel: Selector) -> str:
    proto = PROTOCOL_WORDS.get(sel.protocol, str(sel.protocol))
    return f"{sel.source} -> {sel.destination} ({proto})"


_Flat = tuple[_Side, _Side, int]

_VERBS = {"protect": "protects", "bypass": "bypasses", "discard": "discards"}
"""The action of a row as the verb of a warning ("bypass" + "s" would read "bypasss")."""


def check_shadowing(ctx: CheckContext) -> None:
    """Warn when an earlier rule with another action covers a rule, so it never matches.

    Rules are visited in SPD order.  Each earlier rule sits in a bucket keyed by its exact
    (source prefix, destination prefix); a later rule only visits the buckets of its own
    prefixes' ancestors at the lengths seen so far, so the cost stays near linear.
    """
    buckets: dict[tuple[Any, ...], list[tuple[PolicyRow, _Flat]]] = defaultdict(list)
    lengths: dict[tuple[str, int, int], set[int]] = defaultdict(set)
    exact: dict[tuple[Any, ...], PolicyRow] = {}
    for row in ctx.rows:
        flats = [(_side(s.source), _side(s.destination), s.protocol) for s in row.selectors]
        ident = (row.direction, *flats)
        twin = exact.get(ident)
        if twin is not None and twin.policy != row.policy:
            ctx.error(
                ctx.policy_path(row.policy),
                f"policy {row.name} has the same selectors and direction as {twin.name}",
            )
        exact.setdefault(ident, row)
        for sel, flat in zip(row.selectors, flats, strict=True):
            shadow = _find_cover(buckets, lengths, row, flat)
            if shadow is not None:
                ctx.warning(
                    ctx.policy_path(row.policy),
                    f"policy {row.name} ({_describe(sel)}) is shadowed by {shadow.name}, which "
                    f"comes first and {_VERBS.get(shadow.action, shadow.action)} that traffic: "
                    "it never matches",
                )
                break
        for flat in flats:
            src, dst = flat[0], flat[1]
            lengths[(row.direction, 0, src[0])].add(src[2])
            lengths[(row.direction, 1, dst[0])].add(dst[2])
            buckets[(row.direction, _bucket(src, src[2]), _bucket(dst, dst[2]))].append((row, flat))


def _find_cover(
    buckets: dict[tuple[Any, ...], list[tuple[PolicyRow, _Flat]]],
    lengths: dict[tuple[str, int, int], set[int]],
    row: PolicyRow,
    flat: _Flat,
) -> PolicyRow | None:
    src, dst, proto = flat
    direction = row.direction
    src_keys = [(0, 0, 0)]
    if src[0]:
        src_keys += [
            _bucket(src, n) for n in lengths.get((direction, 0, src[0]), ()) if n <= src[2]
        ]
    dst_keys = [(0, 0, 0)]
    if dst[0]:
        dst_keys += [
            _bucket(dst, n) for n in lengths.get((direction, 1, dst[0]), ()) if n <= dst[2]
        ]
    for sk in src_keys:
        for dk in dst_keys:
            for earlier, (esrc, edst, eproto) in buckets.get((direction, sk, dk), ()):
                if (
                    earlier.action != row.action
                    and (eproto == 0 or eproto == proto)
                    and _side_covers(esrc, src)
                    and _side_covers(edst, dst)
                ):
                    return earlier
    return None
