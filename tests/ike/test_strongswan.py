"""Interoperability with a real peer: strongSwan 5.9.8 in a network namespace.

For each key exchange (modp2048, ecp256, x25519) and each cipher family (AES-CBC with
HMAC-SHA-256, AES-GCM), in both roles, our core over a plain UDP socket establishes an
IKE SA and a tunnel-mode CHILD SA with strongSwan using pre-shared keys, and
``swanctl --list-sas`` shows the same IKE SPIs, child SPIs (crossed) and algorithms that
our events report; the SK_* and child keys equal those charon logs at level 4; and a
Delete from our side removes the SA from strongSwan.  strongSwan's user-space dataplane
needs ESP-in-UDP, so its side sets ``encap = yes`` and both sides move to UDP 4500, which
exercises our NAT-T switch.

Needs root and the Debian packages of scripts/install-test-deps.sh; skipped otherwise.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ike.strongswan import (
    ME_ADDR,
    ME_ADDR6,
    OUR_NET,
    OUR_NET6,
    PSK,
    SITE_NET,
    SITE_NET6,
    SS_ADDR,
    SS_ADDR6,
    Lab,
    close_driver,
    logged_secrets,
    missing_requirements,
    read_result,
)
from tests.ike.udp_driver import fingerprint

pytestmark = [pytest.mark.slow, pytest.mark.netns]

# (our IKE proposal, strongSwan's, our ESP, strongSwan's, expected strongSwan names)
SUITES: dict[str, tuple[str, str, str, str, dict[str, str]]] = {
    "cbc": (
        "aes128-sha256-{dh}",
        "aes128-sha256-{ss_dh}",
        "aes128-sha256",
        "aes128-sha256",
        {"encr-alg": "AES_CBC", "encr-keysize": "128", "integ-alg": "HMAC_SHA2_256_128"},
    ),
    "gcm": (
        "aes256gcm-prfsha256-{dh}",
        "aes256gcm16-prfsha256-{ss_dh}",
        "aes256gcm",
        "aes256gcm16",
        {"encr-alg": "AES_GCM_16", "encr-keysize": "256"},
    ),
}
GROUPS = {"modp2048": "MODP_2048", "ecp256": "ECP_256", "x25519": "CURVE_25519"}


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    reason = missing_requirements()
    if reason:
        pytest.skip(f"strongSwan interop test skipped: {reason}")
    with tempfile.TemporaryDirectory(prefix="ipsecconf-ss-") as tmp:
        instance = Lab(Path(tmp))
        try:
            instance.open()
            yield instance
        finally:
            instance.close()


def _spec(role: str, ike: str, esp: str) -> dict[str, Any]:
    return {
        "role": role,
        "local": ME_ADDR,
        "remote": SS_ADDR,
        "psk": PSK,
        "child": "net",
        "local_ts": OUR_NET,
        "remote_ts": SITE_NET,
        "ike": [ike],
        "esp": [esp],
        "mode": "tunnel",
        "timeout": 25,
        "linger": 0.2,
    }


@pytest.mark.parametrize("group", list(GROUPS))
@pytest.mark.parametrize("suite", list(SUITES))
@pytest.mark.parametrize("role", ["initiator", "responder"])
def test_psk_exchange_with_strongswan(lab: Lab, role: str, suite: str, group: str) -> None:
    ike, ss_ike, esp, ss_esp, names = SUITES[suite]
    name = f"c{role[0]}{suite}{group}"
    # Each case has its own connection name and ends by deleting its IKE SA from our side.
    lab.load(name, ss_ike.format(ss_dh=group.replace("x25519", "curve25519")), ss_esp)
    mark = lab.log_size()
    driver = lab.start_driver(_spec(role, ike.format(dh=group), esp))
    try:
        if role == "responder":
            initiated = lab.swanctl(
                "--initiate", "--ike", name, "--child", "net", "--timeout", "20", check=False
            )
            assert initiated.returncode == 0, initiated.stdout + initiated.stderr + lab.log_text()
        result = read_result(driver)
        events = result["events"]
        kinds = [e["type"] for e in events]
        assert kinds == ["ike", "child"], f"{events}\n{lab.log_text()[-4000:]}"
        ike_event, child_event = events

        sas = [sa for sa in lab.list_sas() if sa["name"] == name]
        assert len(sas) == 1, lab.list_sas()
        sa = sas[0]
        assert sa["state"] == "ESTABLISHED"
        assert sa["initiator-spi"] == ike_event["spi_i"]
        assert sa["responder-spi"] == ike_event["spi_r"]
        for key, value in names.items():
            assert sa[key] == value, (key, sa)
        assert sa["prf-alg"] == "PRF_HMAC_SHA2_256"
        assert sa["dh-group"] == GROUPS[group]
        assert ike_event["dh"] == group
        assert ike_event["local_port"] == 4500 and ike_event["remote_port"] == 4500

        children = list(sa["child-sas"].values())
        assert len(children) == 1
        child = children[0]
        assert child["state"] == "INSTALLED"
        assert child["mode"] == "TUNNEL" and child["protocol"] == "ESP" and child["encap"] == "yes"
        # strongSwan's inbound SPI is the one we send with, and the other way round.
        assert child["spi-in"] == child_event["spi_out"]
        assert child["spi-out"] == child_event["spi_in"]
        assert child["encr-alg"] == names["encr-alg"]
        assert child["encr-keysize"] == names["encr-keysize"]
        if "integ-alg" in names:
            assert child["integ-alg"] == names["integ-alg"]
            assert child_event["integ"] == "sha256"
        else:
            assert "integ-alg" not in child and child_event["integ"] is None
        assert child["local-ts"] == [SITE_NET] and child["remote-ts"] == [OUR_NET]
        assert child_event["udp_encap"] is True and child_event["mode"] == "tunnel"
        assert child_event["esn"] is False
        assert result["drops"] == {}, result["drops"]

        # Our side deletes the IKE SA; strongSwan confirms and forgets it.
        assert close_driver(driver, delete=True), lab.log_text()[-3000:]
        assert not [s for s in lab.list_sas() if s["name"] == name]
    finally:
        if driver.poll() is None:  # a failed check: stop our driver, never leave it
            close_driver(driver, delete=False)

    # charon logged its keys (level 4): ours must be the same, byte for byte.
    logged = logged_secrets(lab.log_text()[mark:])
    for name in ("sk_d", "sk_ai", "sk_ar", "sk_ei", "sk_er", "sk_pi", "sk_pr"):
        label = f"Sk_{name[3:]} secret"
        assert fingerprint(logged.get(label, b"")) == ike_event["keys"][name], label
    sent, received = ("out", "in") if role == "initiator" else ("in", "out")
    keys = child_event["keys"]
    assert fingerprint(logged["encryption initiator key"]) == keys[f"encr_{sent}"]
    assert fingerprint(logged["encryption responder key"]) == keys[f"encr_{received}"]
    assert fingerprint(logged.get("integrity initiator key", b"")) == keys[f"integ_{sent}"]
    assert fingerprint(logged.get("integrity responder key", b"")) == keys[f"integ_{received}"]


def _run(lab: Lab, name: str, spec: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Run one case, then delete the IKE SA if one was set up; (result, swanctl output).
    The checks run on the result and on ``list_sas`` captured before the delete."""
    driver = lab.start_driver(spec)
    initiated = ""
    try:
        if spec["role"] == "responder":
            done = lab.swanctl(
                "--initiate", "--ike", name, "--child", "net", "--timeout", "10", check=False
            )
            initiated = done.stdout + done.stderr
        result = read_result(driver)
        result["sas"] = [sa for sa in lab.list_sas() if sa["name"] == name]
        return result, initiated
    finally:
        close_driver(driver, delete=True)


