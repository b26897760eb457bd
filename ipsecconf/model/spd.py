"""SPD rows: a declared policy expanded into the entries the SPD really holds, and their order.

A mirrored policy ``cifs`` (the seed's default) becomes two rows, ``cifs.out`` and
``cifs.in``; an unmirrored one becomes the single row of its direction.  A port without an
upper-layer protocol means TCP and UDP, so the row carries two selectors.

The order is total (RFC 4301 section 4.4.1): ``priority`` ascending (a row without one
counts as :data:`DEFAULT_PRIORITY`), then more specific selectors first (longer prefixes,
then a protocol, then narrower ports), then the name.  Index numbers are not part of the
row: the store assigns them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ipsecconf.model.desired import Policy
from ipsecconf.model.selectors import Endpoint, Selector, parse_ports, parse_prefix

DEFAULT_PRIORITY = 1000
TCP, UDP = 6, 17


@dataclass(frozen=True, slots=True)
class PolicyRow:
    """One SPD entry as the store, the planner and the dataplane see it."""

    name: str
    """Resource name, ``<policy>.<direction>``."""
    policy: str
    direction: str
    selectors: tuple[Selector, ...]
    action: str
    """``protect``, ``bypass`` or ``discard``."""
    protocol: str | None
    """``esp`` or ``ah`` for protect rows."""
    encryption: str = "auto"
    authentication: str = "auto"
    esp_proposals: tuple[str, ...] | None = None
    level: str = "restrict"
    mode: str = "transport"
    tunnel_local: str | None = None
    tunnel_remote: str | None = None
    peer: str | None = None
    pfs_group: str | None = None
    lifetime: tuple[int, int, int, int] = (3600, 0, 0, 540)
    """(time, bytes, packets, rekey margin)."""
    replay_window: int = 64
    esn: str = "auto"
    udp_encapsulation: bool = False
    start: str = "on_demand"
    priority: int | None = None
    mirrored: bool = True

    def order_key(self) -> tuple[Any, ...]:
        """The total order of the SPD: priority, specificity, name."""
        return order_key(self.priority, self.selectors, self.name)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly canonical form (the store's and the plan's representation)."""
        return {
            "name": self.name,
            "policy": self.policy,
            "direction": self.direction,
            "selectors": [selector_to_dict(s) for s in self.selectors],
            "action": self.action,
            "protocol": self.protocol,
            "encryption": self.encryption,
            "authentication": self.authentication,
            "esp_proposals": list(self.esp_proposals) if self.esp_proposals else None,
            "level": self.level,
            "mode": self.mode,
            "tunnel_local": self.tunnel_local,
            "tunnel_remote": self.tunnel_remote,
            "peer": self.peer,
            "pfs_group": self.pfs_group,
            "lifetime": dict(
                zip(("time", "bytes", "packets", "rekey_margin"), self.lifetime, strict=True)
            ),
            "replay_window": self.replay_window,
            "esn": self.esn,
            "udp_encapsulation": self.udp_encapsulation,
            "start": self.start,
            "priority": self.priority,
            "mirrored": self.mirrored,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PolicyRow:
        """Inverse of :meth:`to_dict`."""
        lt = d.get("lifetime") or {}
        return cls(
            name=d["name"],
            policy=d["policy"],
            direction=d["direction"],
            selectors=tuple(selector_from_dict(s) for s in d["selectors"]),
            action=d["action"],
            protocol=d.get("protocol"),
            encryption=d.get("encryption", "auto"),
            authentication=d.get("authentication", "auto"),
            esp_proposals=tuple(d["esp_proposals"]) if d.get("esp_proposals") else None,
            level=d.get("level", "restrict"),
            mode=d.get("mode", "transport"),
            tunnel_local=d.get("tunnel_local"),
            tunnel_remote=d.get("tunnel_remote"),
            peer=d.get("peer"),
            pfs_group=d.get("pfs_group"),
            lifetime=(
                lt.get("time", 3600),
                lt.get("bytes", 0),
                lt.get("packets", 0),
                lt.get("rekey_margin", 540),
            ),
            replay_window=d.get("replay_window", 64),
            esn=d.get("esn", "auto"),
            udp_encapsulation=d.get("udp_encapsulation", False),
            start=d.get("start", "on_demand"),
            priority=d.get("priority"),
            mirrored=d.get("mirrored", True),
        )


def order_key(
    priority: int | None, selectors: tuple[Selector, ...], name: str
) -> tuple[int, int, int, int, str]:
    """The SPD's total order, the one definition every table uses (module docstring)."""
    prio = DEFAULT_PRIORITY if priority is None else priority
    return (prio, *selectors[0].specificity(), name)


def selector_to_dict(s: Selector) -> dict[str, Any]:
    """JSON form of a selector."""
    return {
        "source": s.source.format_address(),
        "source_ports": s.source.format_port(),
        "destination": s.destination.format_address(),
        "destination_ports": s.destination.format_port(),
        "protocol": s.protocol,
    }


def selector_from_dict(d: dict[str, Any]) -> Selector:
    """Inverse of :func:`selector_to_dict`."""
    return Selector(
        Endpoint(parse_prefix(d["source"]), parse_ports(d["source_ports"])),
        Endpoint(parse_prefix(d["destination"]), parse_ports(d["destination_ports"])),
        int(d["protocol"]),
    )


def policy_selectors(policy: Policy) -> tuple[Selector, ...]:
    """The selectors of a policy in its declared direction (TCP and UDP for a bare port)."""
    src, dst, proto = policy.source, policy.destination, policy.ip_protocol
    if proto == 0 and (src.has_ports or dst.has_ports):
        return (Selector(src, dst, TCP), Selector(src, dst, UDP))
    return (Selector(src, dst, proto),)


_ACTIONS = {"esp": "protect", "ah": "protect", "none": "bypass", "discard": "discard"}


def expand(policy: Policy) -> list[PolicyRow]:
    """The SPD rows of one declared policy: its own direction, then the mirror if any."""
    selectors = policy_selectors(policy)
    action = _ACTIONS[policy.protocol]
    protect = action == "protect"
    lt = policy.lifetime
    tunnel = policy.tunnel
    common: dict[str, Any] = {
        "policy": policy.name,
        "action": action,
        "protocol": policy.protocol if protect else None,
        "encryption": policy.encryption if protect else "auto",
        "authentication": policy.authentication if protect else "auto",
        "esp_proposals": tuple(policy.esp_proposals) if protect and policy.esp_proposals else None,
        "level": policy.level,
        "mode": policy.mode,
        "peer": policy.peer,
        "pfs_group": policy.pfs_group,
        "lifetime": (lt.time, lt.bytes, lt.packets, lt.rekey_margin),
        "replay_window": policy.replay_window,
        "esn": policy.esn,
        "udp_encapsulation": policy.udp_encapsulation,
        "start": policy.start,
        "priority": policy.priority,
        "mirrored": policy.mirror,
    }
    local = str(tunnel.local) if tunnel and tunnel.local else None
    remote = str(tunnel.remote) if tunnel and tunnel.remote else None
    rows = [
        PolicyRow(
            name=f"{policy.name}.{policy.direction}",
            direction=policy.direction,
            selectors=selectors,
            tunnel_local=local,
            tunnel_remote=remote,
            **common,
        )
    ]
    if policy.mirror:
        other = "in" if policy.direction == "out" else "out"
        rows.append(
            PolicyRow(
                name=f"{policy.name}.{other}",
                direction=other,
                selectors=tuple(s.reversed() for s in selectors),
                tunnel_local=local,
                tunnel_remote=remote,
                **common,
            )
        )
    return rows


def ordered(rows: list[PolicyRow]) -> list[PolicyRow]:
    """Rows in SPD order (see the module docstring)."""
    return sorted(rows, key=PolicyRow.order_key)
