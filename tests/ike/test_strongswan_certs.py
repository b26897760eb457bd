"""Interoperability with strongSwan 5.9.8: RSA certificates, rekeys and deletes.

In both roles our core authenticates to charon with an RSA certificate from a small PKI
made by tests/certgen.py (charon trusts the root, we trust the same root), and charon's
log confirms it verified our signature; the certificate-sized IKE_AUTH messages travel as
RFC 7383 fragments in both directions.  Then, on that IKE SA, a child rekey and an IKE
rekey are started by each side in turn; after each, ``swanctl --list-sas`` and our core
agree on the new IKE and child SPIs and neither lists the old ones.  Finally a child and
the IKE SA are deleted (one by each side, swapped between the two roles), and both
sides forget them.  Simultaneous child and IKE rekeys (requests crossed on the wire)
end with one surviving SA both sides agree on, and charon verifies our AUTH by method 1,
RFC 7427 PSS and ECDSA, and RFC 4754 ECDSA.

Our side is tests/ike/udp_driver.py in interactive mode: a tiny engine that follows the
IKE SAs born from rekeys, prints events as they happen and obeys commands on stdin.
Needs root and the Debian packages of scripts/install-test-deps.sh; skipped otherwise.
"""

from __future__ import annotations

import json
import os
import select
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.certgen import Issued, issue
from tests.ike.strongswan import (
    ME_ADDR,
    OUR_NET,
    SITE_NET,
    SS_ADDR,
    Lab,
    missing_requirements,
)

pytestmark = [pytest.mark.slow, pytest.mark.netns]


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    reason = missing_requirements()
    if reason:
        pytest.skip(f"strongSwan interop test skipped: {reason}")
    with tempfile.TemporaryDirectory(prefix="ipsecconf-ss-cert-") as tmp:
        instance = Lab(Path(tmp))
        try:
            instance.open()
            yield instance
        finally:
            instance.close()


_ROOTS: dict[str, Issued] = {}


def pki_root(pki: dict[str, str]) -> Issued:
    """The root (with its key) that issued the files of ``pki``."""
    return _ROOTS[pki["root.pem"]]


@pytest.fixture(scope="module")
def pki(lab: Lab) -> dict[str, str]:
    """Root, strongSwan's and our RSA certificates as files in the lab's directory."""
    root = issue("Interop Root", ca=True, key_kind="rsa")
    _ROOTS[str(lab.dir / "root.pem")] = root
    files: dict[str, bytes] = {"root.pem": root.cert_pem()}
    for who, addr in (("ss", SS_ADDR), ("me", ME_ADDR)):
        leaf = issue(f"interop-{who}", issuer=root, key_kind="rsa", ips=(addr,))
        files[f"{who}.pem"] = leaf.cert_pem()
        files[f"{who}-key.pem"] = leaf.key_pem()
    paths = {}
    for name, data in files.items():
        path = lab.dir / name
        path.write_bytes(data)
        path.chmod(0o600)
        paths[name] = str(path)
    return paths