def test_auto_proposals_and_invalid_ke_with_strongswan(lab: Lab) -> None:
    # Our "auto" list guesses x25519 first; strongSwan only takes ecp384 and says so
    # with INVALID_KE_PAYLOAD; we retry in that group.
    lab.load("auto", "aes256gcm16-prfsha384-ecp384", "aes256gcm16")
    spec = {**_spec("initiator", "", ""), "ike": [], "esp": []}
    result, _ = _run(lab, "auto", spec)
    kinds = [e["type"] for e in result["events"]]
    assert kinds == ["ike", "child"], f"{result}\n{lab.log_text()[-3000:]}"
    ike_event, child_event = result["events"]
    assert ike_event["dh"] == "ecp384" and ike_event["encr"] == "aes256gcm"
    assert ike_event["prf"] == "prfsha384"
    assert child_event["encr"] == "aes256gcm"
    [sa] = result["sas"]
    assert sa["dh-group"] == "ECP_384" and sa["initiator-spi"] == ike_event["spi_i"]
    assert "N(INVAL_KE)" in lab.log_text()  # strongSwan asked for its group


def test_wrong_psk_with_strongswan(lab: Lab) -> None:
    lab.load("badpsk", "aes128-sha256-x25519", "aes128-sha256")
    spec = {**_spec("initiator", "aes128-sha256-x25519", "aes128-sha256"), "psk": "not-it"}
    result, _ = _run(lab, "badpsk", spec)
    [failure] = result["events"]
    assert failure["type"] == "failed" and failure["reason"] == "authentication-failed"
    assert failure["notify"] == 24  # AUTHENTICATION_FAILED, sent by strongSwan
    assert not result["sas"]


