"""Cross-check with an independent implementation: scapy's ``SecurityAssociation``
decrypts and verifies what this code emits, and this code decapsulates what scapy emits,
for every suite both support x tunnel/transport x IPv4/IPv6 x ESN on/off x UDP
encapsulation on/off (ESP), and AH in both modes and IP versions with ESN on/off."""

from __future__ import annotations

import itertools
import os

import pytest

from ipsecconf.esp import api

scapy_ipsec = pytest.importorskip(
    "scapy.layers.ipsec", reason="scapy (test-only dependency) is not installed"
)
from scapy.layers.inet import IP, UDP  # noqa: E402
from scapy.layers.inet6 import IPv6  # noqa: E402
from scapy.packet import Raw, raw  # noqa: E402

SSA = scapy_ipsec.SecurityAssociation
ESP = scapy_ipsec.ESP
AH = scapy_ipsec.AH

# (our cipher word, our integrity word, scapy crypt name, scapy auth name, enc key, integ key)
ESP_SUITES = [
    ("aes128gcm", "none", "AES-GCM", "NULL", 20, 0),
    ("aes256gcm", "none", "AES-GCM", "NULL", 36, 0),
    ("chacha20poly1305", "none", "CHACHA20-POLY1305", "NULL", 36, 0),
    ("aes128", "sha256", "AES-CBC", "SHA2-256-128", 16, 32),
    ("aes192", "sha384", "AES-CBC", "SHA2-384-192", 24, 48),
    ("aes256", "sha512", "AES-CBC", "SHA2-512-256", 32, 64),
    ("aes128", "sha1", "AES-CBC", "HMAC-SHA1-96", 16, 20),
    ("3des", "sha1", "3DES", "HMAC-SHA1-96", 24, 20),
    ("des", "md5", "DES", "HMAC-MD5-96", 8, 16),
    ("null", "sha256", "NULL", "SHA2-256-128", 0, 32),
]
AH_SUITES = [
    ("sha1", "HMAC-SHA1-96", 20),
    ("md5", "HMAC-MD5-96", 16),
    ("sha256", "SHA2-256-128", 32),
    ("sha384", "SHA2-384-192", 48),
    ("sha512", "SHA2-512-256", 64),
]
HOSTS = {4: ("198.51.100.10", "203.0.113.20"), 6: ("2001:db8:1::10", "2001:db8:2::20")}
INNER = {4: ("198.51.100.77", "203.0.113.88"), 6: ("2001:db8:a::7", "2001:db8:b::8")}
HIGH = 5  # ESN high-order 32 bits used in the ESN cases


def _clear(version: int, mode: str, size: int = 61) -> bytes:
    src, dst = HOSTS[version] if mode == "transport" else INNER[version]
    l3 = IP(src=src, dst=dst) if version == 4 else IPv6(src=src, dst=dst)
    return raw(l3 / UDP(sport=40000, dport=5001) / Raw(load=os.urandom(size)))


def _ours(direction: str, proto: str, mode: str, version: int, esn: bool, udp: bool, **kw):
    src, dst = HOSTS[version]
    sa = api.make_sa(
        spi=0x2000AB,
        src=src,
        dst=dst,
        protocol=proto,
        mode=mode,
        direction=direction,
        esn=esn,
        udp_encap=udp,
        rng=os.urandom,
        **kw,
    )
    if esn:
        if direction == "out":
            sa.ctx.seq = (HIGH << 32) + 40
        else:
            sa.ctx.replay.top = (HIGH << 32) + 30
    return sa


def _scapy(proto, mode: str, version: int, esn: bool, udp: bool, **kw):
    src, dst = HOSTS[version]
    tunnel = None
    if mode == "tunnel":
        tunnel = IP(src=src, dst=dst) if version == 4 else IPv6(src=src, dst=dst)
    return SSA(
        proto,
        spi=0x2000AB,
        seq_num=41,
        tunnel_header=tunnel,
        nat_t_header=UDP(sport=4500, dport=4500) if udp else None,
        esn_en=esn,
        esn=HIGH if esn else 0,
        **kw,
    )


def _parse(wire: bytes, version: int):
    return IP(wire) if version == 4 else IPv6(wire)


@pytest.mark.parametrize(
    ("suite", "mode", "version", "esn", "udp"),
    list(
        itertools.product(ESP_SUITES, ("tunnel", "transport"), (4, 6), (False, True), (False, True))
    ),
    ids=lambda v: v[0] + "/" + v[1] if isinstance(v, tuple) else str(v),
)
def test_esp_interop(suite, mode, version, esn, udp) -> None:
    ours_c, ours_i, sc_c, sc_a, ek, ik = suite
    enc_key, integ_key = os.urandom(ek), os.urandom(ik)
    common = dict(encryption=ours_c, authentication=ours_i, enc_key=enc_key, integ_key=integ_key)
    sc_kw = dict(
        crypt_algo=sc_c, crypt_key=enc_key or None, auth_algo=sc_a, auth_key=integ_key or None
    )
    clear = _clear(version, mode)

    # ours -> scapy
    wire = api.encapsulate(_ours("out", "esp", mode, version, esn, udp, **common), clear)
    assert (
        raw(_scapy(ESP, mode, version, esn, udp, **sc_kw).decrypt(_parse(wire, version))) == clear
    )

    # scapy -> ours
    sc_out = _scapy(ESP, mode, version, esn, udp, **sc_kw)
    theirs = raw(sc_out.encrypt(_parse(clear, version)))
    assert api.decapsulate(_ours("in", "esp", mode, version, esn, udp, **common), theirs) == clear


@pytest.mark.parametrize(
    ("suite", "mode", "version", "esn"),
    list(itertools.product(AH_SUITES, ("tunnel", "transport"), (4, 6), (False, True))),
    ids=lambda v: v[0] if isinstance(v, tuple) else str(v),
)
def test_ah_interop(suite, mode, version, esn) -> None:
    ours_i, sc_a, ik = suite
    key = os.urandom(ik)
    clear = _clear(version, mode)
    wire = api.encapsulate(
        _ours("out", "ah", mode, version, esn, False, authentication=ours_i, integ_key=key), clear
    )
    sc = _scapy(AH, mode, version, esn, False, auth_algo=sc_a, auth_key=key)
    assert raw(sc.decrypt(_parse(wire, version))) == clear

    theirs = raw(
        _scapy(AH, mode, version, esn, False, auth_algo=sc_a, auth_key=key).encrypt(
            _parse(clear, version)
        )
    )
    inbound = _ours("in", "ah", mode, version, esn, False, authentication=ours_i, integ_key=key)
    assert api.decapsulate(inbound, theirs) == clear


def test_scapy_rejects_our_packet_with_a_flipped_icv_bit() -> None:
    """The oracle is not vacuous: scapy refuses a packet whose ICV we damaged."""
    key = os.urandom(32)
    out = _ours(
        "out",
        "esp",
        "tunnel",
        4,
        False,
        False,
        encryption="aes128",
        authentication="sha256",
        enc_key=os.urandom(16),
        integ_key=key,
    )
    wire = bytearray(api.encapsulate(out, _clear(4, "tunnel")))
    wire[-1] ^= 0x01
    sc = _scapy(
        ESP,
        "tunnel",
        4,
        False,
        False,
        crypt_algo="AES-CBC",
        crypt_key=out.config.enc_key,
        auth_algo="SHA2-256-128",
        auth_key=key,
    )
    with pytest.raises(scapy_ipsec.IPSecIntegrityError):
        sc.decrypt(IP(bytes(wire)))
