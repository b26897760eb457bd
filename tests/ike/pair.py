"""In-memory initiator/responder pairs (aioquic/h11 ConnectionPair, strongSwan's
exchange_test_helper): two IkeSa objects wired back to back with a seeded rng and a
fixed, advanced-by-hand clock.  Datagrams can be lost or duplicated at random (seeded).

Each side is a small engine: IKE SAs born from rekeys (``IkeSaRekeyed``) join the side's
list, and a datagram goes to the SA whose SPIs it names, as the real engine routes.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from ipsecconf.ike.config import ChildConfig, Identity, IkeConfig, Mode, PskTable
from ipsecconf.ike.context import IkeState
from ipsecconf.ike.events import IkeEvent, IkeSaRekeyed
from ipsecconf.ike.sa import Datagram, IkeSa, route
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
    sas_i: list[IkeSa] = field(default_factory=list)
    """Every IKE SA of the initiator's side: the first, then those born from rekeys."""
    sas_r: list[IkeSa] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sas_i = self.sas_i or [self.initiator]
        self.sas_r = self.sas_r or [self.responder]

    @staticmethod
    def _target(data: bytes, sas: list[IkeSa]) -> IkeSa:
        info = route(data)
        if info is not None and info.spi_r != bytes(8):
            for sa in sas:
                if sa.spi_i == info.spi_i and sa.spi_r == info.spi_r:
                    return sa
        return sas[0]

    def _deliver(
        self, datagrams: list[Datagram], to_side: list[IkeSa] | IkeSa, source: str
    ) -> None:
        sas = to_side if isinstance(to_side, list) else [to_side]
        for d in datagrams:
            if self.loss and self.wire.random() < self.loss:
                continue
            copies = 2 if self.duplicate and self.wire.random() < self.duplicate else 1
            for _ in range(copies):
                to = self._target(d.data, sas)
                to.receive_datagram(d.data, (source, d.local_port), self.now)
                self.delivered += 1

    def transfer(self) -> int:
        """Move every pending datagram once in each direction; how many moved."""
        moved = 0
        for sa in list(self.sas_i):
            out = sa.datagrams_to_send(self.now)
            moved += len(out)
            self._deliver(out, self.sas_r, str(ADDR_I))
        self._collect()
        for sa in list(self.sas_r):
            out = sa.datagrams_to_send(self.now)
            moved += len(out)
            self._deliver(out, self.sas_i, str(ADDR_R))
        self._collect()
        return moved

    def _collect(self) -> None:
        for sas, events in ((self.sas_i, self.events_i), (self.sas_r, self.events_r)):
            for sa in list(sas):
                while (e := sa.next_event()) is not None:
                    events.append(e)
                    if isinstance(e, IkeSaRekeyed):
                        sas.append(e.successor)

    def run(self, max_steps: int = 200) -> None:
        """Exchange datagrams, firing timers, until both sides are quiet."""
        for _ in range(max_steps):
            if self.transfer():
                continue
            every = self.sas_i + self.sas_r
            timers = [t for t in (sa.get_timer() for sa in every) if t]
            if not timers:
                break
            self.now = max(self.now, min(timers))
            for sa in every:
                sa.handle_timer(self.now)
        self._collect()

    def live(self, side: str) -> list[IkeSa]:
        """The established IKE SAs of one side (``"i"`` or ``"r"``)."""
        sas = self.sas_i if side == "i" else self.sas_r
        return [sa for sa in sas if sa.state is IkeState.ESTABLISHED]


def make_pair(config_i: IkeConfig, config_r: IkeConfig, *, seed: int = 1, **wire: float) -> Pair:
    """A connected pair (initiator already started)."""
    init = IkeSa(config_i, initiator=True, rng=seeded_rng(seed))
    resp = IkeSa(config_r, initiator=False, rng=seeded_rng(seed + 1000))
    pair = Pair(init, resp, **wire)  # type: ignore[arg-type]
    pair.initiator.connect(pair.now)
    return pair
