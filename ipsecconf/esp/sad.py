"""The user-space SAD: SAs by (SPI, destination, protocol) and by reqid (strongSwan
``ipsec_sa_mgr.c``; the operations follow the ``kernel_ipsec_t`` shape the engine's
dataplane port uses: get SPI, add, update, delete, query).

Inbound packets find their SA with one dict lookup on (SPI, destination, protocol).
Outbound traffic finds it through the protect policy's reqid: the newest Mature SA whose
selectors cover the flow, else a Dying one (still usable while its rekey runs).  A reserved
SPI is a Larval entry until :meth:`SaTable.add` installs keys; a deleted or hard-expired SA
stays visible as Dead for :data:`DEAD_VISIBLE_SECONDS`, then :meth:`SaTable.expire` purges
it.  Only hosts and UDP encapsulation may change in place (``kernel_ipsec_update_sa_t``).
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass

from ipsecconf.crypto.transforms import Rng
from ipsecconf.esp.errors import SaConfigError
from ipsecconf.esp.sa import (
    Counters,
    Protocol,
    SaConfig,
    SaEvent,
    SaState,
    SecurityAssociation,
    UdpEncap,
)
from ipsecconf.esp.spd import Direction

DEAD_VISIBLE_SECONDS = 60.0
# Bound once for the per-packet lookup (an enum member costs a slow class lookup in 3.11).
_MATURE = SaState.MATURE
_DYING = SaState.DYING
SaKey = tuple[int, bytes, int]
"""(SPI, packed destination address, protocol number)."""


@dataclass(slots=True)
class LarvalSa:
    """A reserved SPI while IKE negotiates (state Larval)."""

    spi: int
    dst: str
    protocol: Protocol
    reqid: int
    created: float
    state: SaState = SaState.LARVAL


def sa_key(spi: int, dst: str | bytes, protocol: int) -> SaKey:
    """The SAD key of an SA."""
    packed = dst if isinstance(dst, bytes) else ipaddress.ip_address(dst).packed
    return (spi, packed, int(protocol))


class SaTable:
    """All SAs of the node."""

    def __init__(self, rng: Rng) -> None:
        self._rng = rng
        self._sas: dict[SaKey, SecurityAssociation | LarvalSa] = {}
        self._out: dict[int, list[SecurityAssociation]] = {}
        self.events: list[SaEvent] = []
        """Expiry events of every SA, drained by :meth:`drain_events`."""
        self.generation = 0
        """Counts changes to the outbound SAs, for caches of :meth:`outbound`."""

    # -- kernel_ipsec_t-shaped operations ------------------------------------------
    def reserve(
        self, spi: int, dst: str, protocol: Protocol, now: float, reqid: int = 0
    ) -> LarvalSa:
        """Reserve an SPI (get_spi): a Larval entry until :meth:`add`."""
        key = sa_key(spi, dst, protocol)
        if key in self._sas:
            raise SaConfigError(f"SPI 0x{spi:08x} is already in use for {dst}")
        larval = LarvalSa(spi, dst, protocol, reqid, now)
        self._sas[key] = larval
        return larval

    def get_spi(self, dst: str, protocol: Protocol, now: float, reqid: int = 0) -> int:
        """Allocate and reserve a random unused SPI (256 and up, RFC 4303 section 2.1)
        drawn from the injected RNG."""
        while True:
            spi = int.from_bytes(self._rng(4), "big")
            if spi >= 256 and sa_key(spi, dst, protocol) not in self._sas:
                self.reserve(spi, dst, protocol, now, reqid)
                return spi

    def add(self, config: SaConfig, now: float) -> SecurityAssociation:
        """Install an SA (replacing its Larval reservation)."""
        key = sa_key(config.spi, config.dst, config.protocol)
        old = self._sas.get(key)
        if old is not None and not isinstance(old, LarvalSa):
            raise SaConfigError(f"SA 0x{config.spi:08x} for {config.dst} already exists")
        sa = SecurityAssociation(config, now, self._rng, self.events)
        self._sas[key] = sa
        if config.direction is Direction.OUT:
            self._out.setdefault(config.reqid, []).insert(0, sa)
            self.generation += 1
        return sa

    def update(
        self,
        spi: int,
        dst: str,
        protocol: Protocol,
        *,
        new_src: str | None = None,
        new_dst: str | None = None,
        encap: UdpEncap | bool | None = False,
    ) -> SecurityAssociation:
        """Change hosts or UDP encapsulation in place (everything else is a replace).
        ``encap=False`` keeps the current encapsulation; ``None`` removes it."""
        key = sa_key(spi, dst, protocol)
        sa = self._sas.get(key)
        if not isinstance(sa, SecurityAssociation):
            raise SaConfigError(f"no installed SA 0x{spi:08x} for {dst}")
        changes: dict[str, object] = {}
        if new_src is not None:
            changes["src"] = new_src
        if new_dst is not None:
            changes["dst"] = new_dst
        if encap is not False:
            changes["encap"] = encap
        config = dataclasses.replace(sa.config, **changes)  # type: ignore[arg-type]
        fresh = SecurityAssociation(config, sa.created, self._rng, self.events)
        # Keep keys' state: sequence numbers, replay window, counters, lifetimes.
        fresh.adopt(sa)
        del self._sas[key]
        self._sas[sa_key(spi, config.dst, protocol)] = fresh
        if config.direction is Direction.OUT:
            lst = self._out.get(config.reqid, [])
            self._out[config.reqid] = [fresh if s is sa else s for s in lst]
            self.generation += 1
        return fresh

    def delete(self, spi: int, dst: str, protocol: Protocol, now: float) -> None:
        """Delete an SA: it turns Dead and stays visible for 60 seconds."""
        key = sa_key(spi, dst, protocol)
        sa = self._sas.get(key)
        if sa is None:
            raise SaConfigError(f"no SA 0x{spi:08x} for {dst}")
        if isinstance(sa, LarvalSa):
            del self._sas[key]
            return
        sa.kill(now)
        self._unlink_out(sa)

    def get(self, key: SaKey) -> SecurityAssociation | LarvalSa | None:
        """The entry for a key (the inbound fast path)."""
        return self._sas.get(key)

    def query(self, spi: int, dst: str, protocol: Protocol) -> Counters:
        """An SA's counters."""
        sa = self._sas.get(sa_key(spi, dst, protocol))
        if not isinstance(sa, SecurityAssociation):
            raise SaConfigError(f"no installed SA 0x{spi:08x} for {dst}")
        return sa.counters

    def outbound(
        self, reqid: int, version: int, src: int, dst: int, proto: int, sport: int, dport: int
    ) -> SecurityAssociation | None:
        """The SA to protect a flow with: newest Mature covering it, else Dying."""
        dying = None
        for sa in self._out.get(reqid, ()):
            state = sa.state
            live = state is _MATURE or state is _DYING
            if live and sa.allows(version, src, dst, proto, sport, dport):
                if state is _MATURE:
                    return sa
                dying = dying or sa
        return dying

    def pending(self, reqid: int) -> bool:
        """True while a Larval reservation exists for ``reqid`` (negotiation running)."""
        return any(isinstance(s, LarvalSa) and s.reqid == reqid for s in self._sas.values())

    def expire(self, now: float) -> None:
        """Apply time lifetimes and purge SAs Dead for longer than 60 seconds."""
        for key, sa in list(self._sas.items()):
            if isinstance(sa, LarvalSa):
                continue
            sa.expire(now)
            if sa.state is SaState.DEAD:
                self._unlink_out(sa)
                if sa.dead_since is not None and now - sa.dead_since >= DEAD_VISIBLE_SECONDS:
                    del self._sas[key]

    def drain_events(self) -> list[SaEvent]:
        """Expiry events since the last call, oldest first."""
        out, self.events[:] = list(self.events), []
        return out

    def _unlink_out(self, sa: SecurityAssociation) -> None:
        lst = self._out.get(sa.config.reqid)
        if lst and sa in lst:
            lst.remove(sa)
            self.generation += 1

    def __iter__(self) -> Iterator[SecurityAssociation | LarvalSa]:
        return iter(list(self._sas.values()))

    def __len__(self) -> int:
        return len(self._sas)
