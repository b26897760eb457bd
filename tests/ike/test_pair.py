"""In-memory initiator/responder pairs: IKE SA + first CHILD SA for every group and suite."""

from __future__ import annotations

import ipaddress

import pytest

from ipsecconf.ike.config import ChildConfig, Identity, IkeConfig, Mode, PskTable, TriggerPacket
from ipsecconf.ike.constants import NON_ESP_MARKER, ProtocolId
from ipsecconf.ike.context import IkeState
from ipsecconf.ike.errors import DropReason
from ipsecconf.ike.events import (
    ChildSaEstablished,
    IkeSaDeleted,
    IkeSaEstablished,
)
from ipsecconf.model.algorithms import DH_GROUPS
from ipsecconf.model.proposals import child_proposals, default_ike, parse
from ipsecconf.model.selectors import Endpoint, Selector
from tests.ike.pair import (
    ADDR_I,
    ADDR_R,
    PSK,
    Pair,
    configs,
    host_child,
    make_pair,
    mirror,
    seeded_rng,
)


def established(
    pair: Pair,
) -> tuple[IkeSaEstablished, ChildSaEstablished, IkeSaEstablished, ChildSaEstablished]:
    """Both sides' events, checked for consistency with each other."""
    assert [type(e) for e in pair.events_i] == [IkeSaEstablished, ChildSaEstablished], pair.events_i
    assert [type(e) for e in pair.events_r] == [IkeSaEstablished, ChildSaEstablished], pair.events_r
    ike_i, child_i = pair.events_i
    ike_r, child_r = pair.events_r
    assert isinstance(ike_i, IkeSaEstablished) and isinstance(ike_r, IkeSaEstablished)
    assert isinstance(child_i, ChildSaEstablished) and isinstance(child_r, ChildSaEstablished)
    assert (ike_i.spi_i, ike_i.spi_r) == (ike_r.spi_i, ike_r.spi_r)
    assert ike_i.algorithms == ike_r.algorithms
    assert child_i.spi_in == child_r.spi_out and child_i.spi_out == child_r.spi_in
    assert child_i.encr_key_out == child_r.encr_key_in
    assert child_i.integ_key_out == child_r.integ_key_in
    assert child_i.encr_key_in == child_r.encr_key_out
    assert (child_i.encr_key_in + child_i.integ_key_in) != (
        child_i.encr_key_out + child_i.integ_key_out
    )
    assert child_i.algorithms == child_r.algorithms
    assert child_i.local_ts == child_r.remote_ts and child_i.remote_ts == child_r.local_ts
    assert pair.initiator.state is IkeState.ESTABLISHED
    assert pair.responder.state is IkeState.ESTABLISHED
    assert not pair.initiator.drops and not pair.responder.drops
    return ike_i, child_i, ike_r, child_r


def test_established_events_carry_every_field() -> None:
    """Each field of both sides' events holds what it names (the core builds them
    positionally, in field order)."""
    ci, cr = configs()
    pair = make_pair(ci, cr)
    pair.run()
    ike_i, child_i, ike_r, child_r = established(pair)
    init, resp = pair.initiator, pair.responder
    for ike, sa, config in ((ike_i, init, ci), (ike_r, resp, cr)):
        assert (ike.spi_i, ike.spi_r) == (init.spi_i, init.spi_r)
        assert ike.initiator is sa.initiator
        assert ike.local_id == config.effective_local_id
        assert ike.remote_id == Identity.address(config.remote_address)
        assert (ike.local_address, ike.local_port) == (config.local_address, 500)
        assert (ike.remote_address, ike.remote_port) == (config.remote_address, 500)
        assert ike.nat_local is ike.nat_remote is ike.udp_encap is False
        assert ike.peer_auth_method == 2  # shared key MIC
    assert ike_r.initial_contact and not ike_i.initial_contact
    for child, sa, config in ((child_i, init, ci), (child_r, resp, cr)):
        assert child.name == config.children[0].name
        assert child.protocol == ProtocolId.ESP and child.mode is Mode.TRANSPORT
        assert child.spi_in == sa.children[0].spi_in and child.spi_out == sa.children[0].spi_out
        assert child.selectors and child.local_ts and child.remote_ts
        assert (child.local_address, child.local_port) == (config.local_address, 500)
        assert (child.remote_address, child.remote_port) == (config.remote_address, 500)
        assert (child.ike_spi_i, child.ike_spi_r) == (init.spi_i, init.spi_r)
        assert child.udp_encap is False and child.rekey_of is None
    assert len(child_i.encr_key_in) == child_i.algorithms.cipher.key_bytes  # type: ignore[union-attr]


