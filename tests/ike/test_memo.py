"""What the handshake remembers per config and per payload gives the uncached answers.

Proposal matching, traffic selector narrowing, encodings and PSK lookups are memoised
(``ipsecconf bench ike``); these tests hold each memo to the pure function it stands
for, across repeated calls, SPI changes and copies, and check that a finished SA pair
is freed without the cyclic garbage collector.
"""

from __future__ import annotations

import dataclasses
import gc
import ipaddress
import random
import weakref

from ipsecconf.ike import proposals as props
from ipsecconf.ike.config import IkeConfig, PskQuery, derived
from ipsecconf.ike.constants import ProtocolId, TransformType
from ipsecconf.ike.context import IkeState
from ipsecconf.ike.events import ChildSaEstablished
from ipsecconf.ike.payloads import NotifyPayload, pull_chain, push_chain
from ipsecconf.ike.payloads_sa import SaPayload, Transform, WireProposal, sa_body
from ipsecconf.ike.payloads_ts import TsEntry, TsPayload, ts_body
from ipsecconf.ike.selectors import (
    covered,
    initiator_check,
    offer,
    proposed,
    responder_answer,
    responder_narrow,
    to_selectors,
)
from ipsecconf.model.proposals import child_proposals, parse
from tests.ike.pair import ADDR_I, configs, host_child, make_pair, mirror

V4 = ipaddress.ip_address

_IKE_TRANSFORMS = [
    Transform(TransformType.ENCR, 20, 256),
    Transform(TransformType.ENCR, 12, 128),
    Transform(TransformType.ENCR, 12, 256),
    Transform(TransformType.PRF, 5),
    Transform(TransformType.PRF, 7),
    Transform(TransformType.INTEG, 12),
    Transform(TransformType.INTEG, 0),
    Transform(TransformType.DH, 31),
    Transform(TransformType.DH, 14),
    Transform(TransformType.DH, 19),
]


def _random_offer(r: random.Random, protocol: int, spi_size: int) -> SaPayload:
    proposals = []
    for number in range(1, r.randint(1, 3) + 1):
        picked = tuple(r.sample(_IKE_TRANSFORMS, r.randint(1, 6)))
        if protocol != ProtocolId.IKE:
            picked = tuple(t for t in picked if t.type != TransformType.PRF)
            picked += (Transform(TransformType.ESN, 0),)
        proposals.append(WireProposal(number, protocol, r.randbytes(spi_size), picked))
    return SaPayload(tuple(proposals))


def test_negotiator_gives_what_select_and_check_answer_give() -> None:
    r = random.Random(7)
    cases = [
        ((parse("aes256gcm-prfsha256-x25519", "ike"), parse("aes128-sha256-modp2048", "ike")), 0),
        (tuple(child_proposals("esp", "auto", "auto")), 4),
    ]
    for mine, spi_size in cases:
        protocol = ProtocolId.IKE if mine[0].protocol == "ike" else ProtocolId.ESP
        negotiator = props.Negotiator(mine)
        for _ in range(300):
            offered = _random_offer(r, protocol, spi_size)
            spi = r.randbytes(spi_size)
            expected = props.select(offered, mine, spi)
            for _ in range(2):  # the second call answers from the memo
                choice = negotiator.select(offered, spi)
                if expected is None:
                    assert choice is None
                    continue
                assert choice is not None
                assert (choice.answer, choice.chosen) == expected
                assert choice.reply == SaPayload((expected[0],))
                if protocol == ProtocolId.IKE:
                    assert choice.ike == props.ike_algorithms(expected[1])
                else:
                    assert choice.child == props.child_algorithms(ProtocolId.ESP, expected[1])
            answer = SaPayload(offered.proposals[:1])
            checked = negotiator.check(answer)
            wanted = props.check_answer(answer, mine)
            assert (checked.chosen if checked else None) == wanted


def test_negotiator_memo_ignores_spi_values_but_not_sizes() -> None:
    mine = tuple(child_proposals("esp", "aes256gcm", "auto"))
    negotiator = props.Negotiator(mine)
    transforms = (Transform(TransformType.ENCR, 20, 256), Transform(TransformType.ESN, 0))
    first = negotiator.select(SaPayload((WireProposal(1, 3, b"\1\2\3\4", transforms),)))
    again = negotiator.select(SaPayload((WireProposal(1, 3, b"\5\6\7\x08", transforms),)))
    assert first is not None and again is first
    assert negotiator.select(SaPayload((WireProposal(1, 3, b"\1\2", transforms),))) is None
    assert negotiator.offer(b"\0\0\1\0") == props.to_wire(mine, b"\0\0\1\0")