class Driver:
    """The interactive UDP driver: commands in, events and replies out (bounded waits)."""

    def __init__(self, lab: Lab, spec: dict[str, Any]) -> None:
        self.proc = lab.start_driver(spec)
        self.events: list[dict[str, Any]] = []
        self._buffer = b""

    def _line(self, timeout: float) -> dict[str, Any] | None:
        # Our own line buffer over the raw pipe: a TextIO buffer would hide lines from select.
        assert self.proc.stdout is not None
        while b"\n" not in self._buffer:
            fd = self.proc.stdout.fileno()
            ready, _, _ = select.select([fd], [], [], timeout)
            if not ready:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                raise RuntimeError(f"driver exited: {self.proc.poll()}")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        message: dict[str, Any] = json.loads(line)
        if "event" in message:
            self.events.append(message["event"])
        return message

    def send(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            message = self._line(deadline - time.monotonic())
            if message is not None and "event" not in message:
                return message
        raise RuntimeError(f"no answer to {command!r}")

    def wait_event(self, kind: str, timeout: float = 25) -> dict[str, Any]:
        seen = len(self.events)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events[seen:]:
                if event["type"] == kind:
                    return event
            seen = len(self.events)
            self._line(min(0.5, max(0.0, deadline - time.monotonic())))
        raise RuntimeError(f"no {kind} event; events: {self.events}")

    def stop(self) -> dict[str, Any]:
        if self.proc.poll() is not None:
            return {}
        try:
            reply = self.send("stop")
        except RuntimeError:
            reply = {}
        try:
            self.proc.wait(timeout=10)
        except Exception:  # never leave our process behind
            self.proc.kill()
            self.proc.wait(timeout=10)
        return reply


def _spec(role: str, pki: dict[str, str]) -> dict[str, Any]:
    return {
        "interactive": True,
        "role": role,
        "local": ME_ADDR,
        "remote": SS_ADDR,
        "psk": "unused",
        "child": "net",
        "local_ts": OUR_NET,
        "remote_ts": SITE_NET,
        "ike": ["aes128-sha256-x25519"],
        "esp": ["aes128-sha256"],
        "mode": "tunnel",
        "timeout": 150,
        "cert": pki["me.pem"],
        "key": pki["me-key.pem"],
        "roots": [pki["root.pem"]],
    }


def _ours(driver: Driver) -> tuple[tuple[str, str], set[tuple[str, str]]] | None:
    """Our one established IKE SA and its child pairs; ``None`` while a rekey is
    changing hands (no or two established SAs)."""
    live = driver.send("status")["status"]["ike"]
    if len(live) != 1:
        return None
    [ike] = live
    return (ike["spi_i"], ike["spi_r"]), {(c["spi_in"], c["spi_out"]) for c in ike["children"]}


def _theirs(lab: Lab, name: str) -> list[tuple[tuple[str, str], set[tuple[str, str]]]]:
    out = []
    for sa in lab.list_sas():
        if sa["name"] != name:
            continue
        children = {
            (c["spi-out"], c["spi-in"])  # as our (in, out)
            for c in sa.get("child-sas", {}).values()
            if c.get("state") == "INSTALLED"
        }
        out.append(((sa["initiator-spi"], sa["responder-spi"]), children))
    return out


def agree(
    lab: Lab, driver: Driver, name: str, old: tuple[Any, Any] | None = None
) -> tuple[Any, Any]:
    """Wait (bounded) until both sides list the same one IKE SA and child pairs; return
    them, checked to differ from ``old`` where a rekey was asked for."""
    deadline = time.monotonic() + 20
    ours: Any = None
    theirs: Any = None
    while time.monotonic() < deadline:
        ours = _ours(driver)
        theirs = _theirs(lab, name)
        if theirs == [ours]:
            return ours
        time.sleep(0.3)
    raise AssertionError(f"ours {ours} vs strongSwan {theirs}\n{lab.log_text()[-3000:]}")


@pytest.mark.parametrize("role", ["initiator", "responder"])
def test_certificates_rekeys_and_deletes_with_strongswan(
    lab: Lab, pki: dict[str, str], role: str
) -> None:
    name = f"cert{role[0]}"
    certs = {"cert": pki["ss.pem"], "key": pki["ss-key.pem"], "root": pki["root.pem"]}
    lab.load(name, "aes128-sha256-x25519", "aes128-sha256", certs=certs)
    mark = lab.log_size()
    driver = Driver(lab, _spec(role, pki))
    try:
        if role == "responder":
            done = lab.swanctl(
                "--initiate", "--ike", name, "--child", "net", "--timeout", "20", check=False
            )
            assert done.returncode == 0, done.stdout + lab.log_text()[-3000:]
        ike = driver.wait_event("ike")
        driver.wait_event("child") if not any(e["type"] == "child" for e in driver.events) else None
        log = lab.log_text()[mark:]
        # charon verified our certificate and RFC 7427 signature, and we verified its.
        assert f"authentication of '{ME_ADDR}' with RSA_EMSA_PKCS1_SHA2_256 successful" in log, log
        # The certificate-sized IKE_AUTH messages went as RFC 7383 fragments both ways.
        assert "received fragment #" in log and "splitting IKE message" in log, log
        first = agree(lab, driver, name)
        assert first[0] == (ike["spi_i"], ike["spi_r"])

        # Child rekeys: ours, then strongSwan's; each time new SPIs everywhere.
        driver.send("rekey_child")
        driver.wait_event("child-deleted")
        second = agree(lab, driver, name)
        assert second[0] == first[0] and not second[1] & first[1]
        lab.swanctl("--rekey", "--child", "net")
        driver.wait_event("child-deleted")
        third = agree(lab, driver, name)
        assert third[0] == first[0] and not third[1] & second[1]

        # IKE rekeys: ours, then strongSwan's; the children move to the new IKE SA.
        driver.send("rekey_ike")
        driver.wait_event("ike-deleted")
        fourth = agree(lab, driver, name)
        assert fourth[0] != first[0] and fourth[1] == third[1]
        lab.swanctl("--rekey", "--ike", name)
        driver.wait_event("ike-deleted")
        fifth = agree(lab, driver, name)
        assert fifth[0] != fourth[0] and fifth[1] == third[1]

        # A child rekey still works under the twice-rekeyed IKE SA's keys.
        driver.send("rekey_child")
        driver.wait_event("child-deleted")
        sixth = agree(lab, driver, name)
        assert not sixth[1] & fifth[1]

        # Deletes: child and IKE SA, one by each side (swapped between the roles).
        if role == "initiator":
            driver.send("delete_child")
        else:
            lab.swanctl("--terminate", "--child", "net", "--timeout", "10")
        driver.wait_event("child-deleted")
        ike_spis, children = agree(lab, driver, name)
        assert ike_spis == fifth[0] and not children
        if role == "initiator":
            lab.swanctl("--terminate", "--ike", name, "--timeout", "10")
        else:
            driver.send("close")
        driver.wait_event("ike-deleted")
        deadline = time.monotonic() + 10
        while _theirs(lab, name) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _theirs(lab, name)
        assert driver.send("status")["status"]["ike"] == []
    finally:
        drops = driver.stop().get("drops", {})
    # Nothing strongSwan sent was refused (retransmits aside).
    assert not {k: v for k, v in drops.items() if k != "retransmit"}, drops


def _crossed(lab: Lab, driver: Driver, ours: str, theirs: list[str]) -> None:
    """Start our request and strongSwan's so that they cross on the wire: ours is
    parked, strongSwan's arrives and is parked too, then ours goes out first."""
    driver.send("hold")
    driver.send(ours)
    mark = lab.log_size()
    swanctl = lab.swanctl_async(*theirs)  # waits for the exchange: cannot finish yet
    try:
        deadline = time.monotonic() + 10
        while "sending packet" not in lab.log_text()[mark:] and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        assert driver.send("release")["released"][1] >= 1, lab.log_text()[mark:]
        swanctl.communicate(timeout=25)
    finally:
        if swanctl.poll() is None:  # our own child process only
            swanctl.kill()
            swanctl.communicate(timeout=10)


@pytest.mark.parametrize("what", ["child", "ike"])
def test_simultaneous_rekey_with_strongswan(lab: Lab, pki: dict[str, str], what: str) -> None:
    name = f"coll{what}"
    certs = {"cert": pki["ss.pem"], "key": pki["ss-key.pem"], "root": pki["root.pem"]}
    lab.load(name, "aes128-sha256-x25519", "aes128-sha256", certs=certs)
    driver = Driver(lab, _spec("initiator", pki))
    try:
        driver.wait_event("child")
        before = agree(lab, driver, name)
        mark = lab.log_size()
        if what == "child":
            _crossed(lab, driver, "rekey_child", ["--rekey", "--child", "net"])
        else:
            _crossed(lab, driver, "rekey_ike", ["--rekey", "--ike", name])
        after = agree(lab, driver, name)
        log = lab.log_text()[mark:]
        # Both sides saw the collision and settled on the same survivor (RFC 7296 2.8.1).
        assert "collision" in log.lower(), log
        if what == "child":
            assert after[0] == before[0] and not after[1] & before[1]
        else:
            assert after[0] != before[0] and after[1] == before[1]
    finally:
        drops = driver.stop().get("drops", {})
    assert not {k: v for k, v in drops.items() if k != "retransmit"}, drops


@pytest.mark.parametrize(
    ("kind", "signature", "scheme"),
    [
        ("rsa", "classic", "RSA signature"),  # charon's name for AUTH method 1
        ("rsa", "pss", "RSA_EMSA_PSS"),
        ("ec", "auto", "ECDSA_WITH_SHA256_DER"),
        ("ec", "classic", "ECDSA-256"),
    ],
)
def test_signature_schemes_with_strongswan(
    lab: Lab, pki: dict[str, str], kind: str, signature: str, scheme: str
) -> None:
    """Our AUTH by method 1, RFC 7427 PSS and ECDSA (RFC 7427 and RFC 4754) is what
    charon verifies; charon's own RSA signature we verify in every case."""
    name = f"sig{kind}{signature}"
    me = issue(f"interop-me-{kind}", issuer=pki_root(pki), key_kind=kind, ips=(ME_ADDR,))
    cert, key = lab.dir / f"{name}.pem", lab.dir / f"{name}-key.pem"
    cert.write_bytes(me.cert_pem())
    key.write_bytes(me.key_pem())
    key.chmod(0o600)
    certs = {"cert": pki["ss.pem"], "key": pki["ss-key.pem"], "root": pki["root.pem"]}
    lab.load(name, "aes128-sha256-x25519", "aes128-sha256", certs=certs)
    mark = lab.log_size()
    spec = {**_spec("initiator", pki), "cert": str(cert), "key": str(key), "signature": signature}
    driver = Driver(lab, spec)
    try:
        driver.wait_event("child")
        log = lab.log_text()[mark:]
        assert f"authentication of '{ME_ADDR}' with {scheme}" in log, log
        agree(lab, driver, name)
        driver.send("close")
        driver.wait_event("ike-deleted")
    finally:
        driver.stop()