@pytest.mark.parametrize("group", list(DH_GROUPS))
def test_every_dh_group_establishes(group: str) -> None:
    ci, cr = configs(ike=f"aes128-sha256-{group}")
    pair = make_pair(ci, cr)
    pair.run()
    ike_i, child_i, _, _ = established(pair)
    assert ike_i.algorithms.dh == DH_GROUPS[group]
    assert child_i.algorithms.cipher is not None


@pytest.mark.parametrize(
    "ike",
    [
        "aes128-sha256-x25519",
        "aes256-sha512-prfsha512-ecp384",
        "aes192-sha384-modp2048",
        "aes128gcm-prfsha256-ecp256",
        "aes256gcm-prfsha384-x25519",
        "chacha20poly1305-prfsha256-x25519",
        "3des-sha1-modp2048",
        "aes128-md5-prfmd5-modp2048",
    ],
)
def test_ike_suites(ike: str) -> None:
    pair = make_pair(*configs(ike=ike))
    pair.run()
    ike_i, _, _, _ = established(pair)
    assert str(ike_i.algorithms).startswith(ike.split("-")[0])


@pytest.mark.parametrize(
    ("esp", "cipher", "integ"),
    [
        ("aes128-sha256", "aes128", "sha256"),
        ("aes256-sha512", "aes256", "sha512"),
        ("aes128gcm", "aes128gcm", None),
        ("chacha20poly1305", "chacha20poly1305", None),
        ("3des-sha1", "3des", "sha1"),
        ("null-sha256", "null", "sha256"),
    ],
)
def test_esp_suites(esp: str, cipher: str, integ: str | None) -> None:
    child = host_child(esp=[parse(esp, "esp")])
    pair = make_pair(*configs(child_i=child))
    pair.run()
    _, child_i, _, _ = established(pair)
    assert child_i.algorithms.cipher is not None and child_i.algorithms.cipher.name == cipher
    assert (child_i.algorithms.integrity.name if child_i.algorithms.integrity else None) == integ
    assert len(child_i.encr_key_out) == child_i.algorithms.cipher.key_bytes


def test_auto_proposals_take_the_strongest_shared() -> None:
    ci = IkeConfig(
        local_address=ADDR_I,
        remote_address=ADDR_R,
        psk=PskTable({str(ADDR_R): PSK}),
        children=(host_child(),),
    )
    cr = IkeConfig(
        local_address=ADDR_R,
        remote_address=ADDR_I,
        psk=PskTable({str(ADDR_I): PSK}),
        children=(mirror(host_child()),),
    )
    pair = make_pair(ci, cr)
    pair.run()
    ike_i, child_i, _, _ = established(pair)
    assert str(ike_i.algorithms) == "aes256gcm-prfsha512-x25519"
    assert child_i.algorithms.cipher is not None
    assert child_i.algorithms.cipher.name == "aes256gcm"
    assert child_i.algorithms.esn is False  # no-ESN offered first (DESIGN.md)
    assert tuple(default_ike()) == ci.proposals


def test_invalid_ke_retry_with_the_group_the_responder_asks() -> None:
    # The initiator's first group is x25519; the responder only takes modp2048.
    ci, cr = configs(ike="aes128-sha256-x25519-modp2048", ike_r="aes128-sha256-modp2048")
    pair = make_pair(ci, cr)
    pair.run()
    ike_i, _, _, _ = established(pair)
    assert ike_i.algorithms.dh.name == "modp2048"


