"""The shared X.509 checks: key match, validity, chain, usage, identity."""

from __future__ import annotations

import datetime

import pytest

from ipsecconf.crypto import x509
from tests.certgen import NOW, issue


def test_good_chain_through_an_intermediate() -> None:
    root = issue("Root", ca=True)
    inter = issue("Inter", issuer=root, ca=True)
    leaf = issue(
        "gw",
        issuer=inter,
        ips=("203.0.113.1",),
        dns=("gw.example.org",),
        emails=("ops@example.org",),
    )
    assert x509.verify_chain(leaf.cert, [inter.cert], [root.cert], NOW) == []
    assert x509.check_usage(leaf.cert, ca=False) == []
    assert x509.key_matches(leaf.cert, leaf.key)
    assert not x509.key_matches(leaf.cert, root.key)
    assert x509.identity_matches(leaf.cert, "ip", "203.0.113.1")
    assert x509.identity_matches(leaf.cert, "fqdn", "GW.example.org")
    assert x509.identity_matches(leaf.cert, "email", "ops@example.org")
    assert x509.identity_matches(leaf.cert, "dn", "CN=gw, O=ipsecconf tests")
    assert not x509.identity_matches(leaf.cert, "ip", "203.0.113.2")


def test_missing_intermediate_and_untrusted_root() -> None:
    root = issue("Root", ca=True)
    inter = issue("Inter", issuer=root, ca=True)
    leaf = issue("gw", issuer=inter)
    (problem,) = x509.verify_chain(leaf.cert, [], [root.cert], NOW)
    assert "does not chain to a configured root" in problem
    other = issue("Other", ca=True)
    assert x509.verify_chain(leaf.cert, [inter.cert], [other.cert], NOW)


def test_forged_issuer_name_is_refused() -> None:
    root = issue("Root", ca=True)
    impostor = issue("Root", ca=True)  # same name, other key
    leaf = issue("gw", issuer=impostor)
    assert x509.verify_chain(leaf.cert, [], [root.cert], NOW)


def test_validity_window() -> None:
    leaf = issue("gw", days=10)
    assert x509.check_validity(leaf.cert, NOW) == []
    later = NOW + datetime.timedelta(days=30)
    assert "expired" in x509.check_validity(leaf.cert, later)[0]
    earlier = NOW - datetime.timedelta(days=30)
    assert "not valid before" in x509.check_validity(leaf.cert, earlier)[0]


def test_usage() -> None:
    leaf = issue("gw")
    assert "not a CA certificate" in x509.check_usage(leaf.cert, ca=True)[0]
    root = issue("Root", ca=True)
    assert "may not sign" in x509.check_usage(root.cert, ca=False)[0]


def test_loading_errors_never_show_key_bytes() -> None:
    with pytest.raises(x509.CertificateError, match=r"no valid X\.509 certificate"):
        x509.load_certificates(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(x509.CertificateError) as info:
        x509.load_private_key(b"-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n")
    assert "c2VjcmV0" not in str(info.value)


def test_info_fields() -> None:
    leaf = issue("gw", key_kind="rsa")
    info = x509.info(leaf.cert)
    assert info.subject == "CN=gw,O=ipsecconf tests"
    assert len(info.fingerprint.split(":")) == 32 and not info.is_ca
