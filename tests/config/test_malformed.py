"""At least 30 malformed configurations, each with its message and its file:line:col.

Every case is loaded through the public loader; none may raise, and the first error
must say what is wrong and where.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from ipsecconf.cli.main import main
from ipsecconf.config import load
from ipsecconf.errors import Severity
from tests.certgen import NOW, issue

GOOD_POLICY = """\
policies:
  - name: web
    source: 198.51.100.0/24
    destination: 203.0.113.5/32[443]
    ip_protocol: tcp
    peer: gw
peers:
  - name: gw
    address: 203.0.113.5
    psk: env:TEST_PSK_GW
"""

# (id, YAML text, expected message part, expected line, expected column or None)
CASES: list[tuple[str, str, str, int, int | None]] = [
    ("yaml-syntax", "policies:\n  - name: a\n   source: x\n", "YAML:", 3, 4),
    ("yaml-flow-unclosed", "policies: [\n  {name: a\n", "YAML:", 3, 1),
    ("tab-indent", "policies:\n\t- name: a\n", "YAML:", 2, 1),
    ("duplicate-key", "policies:\n  - name: a\n    name: b\n", "duplicate key 'name'", 3, 5),
    (
        "duplicate-top-key",
        "default_action: bypass\ndefault_action: discard\n",
        "duplicate key",
        2,
        1,
    ),
    ("top-not-mapping", "- a\n- b\n", "top level must be a mapping", 1, 1),
    ("unknown-top-key", "polices: []\n", "unknown key 'polices'", 1, 1),
    (
        "unknown-policy-key",
        "policies:\n  - name: a\n    sauce: 10.0.0.0/8\n",
        "unknown key 'sauce'",
        3,
        5,
    ),
    ("missing-name", "policies:\n  - source: 10.0.0.0/8\n", "required key 'name'", 2, 5),
    ("bad-name", "policies:\n  - name: 'a b'\n", "invalid name", 2, 11),
    (
        "bad-prefix",
        "policies:\n  - name: a\n    source: 10.0.0.0/33\n",
        "invalid address or prefix",
        3,
        13,
    ),
    ("host-bits", "policies:\n  - name: a\n    source: 10.0.0.1/8\n", "host bits set", 3, 13),
    (
        "bad-port",
        "policies:\n  - name: a\n    destination: 10.0.0.1[70000]\n",
        "port 70000 is outside",
        3,
        18,
    ),
    (
        "reversed-ports",
        "policies:\n  - name: a\n    destination: {address: 10.0.0.1, port: 20-10}\n",
        "reversed",
        3,
        18,
    ),
    ("empty-brackets", "policies:\n  - name: a\n    source: 10.0.0.0/8[]\n", "empty port", 3, 13),
    (
        "bad-protocol",
        "policies:\n  - name: a\n    ip_protocol: tcpp\n",
        "unknown protocol 'tcpp'",
        3,
        18,
    ),
    ("protocol-range", "policies:\n  - name: a\n    ip_protocol: 300\n", "outside 0-255", 3, 18),
    ("wrong-type-mirror", "policies:\n  - name: a\n    mirror: [1]\n", "mirror", 3, 13),
    ("bad-direction", "policies:\n  - name: a\n    direction: both\n", "direction", 3, 16),
    (
        "bad-encryption",
        "policies:\n  - name: a\n    encryption: blowfish\n",
        "valid: auto, null, des",
        3,
        17,
    ),
    (
        "bad-authentication",
        "policies:\n  - name: a\n    authentication: sha3\n",
        "valid: auto, none",
        3,
        21,
    ),
    (
        "yaml-null-authentication",
        "policies:\n  - name: a\n    authentication: null\n",
        "write auto",
        3,
        21,
    ),
    (
        "ah-with-encryption",
        "policies:\n  - name: a\n    protocol: ah\n    encryption: 3des\n",
        "AH authenticates only",
        4,
        17,
    ),
    (
        "ah-udp-encap",
        "policies:\n  - name: a\n    protocol: ah\n    udp_encapsulation: true\n",
        "AH cannot cross NAT",
        4,
        24,
    ),
    (
        "esp-null-null",
        "policies:\n  - name: a\n    encryption: 'null'\n    authentication: none\n",
        "protects nothing",
        4,
        21,
    ),
    (
        "aead-with-integ",
        "policies:\n  - name: a\n    encryption: aes128gcm\n    authentication: sha256\n",
        "AEAD cipher",
        4,
        21,
    ),
    (
        "port-with-icmp",
        "policies:\n  - name: a\n    source: 10.0.0.0/8[22]\n    ip_protocol: icmp\n",
        "a port needs TCP",
        3,
        13,
    ),
    (
        "mixed-families",
        "policies:\n  - name: a\n    source: 10.0.0.0/8\n    destination: 2001:db8::/32\n",
        "IPv4 but destination is IPv6",
        4,
        18,
    ),
    ("replay-too-small", "policies:\n  - name: a\n    replay_window: 8\n", "at least 32", 3, 20),
    (
        "replay-off-policy",
        "policies:\n  - name: a\n    replay_window: 0\n",
        "manual SAs only",
        3,
        20,
    ),
    (
        "rekey-margin",
        "policies:\n  - name: a\n    lifetime: {time: 60, rekey_margin: 5m}\n",
        "rekey_margin",
        3,
        40,
    ),
    (
        "bad-duration",
        "policies:\n  - name: a\n    lifetime: {time: soon}\n",
        "invalid duration",
        3,
        22,
    ),
    (
        "tunnel-no-peer",
        "policies:\n  - name: a\n    mode: tunnel\n",
        "tunnel mode needs an explicit peer",
        3,
        11,
    ),
    ("unknown-peer", "policies:\n  - name: a\n    peer: nobody\n", "unknown peer 'nobody'", 3, 11),
    (
        "duplicate-policy",
        "policies:\n  - name: a\n  - name: a\n",
        "duplicate policy name 'a' (first at line 2)",
        3,
        11,
    ),
    (
        "kerberos",
        "peers:\n  - name: w\n    address: 203.0.113.9\n    auth: kerberos\n",
        "not supported: Kerberos",
        4,
        11,
    ),
    (
        "bad-peer-address",
        "peers:\n  - name: w\n    address: 203.0.113.300\n",
        "invalid IP address",
        3,
        14,
    ),
    (
        "liveness-timeout-too-short",
        "peers:\n  - name: w\n    address: 203.0.113.9\n    psk: env:TEST_PSK_GW\n"
        "    liveness_timeout: 3\n",
        "liveness_timeout: must be at least 6 seconds",
        5,
        23,
    ),
    (
        "psk-peer-no-key",
        "peers:\n  - name: w\n    address: 203.0.113.9\n",
        "no pre-shared key for peer w",
        2,
        5,
    ),
    (
        "psk-missing-env",
        "peers:\n  - name: w\n    address: 203.0.113.9\n    psk: env:IPSECCONF_TEST_UNSET_VAR\n",
        "IPSECCONF_TEST_UNSET_VAR is not set",
        4,
        10,
    ),
    (
        "psk-missing-file",
        "peers:\n  - name: w\n    address: 203.0.113.9\n    psk: file:nope.psk\n",
        "nope.psk does not exist",
        4,
        10,
    ),
    (
        "cert-peer-no-cert",
        "peers:\n  - name: w\n    address: 203.0.113.9\n    auth: certificate\n",
        "no node certificate",
        4,
        11,
    ),
    (
        "bad-ike-proposal",
        "peers:\n  - name: w\n    address: 203.0.113.9\n    psk: env:TEST_PSK_GW\n    ike_proposals: [aes128-sha256]\n",
        "needs a DH group",
        5,
        21,
    ),
    (
        "ike-null-proposal",
        "peers:\n  - name: w\n    address: 203.0.113.9\n    psk: env:TEST_PSK_GW\n    ike_proposals: [null-sha256-modp2048]\n",
        "never allowed for IKE",
        5,
        21,
    ),
    (
        "bad-esp-proposal",
        "policies:\n  - name: a\n    esp_proposals: [aes128gcm-sha256]\n",
        "takes no integrity",
        3,
        21,
    ),
    (
        "manual-sa-key-size",
        "manual_sas:\n  - name: m\n    spi: 0x1000\n    source: 203.0.113.1\n    destination: 203.0.113.2\n    encryption: aes128gcm\n    encryption_key: env:TEST_KEY16\n",
        "needs 20 (16 + 4-byte salt)",
        7,
        21,
    ),
    (
        "manual-sa-auto",
        "manual_sas:\n  - name: m\n    spi: 4096\n    source: 203.0.113.1\n    destination: 203.0.113.2\n    encryption: auto\n",
        "name its algorithms",
        2,
        5,
    ),
    (
        "manual-sa-spi",
        "manual_sas:\n  - name: m\n    spi: 12\n    source: 203.0.113.1\n    destination: 203.0.113.2\n",
        "spi",
        3,
        10,
    ),
    (
        "manual-sa-bad-hex",
        "manual_sas:\n  - name: m\n    spi: 4096\n    source: 203.0.113.1\n    destination: 203.0.113.2\n    encryption: aes128\n    encryption_key: env:TEST_NOT_HEX\n    authentication: sha256\n    authentication_key: env:TEST_KEY32\n",
        "not hex",
        7,
        21,
    ),
    (
        "too-many-roots",
        "certificates:\n  roots: [" + ", ".join(["r.pem"] * 16) + "]\n",
        "at most 15",
        2,
        10,
    ),
    ("defaults-bad", "defaults:\n  level: strict\npolicies:\n  - name: a\n", "level", 2, 10),
    (
        "start-immediate-range",
        "policies:\n  - name: a\n    destination: 203.0.113.0/24\n    start: immediate\n",
        "start: immediate needs a peer",
        4,
        12,
    ),
    (
        "same-selectors",
        "policies:\n  - name: a\n    destination: 203.0.113.0/24\n  - name: b\n    destination: 203.0.113.0/24\n",
        "same selectors and direction as a.out",
        4,
        5,
    ),
    (
        "mirror-pair-disagree",
        "policies:\n  - name: o\n    source: 10.1.0.0/16\n    destination: 10.2.0.0/16\n    mirror: false\n    encryption: aes128gcm\n    authentication: none\n  - name: i\n    source: 10.2.0.0/16\n    destination: 10.1.0.0/16\n    direction: in\n    mirror: false\n    encryption: aes256gcm\n    authentication: none\n",
        "mirrors o.out",
        8,
        5,
    ),
]


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_PSK_GW", "gw-secret-value")
    monkeypatch.setenv("TEST_KEY16", "0x" + "ab" * 16)
    monkeypatch.setenv("TEST_KEY32", "0x" + "cd" * 32)
    monkeypatch.setenv("TEST_NOT_HEX", "this-is-not-hex")
    monkeypatch.delenv("IPSECCONF_TEST_UNSET_VAR", raising=False)


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize(
    ("text", "message", "line", "column"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_malformed(tmp_path: Path, text: str, message: str, line: int, column: int | None) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = load([str(path)])
    errors = [d for d in result.diagnostics if d.severity is Severity.ERROR]
    matching = [d for d in errors if message in d.message]
    assert matching, f"no error containing {message!r}; got {[str(d) for d in result.diagnostics]}"
    d = matching[0]
    assert d.file == str(path)
    assert (d.line, d.column if column is not None else None) == (line, column), str(d)


def test_good_policy_has_no_errors(tmp_path: Path) -> None:
    path = tmp_path / "good.yaml"
    path.write_text(GOOD_POLICY)
    result = load([str(path)])
    assert result.errors == []
    assert sorted(r.name for r in result.rows) == ["web.in", "web.out"]


def test_template_errors_point_at_template_line(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml.j2"
    path.write_text(
        textwrap.dedent(
            """\
            vars:
              n: 2
            policies:
            {% for i in range(n) %}
              - name: p{{ i }}
                source: 10.0.{{ i }}.0/24
                destination: {{ i }}.2.3.4/33
            {% endfor %}
            """
        )
    )
    errors = load([str(path)]).errors
    assert len(errors) == 2
    assert {(e.line, e.column) for e in errors} == {(7, 18)}
    assert all("invalid address or prefix" in e.message for e in errors)


def test_undefined_template_variable(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("policies:\n  - name: a\n    peer: {{ missing }}\n")
    errors = load([str(path)]).errors
    assert len(errors) == 1
    assert "'missing' is undefined" in errors[0].message
    assert errors[0].line == 3


def test_template_syntax_error(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("policies:\n{% for x %}\n  - name: a\n")
    errors = load([str(path)]).errors
    assert "template syntax error" in errors[0].message
    assert errors[0].line == 2


def test_sandbox_blocks_attribute_escape(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("vars: {}\npolicies:\n  - name: \"{{ ''.__class__.__mro__ }}\"\n")
    errors = load([str(path)]).errors
    assert len(errors) == 1
    assert "refused by the sandbox" in errors[0].message
    assert errors[0].line == 3


def test_bad_certificates(tmp_path: Path) -> None:
    root = issue("Root", ca=True)
    other_root = issue("Other Root", ca=True)
    leaf = issue("node", issuer=other_root, ips=("203.0.113.1",))
    expired = issue("old", issuer=root, not_before=NOW.replace(year=NOW.year - 3), days=30)
    (tmp_path / "root.pem").write_bytes(root.cert_pem())
    (tmp_path / "leaf.pem").write_bytes(leaf.cert_pem())
    (tmp_path / "old.pem").write_bytes(expired.cert_pem())
    (tmp_path / "wrong.key").write_bytes(root.key_pem())
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "certificates:\n"
        "  certificate: leaf.pem\n"
        "  private_key: file:wrong.key\n"
        "  roots: [root.pem, junk.pem]\n"
    )
    messages = {(e.line, e.message) for e in load([str(cfg)]).errors}
    assert any(line == 2 and "does not chain to a configured root" in m for line, m in messages)
    assert any(line == 3 and "does not belong to the certificate" in m for line, m in messages)
    assert any(line == 4 and "no valid X.509 certificate" in m for line, m in messages)
    cfg.write_text(
        "certificates:\n  certificate: old.pem\n  private_key: file:wrong.key\n  roots: [root.pem]\n"
    )
    messages = {(e.line, e.message) for e in load([str(cfg)]).errors}
    assert any(line == 2 and "expired" in m for line, m in messages)


def _node_pki(tmp_path: Path, **leaf: Any) -> None:
    """root.pem, and node.pem/node.key issued by it for node.example.org and 203.0.113.1."""
    root = issue("Root", ca=True)
    node = issue("node", issuer=root, dns=("node.example.org",), ips=("203.0.113.1",), **leaf)
    (tmp_path / "root.pem").write_bytes(root.cert_pem())
    (tmp_path / "node.pem").write_bytes(node.cert_pem())
    (tmp_path / "node.key").write_bytes(node.key_pem())


def _cert_peer_config(local_id: str) -> str:
    return (
        "certificates:\n"
        "  certificate: node.pem\n"
        "  private_key: file:node.key\n"
        "  roots: [root.pem]\n"
        "peers:\n"
        "  - name: gw\n"
        "    address: 203.0.113.9\n"
        "    auth: certificate\n"
        f"    local_id: {local_id}\n"
    )


def _validate(capsys: pytest.CaptureFixture[str], path: Path) -> tuple[int, str]:
    code = main(["validate", str(path)])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("local_id", "shown"),
    [
        ("other.example.org", "fqdn:other.example.org"),
        ("203.0.113.2", "ip:203.0.113.2"),
        ("ops@example.org", "email:ops@example.org"),
        ("'CN=someone else,O=ipsecconf tests'", "dn:CN=someone else,O=ipsecconf tests"),
    ],
)
def test_certificate_without_the_configured_identity(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], local_id: str, shown: str
) -> None:
    _node_pki(tmp_path)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(_cert_peer_config(local_id))
    code, err = _validate(capsys, cfg)
    assert code == 1
    # Line 9, column 15: the value of peers[0].local_id.
    assert (
        f"{cfg}:9:15: error: the node certificate does not carry the identity {shown} "
        "(subjectAltName or subject DN)" in err
    ), err
    assert "invalid: 1 error" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "local_id",
    ["node.example.org", "NODE.example.org", "203.0.113.1", "'O=ipsecconf tests, CN=node'"],
)
def test_certificate_with_the_configured_identity_validates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], local_id: str
) -> None:
    # The control case: the same configuration, an identity the certificate carries.
    _node_pki(tmp_path)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(_cert_peer_config(local_id))
    code, err = _validate(capsys, cfg)
    assert (code, err) == (0, "")


@pytest.mark.parametrize(
    ("leaf", "message"),
    [
        ({"digital_signature": False}, "may not sign (no digitalSignature key usage)"),
        (
            {"extended_usages": (ExtendedKeyUsageOID.CODE_SIGNING,)},
            "has an extended key usage that excludes IKE",
        ),
    ],
    ids=["no-digital-signature", "eku-code-signing"],
)
def test_certificate_with_the_wrong_key_usage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], leaf: dict[str, object], message: str
) -> None:
    _node_pki(tmp_path, **leaf)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(_cert_peer_config("node.example.org"))
    code, err = _validate(capsys, cfg)
    assert code == 1
    # Line 2, column 16: the value of certificates.certificate.
    assert f"{cfg}:2:16: error: 'CN=node,O=ipsecconf tests' {message}" in err, err
    assert "invalid: 1 error" in err


def test_nothing_malformed_raises(tmp_path: Path) -> None:
    """Random garbage never makes the loader raise."""
    samples = [
        "",
        "\x00\x01",
        "{",
        "[1, 2",
        ": :",
        "policies: 3",
        "policies:\n  - 3\n",
        "policies:\n  - name: a\n    source: {address: [1]}\n",
        "vars: 3\n",
        "peers: {a: 1}\n",
        "psk_file: [3]\n",
        "defaults: [1]\n",
        "certificates: 5\n",
    ]
    for i, text in enumerate(samples):
        path = tmp_path / f"s{i}.yaml"
        path.write_text(text)
        result = load([str(path)])
        assert result.diagnostics is not None