def test_memoised_encodings_equal_fresh_ones_and_copies_start_empty() -> None:
    sa = props.to_wire((parse("aes128-sha256-x25519", "ike"),))
    first = sa_body(sa)
    assert sa_body(sa) is first
    assert sa_body(props.to_wire((parse("aes128-sha256-x25519", "ike"),))) == first
    copy = dataclasses.replace(sa)
    assert sa_body(copy) == first and copy == sa and hash(copy) == hash(sa)
    ts = TsPayload(True, (TsEntry(V4("198.51.100.1"), V4("198.51.100.9"), 6, 80, 443),))
    body = ts_body(ts)
    payloads, _ = pull_chain(push_chain([ts])[1], push_chain([ts])[0])
    assert payloads == [ts] and ts_body(payloads[0]) == body


def test_ike_sa_init_offers_parse_alike_from_the_cache() -> None:
    sa = props.to_wire((parse("aes256gcm-prfsha256-x25519", "ike"),))
    first_type, chain = push_chain([sa, NotifyPayload(16388, data=b"x" * 20)])
    one, _ = pull_chain(chain, first_type)
    two, _ = pull_chain(chain, first_type)
    assert one == two == [sa, NotifyPayload(16388, data=b"x" * 20)]


def test_traffic_selector_memos_match_the_pure_functions() -> None:
    child = host_child(remote="198.51.100.0/28", protocol=6, ports=(80, 80))
    tsi, tsr = offer(child, None)
    local, remote = proposed(child)
    assert (list(tsi.selectors), list(tsr.selectors)) == (local, remote)
    assert offer(child, None) == (tsi, tsr)
    peer = mirror(child)
    for _ in range(2):
        answer = responder_answer(peer, tsi, tsr)
        expected = responder_narrow(peer, list(tsi.selectors), list(tsr.selectors))
        assert answer is not None and expected is not None
        assert (list(answer.tsi.selectors), list(answer.tsr.selectors)) == expected
        assert list(answer.selectors) == to_selectors(expected[1], expected[0])
        checked = initiator_check(child, (tsi, tsr), answer.tsi, answer.tsr)
        assert checked == tuple(to_selectors(expected[0], expected[1]))
    wider = TsPayload(False, (TsEntry(V4("198.51.100.0"), V4("198.51.100.255"), 6, 80, 80),))
    assert not covered(wider.selectors[0], remote)
    assert initiator_check(child, (tsi, tsr), tsi, wider) is None
    other = host_child(remote="203.0.113.7")
    assert responder_answer(mirror(other), *offer(child, None)) is None


def test_derived_values_are_computed_once_per_config() -> None:
    config, _ = configs()
    calls: list[int] = []

    def make() -> int:
        calls.append(1)
        return 42

    assert derived(config, "test", make) == 42 and derived(config, "test", make) == 42
    assert len(calls) == 1
    copy = dataclasses.replace(config)
    assert derived(copy, "test", make) == 42 and len(calls) == 2
    assert copy == config


def test_the_psk_is_looked_up_once_per_identity_and_sa() -> None:
    base_i, base_r = configs()
    asked: list[PskQuery] = []

    def lookup(query: PskQuery) -> bytes | None:
        asked.append(query)
        return base_i.psk(query)

    config_i = dataclasses.replace(base_i, psk=lookup)
    pair = make_pair(config_i, base_r)
    pair.run()
    assert pair.initiator.state is IkeState.ESTABLISHED
    # connect() and our AUTH ask with no identity; the responder's AUTH with its own.
    assert len(asked) == 2 and asked[0].remote_id is None and asked[1].remote_id is not None


def test_a_finished_pair_is_freed_without_the_cyclic_collector() -> None:
    config_i, config_r = configs()
    pair = make_pair(config_i, config_r)
    pair.run()
    assert any(isinstance(e, ChildSaEstablished) for e in pair.events_i)
    refs = [weakref.ref(pair.initiator), weakref.ref(pair.responder)]
    gc.disable()
    try:
        del pair
        assert all(ref() is None for ref in refs)
    finally:
        gc.enable()


def test_psk_lookup_by_address_is_unchanged() -> None:
    config: IkeConfig = configs()[1]
    assert config.psk(PskQuery(ADDR_I, None, config.effective_local_id)) is not None
