"""Shared builders for the ESP tests: clear packets and matching SA pairs."""

from __future__ import annotations

import ipaddress
import os
import struct

from ipsecconf.esp import api, ip
from ipsecconf.esp.sa import SecurityAssociation
from ipsecconf.model.algorithms import CIPHERS, INTEGRITIES

HOSTS = {4: ("198.51.100.10", "203.0.113.20"), 6: ("2001:db8:1::10", "2001:db8:2::20")}
INNER = {4: ("198.51.100.77", "203.0.113.88"), 6: ("2001:db8:a::7", "2001:db8:b::8")}

# (protocol, cipher, integrity) for every suite; CBC and NULL always with an HMAC.
ESP_SUITES = [
    ("esp", "aes128gcm", "none"),
    ("esp", "aes256gcm", "none"),
    ("esp", "chacha20poly1305", "none"),
    ("esp", "aes128", "sha256"),
    ("esp", "aes192", "sha384"),
    ("esp", "aes256", "sha512"),
    ("esp", "3des", "sha1"),
    ("esp", "des", "md5"),
    ("esp", "null", "sha256"),
]
AH_SUITES = [("ah", None, w) for w in ("md5", "sha1", "sha256", "sha384", "sha512")]
ALL_SUITES = ESP_SUITES + AH_SUITES


def packed(addr: str) -> bytes:
    return ipaddress.ip_address(addr).packed


def clear_packet(
    version: int,
    src: str,
    dst: str,
    payload: bytes,
    proto: int = 17,
    sport: int = 40000,
    dport: int = 5001,
    df: bool = False,
) -> bytes:
    """An IPv4/IPv6 packet with a UDP-like header (ports) and ``payload``."""
    l4 = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    if version == 4:
        return ip.ipv4_header(packed(src), packed(dst), proto, len(l4), df=df) + l4
    return ip.ipv6_header(packed(src), packed(dst), proto, len(l4)) + l4


def sa_pair(
    suite: tuple[str, str | None, str],
    mode: str,
    version: int,
    *,
    esn: bool = False,
    udp: bool = False,
    **kw: object,
) -> tuple[SecurityAssociation, SecurityAssociation]:
    """An outbound SA and the matching inbound SA with the same fresh keys."""
    proto, enc, integ = suite
    ek = os.urandom(CIPHERS[enc].key_bytes) if enc else b""
    ik = os.urandom(INTEGRITIES[integ].key_bytes)
    src, dst = HOSTS[version]
    common = dict(
        spi=0x10001,
        src=src,
        dst=dst,
        protocol=proto,
        encryption=enc,
        authentication=integ,
        enc_key=ek,
        integ_key=ik,
        mode=mode,
        esn=esn,
        udp_encap=udp if proto == "esp" else False,
        rng=os.urandom,
    )
    common.update(kw)
    out = api.make_sa(direction="out", **common)  # type: ignore[arg-type]
    inn = api.make_sa(direction="in", **common)  # type: ignore[arg-type]
    return out, inn


def packet_for(mode: str, version: int, payload: bytes, **kw: object) -> bytes:
    """A clear packet suited to an SA of ``mode``: between the hosts in transport mode."""
    src, dst = HOSTS[version] if mode == "transport" else INNER[version]
    return clear_packet(version, src, dst, payload, **kw)  # type: ignore[arg-type]