def test_responder_picks_the_initiators_order() -> None:
    ci, cr = configs(
        ike="aes256-aes128-sha256-sha512-x25519", ike_r="aes128-aes256-sha512-sha256-x25519"
    )
    pair = make_pair(ci, cr)
    pair.run()
    ike_i, _, _, _ = established(pair)
    assert str(ike_i.algorithms) == "aes256-sha256-prfsha256-x25519"


def test_forced_encapsulation_moves_to_4500_with_the_marker() -> None:
    ci, cr = configs(force_encap=True)
    pair = make_pair(ci, cr)
    sent: list[tuple[bytes, int]] = []
    for _ in range(10):
        out_i = pair.initiator.datagrams_to_send(pair.now)
        sent += [(d.data, d.local_port) for d in out_i]
        pair._deliver(out_i, pair.responder, str(ADDR_I))
        out_r = pair.responder.datagrams_to_send(pair.now)
        sent += [(d.data, d.local_port) for d in out_r]
        pair._deliver(out_r, pair.initiator, str(ADDR_R))
    pair._collect()
    _, child_i, ike_r, child_r = established(pair)
    assert [port for _, port in sent] == [500, 500, 4500, 4500]
    assert all(data.startswith(NON_ESP_MARKER) for data, port in sent if port == 4500)
    assert child_i.udp_encap and child_r.udp_encap
    assert ike_r.nat_remote  # the initiator pretended to be behind a NAT
    assert ike_r.udp_encap and pair.events_i[0].udp_encap  # type: ignore[union-attr]
    assert child_i.remote_port == 4500 and child_r.remote_port == 4500


def test_nat_detected_from_a_translated_source() -> None:
    ci, cr = configs()
    pair = make_pair(ci, cr)
    # The responder sees the initiator from another address and port (a NAT).
    for _ in range(10):
        for d in pair.initiator.datagrams_to_send(pair.now):
            pair.responder.receive_datagram(d.data, ("203.0.113.9", 40000 + d.local_port), 0.0)
        for d in pair.responder.datagrams_to_send(pair.now):
            assert d.remote[0] == "203.0.113.9"
            pair.initiator.receive_datagram(d.data, (str(ADDR_R), d.local_port), 0.0)
    pair._collect()
    ike_i, child_i, ike_r, child_r = pair.events_i[0], pair.events_i[1], *pair.events_r
    assert isinstance(ike_r, IkeSaEstablished) and ike_r.nat_remote
    assert isinstance(ike_i, IkeSaEstablished) and ike_i.nat_local
    assert isinstance(child_r, ChildSaEstablished) and child_r.udp_encap
    assert child_r.remote_port == 44500
    assert isinstance(child_i, ChildSaEstablished) and child_i.local_port == 4500


def test_tunnel_mode_and_transport_mode() -> None:
    tunnel = ChildConfig(
        name="site",
        selectors=(Selector(Endpoint.parse("203.0.113.128/25"), Endpoint.parse("203.0.113.0/25")),),
        proposals=tuple(child_proposals("esp", "aes128", "sha256")),
        mode=Mode.TUNNEL,
    )
    pair = make_pair(*configs(child_i=tunnel))
    pair.run()
    _, child_i, _, child_r = established(pair)
    assert child_i.mode is Mode.TUNNEL and child_r.mode is Mode.TUNNEL
    assert [str(t) for t in child_i.local_ts] == ["203.0.113.128-203.0.113.255"]
    assert str(child_i.selectors[0].destination) == "203.0.113.0/25"

    pair = make_pair(*configs())
    pair.run()
    _, child_i, _, child_r = established(pair)
    assert child_i.mode is Mode.TRANSPORT and child_r.mode is Mode.TRANSPORT


