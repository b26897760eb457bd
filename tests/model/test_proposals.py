"""Proposal strings and the seed's "best algorithm based on the peer" expansion."""

from __future__ import annotations

import pytest

from ipsecconf.model import proposals as prop


def test_parse_ike_derives_prf_from_integrity() -> None:
    p = prop.parse("aes128-sha256-modp2048", "ike")
    assert [c.name for c in p.ciphers] == ["aes128"]
    assert [x.name for x in p.prfs] == ["prfsha256"]
    assert [g.name for g in p.dh_groups] == ["modp2048"]


@pytest.mark.parametrize(
    ("text", "protocol", "message"),
    [
        ("aes128gcm-sha256", "esp", "takes no integrity"),
        ("aes128gcm-aes128", "esp", "separate proposals"),
        ("null-sha256-x25519", "ike", "never allowed for IKE"),
        ("aes128-sha256", "ike", "needs a DH group"),
        ("aes128-sha256-esn-modp2048", "ike", "not IKE"),
        ("sha256", "esp", "no encryption algorithm"),
        ("aes128-sha256", "ah", "AH does not encrypt"),
        ("rot13", "esp", "unknown algorithm 'rot13'"),
        ("aes128-sha256-prfsha256", "esp", "IKE proposals only"),
    ],
)
def test_parse_errors(text: str, protocol: str, message: str) -> None:
    with pytest.raises(prop.ProposalError, match=message):
        prop.parse(text, protocol)


def test_auto_is_strongest_first_and_separates_aead() -> None:
    offered = prop.child_proposals("esp", "auto", "auto")
    assert offered[0].aead and not offered[1].aead
    assert offered[0].ciphers[0].name == "aes256gcm"
    assert [i.name for i in offered[1].integrities][:3] == ["sha512", "sha384", "sha256"]
    assert offered[0].esn == (False, True)  # no-ESN first


def test_explicit_words_are_proposed_exactly() -> None:
    (only,) = prop.child_proposals("esp", "3des", "sha1", pfs_group="modp2048", esn="no")
    assert [c.name for c in only.ciphers] == ["3des"]
    assert [i.name for i in only.integrities] == ["sha1"]
    assert only.esn == (False,)
    assert set(only.weak_names()) == {"3des"}


def test_seed_legacy_cipher_with_auto_integrity_offers_legacy_hmacs() -> None:
    (only,) = prop.child_proposals("esp", "des", "auto")
    assert [i.name for i in only.integrities][-2:] == ["sha1", "md5"]


def test_ah_proposals() -> None:
    (ah,) = prop.child_proposals("ah", "auto", "sha256")
    assert ah.ciphers == () and [i.name for i in ah.integrities] == ["sha256"]
    with pytest.raises(prop.ProposalError, match="AH does not encrypt"):
        prop.child_proposals("ah", "aes128", "sha256")