def test_no_shared_proposal_with_strongswan(lab: Lab) -> None:
    lab.load("noprop", "aes256-sha512-ecp384", "aes256-sha512")
    spec = _spec("responder", "aes128-sha256-x25519", "aes128-sha256")
    mark = lab.log_size()
    result, initiated = _run(lab, "noprop", spec)
    [failure] = result["events"]
    assert failure["type"] == "failed" and failure["reason"] == "no-proposal-chosen"
    assert failure["notify"] == 14
    assert "NO_PROPOSAL_CHOSEN" in lab.log_text()[mark:], initiated


def test_unacceptable_selectors_with_strongswan(lab: Lab) -> None:
    lab.load("badts", "aes128-sha256-x25519", "aes128-sha256")
    spec = {
        **_spec("initiator", "aes128-sha256-x25519", "aes128-sha256"),
        "remote_ts": "198.51.100.128/25",
    }
    result, _ = _run(lab, "badts", spec)
    assert [e["type"] for e in result["events"]] == ["ike", "failed"]
    failure = result["events"][1]
    assert failure["reason"] == "ts-unacceptable" and failure["notify"] == 38
    # The IKE SA stays up on both sides; only the child failed (RFC 7296 2.21.3).
    [sa] = result["sas"]
    assert sa["state"] == "ESTABLISHED" and not sa["child-sas"]


@pytest.mark.parametrize("role", ["initiator", "responder"])
def test_ipv6_exchange_with_strongswan(lab: Lab, role: str) -> None:
    name = f"v6{role[0]}"
    lab.load(name, "aes256gcm16-prfsha256-curve25519", "aes256gcm16", family=6)
    spec = {
        **_spec(role, "aes256gcm-prfsha256-x25519", "aes256gcm"),
        "local": ME_ADDR6,
        "remote": SS_ADDR6,
        "local_ts": OUR_NET6,
        "remote_ts": SITE_NET6,
    }
    result, initiated = _run(lab, name, spec)
    assert [e["type"] for e in result["events"]] == ["ike", "child"], (
        f"{result} {initiated}\n{lab.log_text()[-3000:]}"
    )
    ike_event, child_event = result["events"]
    [sa] = result["sas"]
    assert sa["remote-host"] == ME_ADDR6 and sa["remote-port"] == "4500"
    assert (sa["initiator-spi"], sa["responder-spi"]) == (ike_event["spi_i"], ike_event["spi_r"])
    [child] = sa["child-sas"].values()
    assert child["spi-in"] == child_event["spi_out"] and child["spi-out"] == child_event["spi_in"]
    assert child["local-ts"] == [SITE_NET6] and child["remote-ts"] == [OUR_NET6]