def test_port_without_protocol_gives_tcp_and_udp_in_one_ts_payload() -> None:
    remote = Endpoint.parse("198.51.100.2[139]")
    local = Endpoint.parse("198.51.100.1")
    child = ChildConfig(
        name="cifs",
        selectors=(Selector(local, remote, 6), Selector(local, remote, 17)),
        proposals=tuple(child_proposals("esp", "auto", "auto")),
    )
    pair = make_pair(*configs(child_i=child))
    pair.run()
    _, child_i, _, _ = established(pair)
    assert [(t.ip_protocol, t.start_port, t.end_port) for t in child_i.remote_ts] == [
        (6, 139, 139),
        (17, 139, 139),
    ]
    assert {s.protocol for s in child_i.selectors} == {6, 17}
    assert all(s.destination.ports == (139, 139) for s in child_i.selectors)


def test_populate_from_packet_gives_each_remote_host_its_own_child() -> None:
    policy = ChildConfig(
        name="range",
        selectors=(
            Selector(Endpoint.parse("198.51.100.1"), Endpoint.parse("203.0.113.0/24[445]"), 6),
        ),
        proposals=tuple(child_proposals("esp", "auto", "auto")),
        populate_from_packet=True,
    )
    ci, cr = configs(child_i=policy)
    for host in ("203.0.113.7", "203.0.113.9"):
        pair = make_pair(ci, cr, seed=3)
        pair.initiator = type(pair.initiator)(ci, initiator=True, rng=seeded_rng(30))
        pair.sas_i = [pair.initiator]
        trigger = TriggerPacket(
            ipaddress.ip_address("198.51.100.1"), ipaddress.ip_address(host), 6, 40000, 445
        )
        pair.initiator.connect(0.0, trigger=trigger)
        pair.run()
        _, child_i, _, child_r = established(pair)
        # The addresses come from the packet, protocol and ports from the policy.
        assert [str(t) for t in child_r.local_ts] == [f"{host}[445]/6"]
        assert [str(t) for t in child_i.local_ts] == ["198.51.100.1/6"]


def test_port_without_protocol_is_expanded_to_tcp_and_udp() -> None:
    child = ChildConfig(
        name="cifs",
        selectors=(Selector(Endpoint.parse("198.51.100.1"), Endpoint.parse("198.51.100.2[139]")),),
        proposals=tuple(child_proposals("esp", "auto", "auto")),
    )
    pair = make_pair(*configs(child_i=child))
    pair.run()
    _, child_i, _, _ = established(pair)
    assert [(t.ip_protocol, t.start_port) for t in child_i.remote_ts] == [(6, 139), (17, 139)]


@pytest.mark.parametrize(("esn", "expected"), [("yes", True), ("no", False), ("auto", False)])
def test_esn_negotiation(esn: str, expected: bool) -> None:
    child = host_child(esp=child_proposals("esp", "aes128", "sha256", esn=esn))
    pair = make_pair(*configs(child_i=child))
    pair.run()
    _, child_i, _, _ = established(pair)
    assert child_i.algorithms.esn is expected


def test_responder_esn_only_accepts_esn() -> None:
    child_i = host_child(esp=child_proposals("esp", "aes128", "sha256", esn="auto"))
    child_r = mirror(host_child(esp=child_proposals("esp", "aes128", "sha256", esn="yes")))
    pair = make_pair(*configs(child_i=child_i, child_r=child_r))
    pair.run()
    _, child, _, _ = established(pair)
    assert child.algorithms.esn is True


def test_ah_child() -> None:
    child = host_child(esp=child_proposals("ah", "auto", "sha256"))
    pair = make_pair(*configs(child_i=child))
    pair.run()
    _, child_i, _, _ = established(pair)
    assert child_i.protocol is ProtocolId.AH
    assert child_i.algorithms.cipher is None and child_i.encr_key_out == b""
    assert child_i.algorithms.integrity is not None and len(child_i.integ_key_out) == 32


