"""In-memory initiator/responder pairs (aioquic/h11 ConnectionPair, strongSwan's
exchange_test_helper): two IkeSa objects wired back to back with a seeded rng and a
fixed, advanced-by-hand clock.  Datagrams can be lost or duplicated at random (seeded).
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from ipsecconf.ike.config import ChildConfig, Identity, IkeConfig, Mode, PskTable
from ipsecconf.ike.events import IkeEvent
from ipsecconf.ike.sa import Datagram, IkeSa
from ipsecconf.model.proposals import Proposal, child_proposals, parse
from ipsecconf.model.selectors import Endpoint, Selector

ADDR_I = ipaddress.ip_address("198.51.100.1")
ADDR_R = ipaddress.ip_address("198.51.100.2")
PSK = b"correct horse battery staple"


def seeded_rng(seed: int) -> Callable[[int], bytes]:
    """A deterministic rng for replayable tests."""
    r = random.Random(seed)
    return r.randbytes


def host_child(
    name: str = "host",
    *,
    local: str = "198.51.100.1",
    remote: str = "198.51.100.2",
    esp: list[Proposal] | None = None,
    mode: Mode = Mode.TRANSPORT,
    protocol: int = 0,
    ports: tuple[int, int] = (0, 65535),
) -> ChildConfig:
    """A child protecting traffic between ``local`` and ``remote``."""
    return ChildConfig(
        name=name,
        selectors=(
            Selector(
                Endpoint.parse(local),
                Endpoint.parse(remote).__class__(Endpoint.parse(remote).network, ports),
                protocol,
            ),
        ),
        proposals=tuple(esp or child_proposals("esp", "auto", "auto")),
        mode=mode,
    )


def mirror(child: ChildConfig) -> ChildConfig:
    """The peer's view of a child: selectors reversed."""
    return ChildConfig(
        name=child.name,
        selectors=tuple(s.reversed() for s in child.selectors),
        proposals=child.proposals,
        mode=child.mode,
        populate_from_packet=child.populate_from_packet,
    )


def configs(
    *,
    ike: str | None = "aes256gcm-prfsha256-x25519",
    ike_r: str | None = None,
    psk_i: bytes = PSK,
    psk_r: bytes = PSK,
    child_i: ChildConfig | None = None,
    child_r: ChildConfig | None = None,
    force_encap: bool = False,
    remote_id_i: Identity | None = None,
) -> tuple[IkeConfig, IkeConfig]:
    """A matching (initiator, responder) config pair."""
    prop_i = (parse(ike, "ike"),) if ike else None
    prop_r = (parse(ike_r, "ike"),) if ike_r else prop_i
    ci = child_i or host_child()
    cr = child_r or mirror(ci)
    extra_i = {"proposals": prop_i} if prop_i else {}
    extra_r = {"proposals": prop_r} if prop_r else {}
    init = IkeConfig(
        local_address=ADDR_I,
        remote_address=ADDR_R,
        psk=PskTable({str(ADDR_R): psk_i}),
        children=(ci,),
        force_encap=force_encap,
        remote_id=remote_id_i,
        **extra_i,  # type: ignore[arg-type]
    )
    resp = IkeConfig(
        local_address=ADDR_R,
        remote_address=ADDR_I,
        psk=PskTable({str(ADDR_I): psk_r}),
        children=(cr,),
        **extra_r,  # type: ignore[arg-type]
    )
    return init, resp


@dataclass
class Pair:
    """Two SAs and the wire between them."""

    initiator: IkeSa
    responder: IkeSa
    now: float = 0.0
    loss: float = 0.0
    duplicate: float = 0.0
    wire: random.Random = field(default_factory=lambda: random.Random(0))
    events_i: list[IkeEvent] = field(default_factory=list)
    events_r: list[IkeEvent] = field(default_factory=list)
    delivered: int = 0

    def _deliver(self, datagrams: list[Datagram], to: IkeSa, source: str) -> None:
        for d in datagrams:
            if self.loss and self.wire.random() < self.loss:
                continue
            copies = 2 if self.duplicate and self.wire.random() < self.duplicate else 1
            for _ in range(copies):
                to.receive_datagram(d.data, (source, d.local_port), self.now)
                self.delivered += 1

    def transfer(self) -> int:
        """Move every pending datagram once in each direction; how many moved."""
        moved = 0
        out_i = self.initiator.datagrams_to_send(self.now)
        moved += len(out_i)
        self._deliver(out_i, self.responder, str(ADDR_I))
        out_r = self.responder.datagrams_to_send(self.now)
        moved += len(out_r)
        self._deliver(out_r, self.initiator, str(ADDR_R))
        self._collect()
        return moved

    def _collect(self) -> None:
        while (e := self.initiator.next_event()) is not None:
            self.events_i.append(e)
        while (e := self.responder.next_event()) is not None:
            self.events_r.append(e)

    def run(self, max_steps: int = 200) -> None:
        """Exchange datagrams, firing timers, until both sides are quiet."""
        for _ in range(max_steps):
            if self.transfer():
                continue
            timers = [t for t in (self.initiator.get_timer(), self.responder.get_timer()) if t]
            if not timers:
                break
            self.now = max(self.now, min(timers))
            self.initiator.handle_timer(self.now)
            self.responder.handle_timer(self.now)
        self._collect()


def make_pair(config_i: IkeConfig, config_r: IkeConfig, *, seed: int = 1, **wire: float) -> Pair:
    """A connected pair (initiator already started)."""
    init = IkeSa(config_i, initiator=True, rng=seeded_rng(seed))
    resp = IkeSa(config_r, initiator=False, rng=seeded_rng(seed + 1000))
    pair = Pair(init, resp, **wire)  # type: ignore[arg-type]
    pair.initiator.connect(pair.now)
    return pair
