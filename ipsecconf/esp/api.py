"""The small public API: build one SA from algorithm names and keys, and encapsulate or
decapsulate a packet with it, e.g. to check this implementation's packets against another
one (scapy, strongSwan, a pcap)::

    from ipsecconf.esp import api
    out = api.make_sa(spi=0x1001, src="198.51.100.1", dst="203.0.113.1",
                      encryption="aes128gcm", enc_key=bytes(20), rng=os.urandom)
    inn = api.make_sa(spi=0x1001, src="198.51.100.1", dst="203.0.113.1",
                      encryption="aes128gcm", enc_key=bytes(20), direction="in")
    wire = api.encapsulate(out, clear_ip_packet)
    assert api.decapsulate(inn, wire) == clear_ip_packet

Algorithm words are the YAML ones (``aes128``, ``aes256gcm``, ``chacha20poly1305``,
``3des``, ``null``; ``sha256``, ``sha1``, ``md5``, ``none``...) or IANA transform ids.
Keys include the 4-byte salt for AEAD ciphers (RFC 4106 / RFC 7634).  ``now`` is the
caller's clock (seconds); lifetimes count from the ``now`` given at creation.
"""

from __future__ import annotations

from ipsecconf.crypto import registry
from ipsecconf.crypto.transforms import Rng
from ipsecconf.esp import ip
from ipsecconf.esp.errors import SaConfigError
from ipsecconf.esp.sa import (
    Lifetimes,
    Mode,
    Protocol,
    SaConfig,
    SecurityAssociation,
    UdpEncap,
)
from ipsecconf.esp.spd import Direction
from ipsecconf.model.selectors import Selector


def _no_rng(n: int) -> bytes:
    raise SaConfigError("this suite needs random IVs: pass rng= to make_sa")


def make_sa(
    *,
    spi: int,
    src: str,
    dst: str,
    encryption: str | int | None = "aes128gcm",
    authentication: str | int = "none",
    enc_key: bytes = b"",
    integ_key: bytes = b"",
    protocol: str = "esp",
    mode: str = "tunnel",
    direction: str = "out",
    esn: bool = False,
    replay_window: int = 64,
    manual: bool = False,
    udp_encap: bool | tuple[int, int] = False,
    lifetimes: Lifetimes | None = None,
    reqid: int = 0,
    selectors: tuple[Selector, ...] = (),
    rng: Rng | None = None,
    now: float = 0.0,
) -> SecurityAssociation:
    """One SA ready to use.  ``rng(n) -> bytes`` is needed by CBC suites (fresh IVs);
    AEAD suites use the sequence number as IV.  ``udp_encap=True`` means ports 4500/4500,
    or give ``(sport, dport)``."""
    proto = Protocol.AH if protocol.lower() == "ah" else Protocol.ESP
    if proto is Protocol.ESP and encryption is None:
        raise SaConfigError("ESP needs an encryption algorithm (use 'null' for none)")
    cipher = None
    if proto is Protocol.ESP and encryption is not None:
        if isinstance(encryption, int):
            raise SaConfigError("give the cipher as a word; IANA ids need a key length")
        cipher = registry.esp_cipher(encryption)
    integ = (
        registry.ah_integrity(authentication)
        if proto is Protocol.AH
        else registry.esp_integrity(authentication)
    )
    encap = None
    if udp_encap:
        encap = UdpEncap(*udp_encap) if isinstance(udp_encap, tuple) else UdpEncap()
    config = SaConfig(
        spi=spi,
        direction=Direction(direction),
        src=src,
        dst=dst,
        protocol=proto,
        mode=Mode(mode),
        cipher=cipher,
        enc_key=enc_key,
        integrity=integ,
        integ_key=integ_key,
        esn=esn,
        replay_window=replay_window,
        manual=manual,
        encap=encap,
        lifetimes=lifetimes or Lifetimes(),
        reqid=reqid,
        selectors=selectors,
    )
    return SecurityAssociation(config, now, rng or _no_rng)


def encapsulate(sa: SecurityAssociation, packet: bytes, now: float = 0.0) -> bytes:
    """Protect a clear IP packet with an outbound SA; returns the IP packet to send.
    Raises :class:`~ipsecconf.esp.errors.EspError` (with a ``reason``) on failure."""
    return sa.encapsulate(packet, now)


def decapsulate(sa: SecurityAssociation, packet: bytes, now: float = 0.0) -> bytes:
    """Verify and strip a protected IP packet with an inbound SA; returns the clear packet
    (the inner packet in tunnel mode).  Raises :class:`~ipsecconf.esp.errors.EspError`."""
    return sa.decapsulate(packet, ip.parse(packet), now)