@pytest.mark.parametrize(
    "identity",
    [
        Identity.fqdn("gw.example.net"),
        Identity.rfc822("ipsec@example.net"),
        Identity.address("198.51.100.1"),
    ],
)
def test_identities(identity: Identity) -> None:
    ci, cr = configs()
    ci = IkeConfig(**{**_fields(ci), "local_id": identity})
    cr = IkeConfig(**{**_fields(cr), "remote_id": identity, "psk": PskTable({str(identity): PSK})})
    pair = make_pair(ci, cr)
    pair.run()
    _, _, ike_r, _ = established(pair)
    assert ike_r.remote_id.matches(identity)


def test_ipv6_pair() -> None:
    a, b = ipaddress.ip_address("2001:db8::1"), ipaddress.ip_address("2001:db8::2")
    child = ChildConfig(
        name="v6",
        selectors=(Selector(Endpoint.parse("2001:db8::1"), Endpoint.parse("2001:db8::2")),),
        proposals=tuple(child_proposals("esp", "auto", "auto")),
    )
    ci = IkeConfig(
        local_address=a, remote_address=b, psk=PskTable({str(b): PSK}), children=(child,)
    )
    cr = IkeConfig(
        local_address=b, remote_address=a, psk=PskTable({str(a): PSK}), children=(mirror(child),)
    )
    init = type(make_pair(*configs()).initiator)
    from tests.ike.pair import seeded_rng

    pair = Pair(
        init(ci, initiator=True, rng=seeded_rng(5)), init(cr, initiator=False, rng=seeded_rng(6))
    )
    pair.initiator.connect(0.0)
    for _ in range(10):
        for d in pair.initiator.datagrams_to_send(0.0):
            pair.responder.receive_datagram(d.data, (str(a), d.local_port), 0.0)
        for d in pair.responder.datagrams_to_send(0.0):
            pair.initiator.receive_datagram(d.data, (str(b), d.local_port), 0.0)
    pair._collect()
    _, child_i, ike_r, _ = established(pair)
    assert str(ike_r.remote_id) == "2001:db8::1"
    assert child_i.local_ts[0].start_addr.version == 6


def test_initial_contact_is_reported_and_optional() -> None:
    pair = make_pair(*configs())
    pair.run()
    assert established(pair)[2].initial_contact is True
    ci, cr = configs()
    ci = IkeConfig(**{**_fields(ci), "initial_contact": False})
    pair = make_pair(ci, cr)
    pair.run()
    assert established(pair)[2].initial_contact is False


def test_liveness_and_delete() -> None:
    pair = make_pair(*configs())
    pair.run()
    established(pair)
    pair.responder.check_liveness(pair.now)
    pair.run()
    assert pair.responder.state is IkeState.ESTABLISHED
    pair.initiator.close(pair.now)
    pair.run()
    assert pair.initiator.state is IkeState.DELETED
    assert pair.responder.state is IkeState.DELETED
    assert pair.events_i[-1] == IkeSaDeleted(by_peer=False)
    assert pair.events_r[-1] == IkeSaDeleted(by_peer=True)


def test_secrets_stay_out_of_reprs() -> None:
    pair = make_pair(*configs())
    pair.run()
    _, child_i, _, _ = established(pair)
    text = repr(pair.initiator._ctx.config) + repr(pair.events_i) + repr(pair.initiator)
    assert PSK.decode() not in text
    for key in (child_i.encr_key_in, child_i.encr_key_out, child_i.integ_key_in):
        if key:
            assert key.hex() not in text and repr(key) not in text


def test_psk_txt() -> None:
    table = PskTable.parse("# seed psk.txt\n198.51.100.2  s3cret key\n\n2001:db8::02 other\n")
    from ipsecconf.ike.config import PskQuery

    me = Identity.address("198.51.100.1")
    assert table(PskQuery(ADDR_R, None, me)) == b"s3cret key"
    assert table(PskQuery(ipaddress.ip_address("2001:db8::2"), None, me)) == b"other"
    assert table(PskQuery(ADDR_I, None, me)) is None
    assert "s3cret" not in repr(table) and len(table) == 2


