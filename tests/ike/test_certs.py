"""Certificate authentication in memory: RSA with method 1 and RFC 7427 (PKCS#1 v1.5 and
PSS), ECDSA (RFC 4754 and RFC 7427), a root + intermediate chain, identities of every
kind, and the refusals: untrusted, expired, wrong identity, method not accepted."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import pytest

from ipsecconf.crypto.signatures import subject_der
from ipsecconf.ike.config import Identity, IkeConfig
from ipsecconf.ike.constants import AuthMethod, IdType, NotifyType
from ipsecconf.ike.context import IkeState
from ipsecconf.ike.credentials import Credentials, TrustAnchors
from ipsecconf.ike.errors import LocalProtocolError
from ipsecconf.ike.events import FailureReason, IkeSaEstablished, IkeSaFailed
from tests.certgen import NOW, Issued, issue
from tests.ike.pair import ADDR_I, ADDR_R, Pair, configs, make_pair


@dataclass
class Pki:
    root: Issued
    inter: Issued
    rsa_i: Issued
    rsa_r: Issued
    ec_i: Issued
    ec_r: Issued
    chained_i: Issued
    expired_i: Issued
    stranger_i: Issued
    wrong_id_i: Issued
    named_i: Issued


@pytest.fixture(scope="module")
def pki() -> Pki:
    root = issue("Test Root", ca=True, key_kind="rsa")
    inter = issue("Test Intermediate", issuer=root, ca=True, key_kind="rsa")
    other_root = issue("Other Root", ca=True)
    ip_i, ip_r = (str(ADDR_I),), (str(ADDR_R),)
    return Pki(
        root=root,
        inter=inter,
        rsa_i=issue("alice", issuer=root, key_kind="rsa", ips=ip_i),
        rsa_r=issue("bob", issuer=root, key_kind="rsa", ips=ip_r),
        ec_i=issue("alice-ec", issuer=root, ips=ip_i),
        ec_r=issue("bob-ec", issuer=root, ips=ip_r),
        chained_i=issue("alice-chained", issuer=inter, key_kind="rsa", ips=ip_i),
        expired_i=issue(
            "alice-old",
            issuer=root,
            ips=ip_i,
            days=30,
            not_before=NOW - datetime.timedelta(days=400),
        ),
        stranger_i=issue("mallory", issuer=other_root, ips=ip_i),
        wrong_id_i=issue("carol", issuer=root, ips=("198.51.100.9",)),
        named_i=issue(
            "alice.example.net",
            issuer=root,
            dns=("alice.example.net",),
            emails=("alice@example.net",),
        ),
    )


def creds(who: Issued, *chain: Issued) -> Credentials:
    return Credentials.from_pem(
        who.cert_pem(), who.key_pem(), b"".join(c.cert_pem() for c in chain)
    )


def fields(config: IkeConfig) -> dict[str, object]:
    return {name: getattr(config, name) for name in IkeConfig.__dataclass_fields__}


def cert_pair(
    pki: Pki,
    cred_i: Credentials | None,
    cred_r: Credentials,
    *,
    sig_i: str = "auto",
    sig_r: str = "auto",
    accept_r: frozenset[str] = frozenset(),
    local_id_i: Identity | None = None,
) -> Pair:
    ci, cr = configs()
    trust = TrustAnchors.from_pem(pki.root.cert_pem())
    common = {"trust": trust, "clock": lambda: NOW}
    ci = IkeConfig(
        **{
            **fields(ci),
            **common,
            "credentials": cred_i,
            "signature": sig_i,
            "local_id": local_id_i,
            "remote_auth": frozenset()
            if cred_i
            else frozenset({"rsa", "ecdsa", "digital-signature"}),
        }
    )
    cr = IkeConfig(
        **{
            **fields(cr),
            **common,
            "credentials": cred_r,
            "signature": sig_r,
            "remote_auth": accept_r,
        }
    )
    pair = make_pair(ci, cr)
    pair.run()
    return pair


def established_with(pair: Pair, method_i: int, method_r: int) -> None:
    assert pair.initiator.state is IkeState.ESTABLISHED, pair.events_i
    assert pair.responder.state is IkeState.ESTABLISHED, pair.events_r
    ike_i, ike_r = pair.events_i[0], pair.events_r[0]
    assert isinstance(ike_i, IkeSaEstablished) and isinstance(ike_r, IkeSaEstablished)
    # Each side reports the method the *peer* used.
    assert ike_r.peer_auth_method == method_i and ike_i.peer_auth_method == method_r
    assert len(pair.initiator.children) == 1 and not pair.responder.drops


def refused(pair: Pair, reason: FailureReason, text: str) -> None:
    """The responder refused with ``reason``; the initiator heard AUTHENTICATION_FAILED."""
    [failure] = pair.events_r
    assert isinstance(failure, IkeSaFailed) and failure.reason is reason, failure
    assert failure.notify == NotifyType.AUTHENTICATION_FAILED and text in failure.detail
    [heard] = pair.events_i
    assert isinstance(heard, IkeSaFailed) and heard.by_peer
    assert heard.reason is FailureReason.AUTHENTICATION_FAILED
    assert pair.initiator.state is IkeState.FAILED and pair.responder.state is IkeState.FAILED


def test_rsa_classic_method_1(pki: Pki) -> None:
    pair = cert_pair(pki, creds(pki.rsa_i), creds(pki.rsa_r), sig_i="classic", sig_r="classic")
    established_with(pair, AuthMethod.RSA_SIGNATURE, AuthMethod.RSA_SIGNATURE)


@pytest.mark.parametrize("mode", ["auto", "pkcs1", "pss"])
def test_rsa_rfc7427(pki: Pki, mode: str) -> None:
    pair = cert_pair(pki, creds(pki.rsa_i), creds(pki.rsa_r), sig_i=mode, sig_r=mode)
    established_with(pair, AuthMethod.DIGITAL_SIGNATURE, AuthMethod.DIGITAL_SIGNATURE)


def test_ecdsa_classic_and_rfc7427(pki: Pki) -> None:
    pair = cert_pair(pki, creds(pki.ec_i), creds(pki.ec_r), sig_i="classic")
    established_with(pair, AuthMethod.ECDSA_SHA256_P256, AuthMethod.DIGITAL_SIGNATURE)


def test_mixed_rsa_and_ecdsa_peers(pki: Pki) -> None:
    pair = cert_pair(pki, creds(pki.ec_i), creds(pki.rsa_r), sig_r="classic")
    established_with(pair, AuthMethod.DIGITAL_SIGNATURE, AuthMethod.RSA_SIGNATURE)


def test_chain_through_an_intermediate(pki: Pki) -> None:
    pair = cert_pair(pki, creds(pki.chained_i, pki.inter), creds(pki.rsa_r))
    established_with(pair, AuthMethod.DIGITAL_SIGNATURE, AuthMethod.DIGITAL_SIGNATURE)


def test_missing_intermediate_is_untrusted(pki: Pki) -> None:
    pair = cert_pair(pki, creds(pki.chained_i), creds(pki.rsa_r))
    refused(pair, FailureReason.UNTRUSTED_CERTIFICATE, "does not chain")


def test_untrusted_root_is_refused(pki: Pki) -> None:
    pair = cert_pair(pki, creds(pki.stranger_i), creds(pki.rsa_r))
    refused(pair, FailureReason.UNTRUSTED_CERTIFICATE, "does not chain to a configured root")


def test_expired_certificate_is_refused(pki: Pki) -> None:
    pair = cert_pair(pki, creds(pki.expired_i), creds(pki.rsa_r))
    refused(pair, FailureReason.CERTIFICATE_EXPIRED, "expired on")


def test_wrong_identity_is_refused(pki: Pki) -> None:
    # carol's certificate names 198.51.100.9; she claims 198.51.100.1.
    pair = cert_pair(pki, creds(pki.wrong_id_i), creds(pki.rsa_r))
    refused(pair, FailureReason.IDENTITY_MISMATCH, "does not carry the identity 198.51.100.1")


def test_method_not_accepted_by_the_responder(pki: Pki) -> None:
    pair = cert_pair(
        pki,
        creds(pki.rsa_i),
        creds(pki.rsa_r),
        sig_i="classic",
        accept_r=frozenset({"digital-signature"}),
    )
    refused(pair, FailureReason.METHOD_NOT_ALLOWED, "method 1 (rsa)")


def test_psk_initiator_refused_by_a_certificate_only_responder(pki: Pki) -> None:
    pair = cert_pair(pki, None, creds(pki.rsa_r))
    refused(pair, FailureReason.METHOD_NOT_ALLOWED, "method 2 (psk)")


def test_initiator_refuses_an_untrusted_responder(pki: Pki) -> None:
    stranger_r = issue("mallory-r", issuer=issue("Rogue", ca=True), ips=(str(ADDR_R),))
    pair = cert_pair(pki, creds(pki.rsa_i), creds(stranger_r))
    failure = pair.events_i[-1]
    assert isinstance(failure, IkeSaFailed) and not failure.by_peer
    assert failure.reason is FailureReason.UNTRUSTED_CERTIFICATE
    # ... and says so in an INFORMATIONAL (RFC 7296 2.21.2).
    heard = pair.events_r[-1]
    assert isinstance(heard, IkeSaFailed) and heard.by_peer
    assert heard.reason is FailureReason.AUTHENTICATION_FAILED


@pytest.mark.parametrize("kind", ["fqdn", "email", "dn"])
def test_identities_from_the_certificate(pki: Pki, kind: str) -> None:
    cert = pki.named_i.cert
    identity = {
        "fqdn": Identity.fqdn("alice.example.net"),
        "email": Identity.rfc822("alice@example.net"),
        "dn": Identity(IdType.DER_ASN1_DN, subject_der(cert)),
    }[kind]
    pair = cert_pair(pki, creds(pki.named_i), creds(pki.rsa_r), local_id_i=identity)
    established_with(pair, AuthMethod.DIGITAL_SIGNATURE, AuthMethod.DIGITAL_SIGNATURE)
    ike_r = pair.events_r[0]
    assert isinstance(ike_r, IkeSaEstablished) and ike_r.remote_id == identity


def test_credentials_refuse_a_foreign_key(pki: Pki) -> None:
    with pytest.raises(LocalProtocolError, match="not the certificate's"):
        Credentials.from_pem(pki.rsa_i.cert_pem(), pki.rsa_r.key_pem())
    assert "PRIVATE" not in repr(creds(pki.rsa_i))


def test_signatures_need_roots_and_a_clock() -> None:
    ci, _ = configs()
    with pytest.raises(LocalProtocolError, match="trust anchors and a clock"):
        IkeConfig(**{**fields(ci), "remote_auth": frozenset({"rsa"})})
