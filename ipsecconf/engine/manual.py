"""Manually keyed SAs in the running engine (``manual_sas:``; no IKE, no lifetimes).

Each stored definition becomes an SA of the dataplane with its stored keys.  It serves the
peerless protect policy pair whose endpoints it carries: outbound when the pair's
``out`` side runs from its source to its destination (the tunnel's endpoints in tunnel
mode, the selectors' addresses in transport mode), inbound when the pair runs the other
way.  The outbound SA takes the pair's reqid, so the SPD finds it instead of asking IKE;
the inbound one checks decapsulated packets against the pair's mirrored selectors.  A
definition that serves no pair is not installed (logged): an SA that no policy uses would
only be a way around the SPD.

:class:`ManualSas` keeps the dataplane in step with the configuration: a definition
added is installed, one removed or changed (other SPI, algorithms or keys) is deleted or
replaced, and an unchanged one keeps its sequence numbers, replay window and counters.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ipsecconf.esp.errors import SaConfigError
from ipsecconf.esp.sa import Mode, Protocol, SaConfig, UdpEncap
from ipsecconf.esp.sad import SaKey, SaTable, sa_key
from ipsecconf.esp.spd import Direction
from ipsecconf.model.algorithms import CIPHERS, INTEGRITIES
from ipsecconf.model.selectors import Endpoint, Selector

if TYPE_CHECKING:
    from ipsecconf.engine.livecfg import PairSpec
    from ipsecconf.engine.records import SaBook

log = logging.getLogger("ipsecconf.engine")

NATT_PORT = 4500


@dataclass(frozen=True, slots=True)
class ManualSpec:
    """One manual SA as the dataplane installs it."""

    name: str
    pair: str
    config: SaConfig = field(repr=False)
    digest: str
    """Definition, pair binding and a hash of the keys: a change means reinstall."""


def _holds(endpoint: Endpoint, address: str) -> bool:
    net = endpoint.network
    return net is None or ipaddress.ip_address(address) in net


def _runs(pair: PairSpec, src: str, dst: str) -> bool:
    """Does the pair's ``out`` side run from ``src`` to ``dst``?"""
    if pair.child.mode.value == "tunnel":
        return (pair.local, pair.remote) == (src, dst)
    return any(_holds(s.source, src) and _holds(s.destination, dst) for s in pair.child.selectors)


def _bind(
    data: Mapping[str, Any], pairs: Mapping[str, PairSpec]
) -> tuple[PairSpec, Direction] | None:
    """The peerless pair the definition serves, and whether it is its outbound SA."""
    src, dst = str(data["source"]), str(data["destination"])
    protocol, mode = str(data.get("protocol", "esp")), str(data.get("mode", "transport"))
    for pair in sorted(pairs.values(), key=lambda p: p.name):
        if pair.peer is not None or pair.child.protocol.name.lower() != protocol:
            continue
        if pair.child.mode.value != mode:
            continue
        if _runs(pair, src, dst):
            return pair, Direction.OUT
        if _runs(pair, dst, src):
            return pair, Direction.IN
    return None


def specs(
    definitions: Mapping[str, Mapping[str, Any]],
    secret: Callable[[str], bytes | None],
    pairs: Mapping[str, PairSpec],
) -> dict[str, ManualSpec]:
    """The installable manual SAs of ``definitions`` (name -> stored data).

    Raises :class:`SaConfigError` for a definition the dataplane refuses (a wrong key
    length, a reserved SPI), naming it, so that an apply carrying it rolls back.
    """
    out: dict[str, ManualSpec] = {}
    for name, data in sorted(definitions.items()):
        bound = _bind(data, pairs)
        if bound is None:
            log.warning(
                "manual SA %s serves no peerless protect policy between %s and %s: not installed",
                name,
                data.get("source"),
                data.get("destination"),
            )
            continue
        pair, direction = bound
        enc_key = secret(f"sa.{name}#encryption_key") or b""
        integ_key = secret(f"sa.{name}#authentication_key") or b""
        proto = Protocol.AH if data.get("protocol") == "ah" else Protocol.ESP
        encap = None
        if data.get("udp_encapsulation"):
            encap = UdpEncap(NATT_PORT, NATT_PORT)
        selectors: tuple[Selector, ...] = pair.child.selectors
        if direction is Direction.IN:
            selectors = tuple(s.reversed() for s in selectors)
        try:
            config = SaConfig(
                spi=int(data["spi"]),
                direction=direction,
                src=str(data["source"]),
                dst=str(data["destination"]),
                protocol=proto,
                mode=Mode(str(data.get("mode", "transport"))),
                cipher=None if proto is Protocol.AH else CIPHERS[str(data["encryption"])],
                enc_key=enc_key,
                integrity=INTEGRITIES[str(data.get("authentication", "none"))],
                integ_key=integ_key,
                esn=bool(data.get("esn", False)),
                replay_window=int(data.get("replay_window", 64)),
                manual=True,
                encap=encap,
                reqid=pair.reqid,
                selectors=selectors,
            )
        except SaConfigError as exc:
            raise SaConfigError(f"manual SA {name}: {exc}") from None
        keys = hashlib.sha256(len(enc_key).to_bytes(2, "big") + enc_key + integ_key).hexdigest()
        digest = repr((sorted(data.items()), pair.name, pair.reqid, direction.value, keys))
        out[name] = ManualSpec(name, pair.name, config, digest)
    return out


class ManualSas:
    """The manual SAs installed in one engine's SAD."""

    def __init__(self, sad: SaTable, book: SaBook) -> None:
        self.sad = sad
        self.book = book
        self.installed: dict[str, tuple[str, SaKey]] = {}
        """name -> (digest, SAD key)."""

    def sync(self, wanted: Mapping[str, ManualSpec], now: float) -> None:
        """Install, replace or delete so that the SAD holds exactly ``wanted``."""
        for name, (digest, key) in list(self.installed.items()):
            spec = wanted.get(name)
            if spec is not None and spec.digest == digest:
                continue
            spi, dst, proto = key
            with contextlib.suppress(SaConfigError):  # already gone
                self.sad.delete(spi, str(ipaddress.ip_address(dst)), Protocol(proto), now)
            del self.installed[name]
            log.info("manual SA %s removed from the dataplane", name)
        for name, spec in wanted.items():
            if name in self.installed:
                continue
            c = spec.config
            sa = self.sad.add(c, now)
            key = sa_key(c.spi, c.dst, c.protocol)
            self.installed[name] = (spec.digest, key)
            self.book.adopt_manual(sa, name)
            log.info(
                "manual SA %s installed for policy %s: %s %s %s, SPI 0x%08x %s",
                name,
                spec.pair,
                c.protocol.name,
                c.mode.value,
                c.direction.value,
                c.spi,
                f"{c.src} -> {c.dst}",
            )