def _fields(config: IkeConfig) -> dict[str, object]:
    return {name: getattr(config, name) for name in config.__dataclass_fields__}


def test_pfs_groups_are_left_out_of_the_first_child() -> None:
    # A PFS group only applies to CREATE_CHILD_SA; in IKE_AUTH it is neither sent nor
    # required, on either side (RFC 7296 1.2).
    child_i = host_child(esp=child_proposals("esp", "aes128", "sha256", pfs_group="ecp256"))
    child_r = mirror(host_child(esp=child_proposals("esp", "aes128", "sha256")))
    pair = make_pair(*configs(child_i=child_i, child_r=child_r))
    pair.run()
    _, child, _, _ = established(pair)
    assert child.algorithms.dh is None


def test_responder_picks_the_child_whose_selectors_fit() -> None:
    wanted = ChildConfig(
        name="site-b",
        selectors=(Selector(Endpoint.parse("203.0.113.0/25"), Endpoint.parse("203.0.113.128/25")),),
        proposals=tuple(child_proposals("esp", "auto", "auto")),
        mode=Mode.TUNNEL,
    )
    other = ChildConfig(
        name="site-a",
        selectors=(
            Selector(Endpoint.parse("198.51.100.64/26"), Endpoint.parse("198.51.100.0/26")),
        ),
        proposals=tuple(child_proposals("esp", "auto", "auto")),
        mode=Mode.TUNNEL,
    )
    ci, cr = configs(child_i=mirror(wanted))
    cr = IkeConfig(**{**_fields(cr), "children": (other, wanted)})
    pair = make_pair(ci, cr)
    pair.run()
    _, _, _, child_r = established(pair)
    assert child_r.name == "site-b"


def test_fqdn_identities_both_ways() -> None:
    gw_i, gw_r = Identity.fqdn("a.example.net"), Identity.fqdn("b.example.net")
    ci, cr = configs()
    ci = IkeConfig(
        **{
            **_fields(ci),
            "local_id": gw_i,
            "remote_id": gw_r,
            "psk": PskTable({"b.example.net": PSK}),
        }
    )
    cr = IkeConfig(
        **{
            **_fields(cr),
            "local_id": gw_r,
            "remote_id": gw_i,
            "psk": PskTable({"a.example.net": PSK}),
        }
    )
    pair = make_pair(ci, cr)
    pair.run()
    ike_i, _, ike_r, _ = established(pair)
    assert str(ike_i.remote_id) == "b.example.net" and str(ike_r.remote_id) == "a.example.net"
    assert Identity.parse("@b.example.net") == gw_r
    assert Identity.parse("ipsec@example.net").id_type.name == "RFC822_ADDR"
    assert str(Identity.parse("2001:db8::1")) == "2001:db8::1"


def test_nat_keepalives_only_behind_a_nat() -> None:
    ci, cr = configs()
    pair = make_pair(ci, cr)
    for _ in range(10):  # the initiator is seen from a translated address: it is behind NAT
        for d in pair.initiator.datagrams_to_send(0.0):
            pair.responder.receive_datagram(d.data, ("203.0.113.9", 40000 + d.local_port), 0.0)
        for d in pair.responder.datagrams_to_send(0.0):
            pair.initiator.receive_datagram(d.data, (str(ADDR_R), d.local_port), 0.0)
    assert pair.initiator.state is IkeState.ESTABLISHED
    assert pair.initiator.get_timer() == 20.0
    assert pair.responder.get_timer() is None  # not behind a NAT itself
    pair.initiator.handle_timer(20.0)
    [keepalive] = pair.initiator.datagrams_to_send(20.0)
    assert keepalive.data == b"\xff" and keepalive.local_port == 4500
    assert keepalive.remote == (str(ADDR_R), 4500)
    assert pair.initiator.get_timer() == 40.0
    pair.responder.receive_datagram(keepalive.data, ("203.0.113.9", 44500), 20.0)
    assert pair.responder.drops[DropReason.KEEPALIVE] == 1
