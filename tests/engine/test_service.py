"""The service over the store: saved plans, staleness, all-or-nothing apply, certificates."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ipsecconf.crypto.x509 import fingerprint
from ipsecconf.engine.apply import ApplyHooks
from ipsecconf.engine.imperative import CertFile, CertificateSetError, NodeCert
from ipsecconf.engine.service import Service, StalePlanError, StoreBackend
from ipsecconf.plan import planfile
from ipsecconf.plan.desired import fp_name
from ipsecconf.plan.model import Action
from ipsecconf.plan.planfile import Inputs
from ipsecconf.state import StaleStateError
from tests import certgen
from tests.stateutil import GW_PSK, PSK, ROOT, config, write


@pytest.fixture
def svc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Service:
    monkeypatch.setenv("TEST_PSK", PSK)
    monkeypatch.setenv("TEST_GW_PSK", GW_PSK)
    return Service(StoreBackend(str(tmp_path / "state.db")))


def _inputs(path: Path) -> Inputs:
    return Inputs.make([str(path)], {}, [], False)


def _dump(svc: Service) -> list[tuple[object, ...]]:
    conn = svc.backend.store.conn  # type: ignore[attr-defined]
    out: list[tuple[object, ...]] = []
    for table in ("policies", "resources", "secrets", "sas", "meta", "history"):
        out += [(table, *r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2")]
    return out


def test_saved_plan_applies_exactly_once(svc: Service, tmp_path: Path) -> None:
    cfg = write(tmp_path / "cfg", config(2))
    svc.save(svc.plan(_inputs(cfg)), str(tmp_path / "p.plan"))
    saved = planfile.read(str(tmp_path / "p.plan"))
    svc.apply(svc.replan_saved(saved))
    with pytest.raises(
        StalePlanError, match=r"is stale: it was made at serial 0, the state is now at serial 1"
    ):
        svc.replan_saved(saved)


def test_saved_plan_refused_when_config_or_secret_changed(
    svc: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = write(tmp_path / "cfg", config(2))
    svc.save(svc.plan(_inputs(cfg)), str(tmp_path / "p.plan"))
    saved = planfile.read(str(tmp_path / "p.plan"))
    monkeypatch.setenv("TEST_PSK", "a-different-key")
    with pytest.raises(StalePlanError, match="a secret changed"):
        svc.replan_saved(saved)
    monkeypatch.setenv("TEST_PSK", PSK)
    write(tmp_path / "cfg", config(2, enc="aes256"))
    with pytest.raises(StalePlanError, match="configuration changed"):
        svc.replan_saved(saved)
    shutil.rmtree(tmp_path / "cfg")
    with pytest.raises(StalePlanError, match="no longer loads"):
        svc.replan_saved(saved)


def test_saved_plan_for_another_state_is_refused(svc: Service, tmp_path: Path) -> None:
    cfg = write(tmp_path / "cfg", config(1))
    svc.save(svc.plan(_inputs(cfg)), str(tmp_path / "p.plan"))
    other = Service(StoreBackend(str(tmp_path / "other.db")))
    with pytest.raises(StalePlanError, match="another state"):
        other.replan_saved(planfile.read(str(tmp_path / "p.plan")))


def test_state_moving_between_plan_and_apply_is_refused(svc: Service, tmp_path: Path) -> None:
    cfg = write(tmp_path / "cfg", config(1))
    planned = svc.plan(_inputs(cfg))
    svc.apply(svc.plan(_inputs(cfg)))
    with pytest.raises(StaleStateError, match="saved plan is stale"):
        svc.apply(planned)


class _FailHalfway(ApplyHooks):
    def __init__(self) -> None:
        self.begun = False

    def transaction_begun(self, total: int) -> None:
        self.begun = True

    def progress(self, done: int, total: int) -> None:
        if done * 2 >= total:
            raise RuntimeError("disk full (simulated by the hook)")


def test_apply_is_all_or_nothing(svc: Service, tmp_path: Path) -> None:
    cfg = write(tmp_path / "cfg", config(3))
    svc.apply(svc.plan(_inputs(cfg)))
    before = _dump(svc)
    write(tmp_path / "cfg", config(5, enc="aes256"))
    planned = svc.plan(_inputs(cfg))
    hooks = _FailHalfway()
    with pytest.raises(RuntimeError, match="disk full"):
        svc.apply(planned, hooks)
    assert hooks.begun
    assert _dump(svc) == before
    svc.apply(svc.plan(_inputs(cfg)))  # and the store is still usable
    assert not svc.plan(_inputs(cfg)).plan.has_changes


def test_a_no_op_apply_does_not_move_the_serial(svc: Service, tmp_path: Path) -> None:
    cfg = write(tmp_path / "cfg", config(1))
    svc.apply(svc.plan(_inputs(cfg)))
    serial = svc.backend.snapshot().serial
    svc.apply(svc.plan(_inputs(cfg)))
    assert svc.backend.snapshot().serial == serial and len(svc.backend.history()) == 1


def test_certificates_compare_by_fingerprint(svc: Service, tmp_path: Path) -> None:
    example = tmp_path / "s2s"
    shutil.copytree(ROOT / "examples" / "site-to-site", example)
    planned = svc.plan(_inputs(example))
    certs = sorted(c.address for c in planned.plan.changes if c.kind == "cert")
    assert certs[0] == "cert.intermediate." + certs[0].split(".")[2]
    assert "cert.node" in certs and any(a.startswith("cert.root.") for a in certs)
    node = next(c for c in planned.plan.changes if c.address == "cert.node")
    assert node.sensitive == ["private_key"] and "_pem" not in (node.after or {})
    svc.apply(planned)
    (example / "ipsec.yaml").rename(example / "main.yaml")  # moved files: same certificates
    assert not svc.plan(_inputs(example)).plan.has_changes
    shown = svc.show("certs")
    assert [c["role"] for c in shown] == ["node", "intermediate", "root"]
    assert all(":" in c["fingerprint"] and "PRIVATE" not in str(c) for c in shown)


def _cert_config(d: Path, root: certgen.Issued, node: certgen.Issued) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "root.pem").write_bytes(root.cert_pem())
    (d / "node.pem").write_bytes(node.cert_pem())
    (d / "node.key").write_bytes(node.key_pem())
    return write(
        d,
        "certificates:\n  certificate: node.pem\n  private_key: file:node.key\n"
        "  roots: [root.pem]\n"
        "peers:\n  - name: gw\n    address: 203.0.113.9\n    auth: certificate\n"
        "    local_id: node.example.org\n",
    )


def test_a_certificate_changed_in_place_is_a_change(svc: Service, tmp_path: Path) -> None:
    root = certgen.issue("Test Root", ca=True)
    node = certgen.issue("node", issuer=root, dns=("node.example.org",))
    cfg = _cert_config(tmp_path / "cfg", root, node)
    svc.apply(svc.plan(_inputs(cfg)))
    assert not svc.plan(_inputs(cfg)).plan.has_changes

    # The same certificate in a file with other bytes (text before the PEM block, as
    # openssl's "Bag Attributes" export writes): no change, certificates are fingerprints.
    (tmp_path / "cfg" / "node.pem").write_bytes(b"subject=CN = node\n" + node.cert_pem())
    assert not svc.plan(_inputs(cfg)).plan.has_changes

    # Renewed in place: same path, same key and names, another certificate.
    renewed = certgen.issue("node", issuer=root, dns=("node.example.org",), key=node.key)
    (tmp_path / "cfg" / "node.pem").write_bytes(renewed.cert_pem())
    planned = svc.plan(_inputs(cfg))
    (change,) = planned.plan.changes
    assert change.address == "cert.node" and change.action is Action.REPLACE
    assert change.before is not None and change.after is not None
    old_fp, new_fp = change.before["fingerprint"], change.after["fingerprint"]
    assert new_fp == fingerprint(renewed.cert) != old_fp == fingerprint(node.cert)
    assert [f.path for f in change.fields if f.forces_replacement] == ["fingerprint"]
    assert change.sensitive == []  # the key file did not change
    svc.apply(planned)
    assert [c["fingerprint"] for c in svc.show("certs") if c["role"] == "node"] == [new_fp]
    assert not svc.plan(_inputs(cfg)).plan.has_changes

    # A root replaced in place: roots are named by fingerprint, so one goes, one comes.
    new_root = certgen.issue("Test Root", ca=True)
    new_node = certgen.issue("node", issuer=new_root, dns=("node.example.org",), key=node.key)
    _cert_config(tmp_path / "cfg", new_root, new_node)
    (tmp_path / "cfg" / "node.key").write_bytes(node.key_pem())
    changes = {c.address: c.action for c in svc.plan(_inputs(cfg)).plan.changes}
    assert changes == {
        "cert.node": Action.REPLACE,
        f"cert.root.{fp_name(fingerprint(root.cert))}": Action.DELETE,
        f"cert.root.{fp_name(fingerprint(new_root.cert))}": Action.CREATE,
    }


def test_cert_set_writes_unmanaged_entries_and_checks_the_key(svc: Service, tmp_path: Path) -> None:
    root = certgen.issue("Test Root", ca=True)
    leaf = certgen.issue("node.example.org", issuer=root)
    other = certgen.issue("other", issuer=root)
    node = NodeCert(
        CertFile(leaf.cert_pem(), "/etc/ipsec/node.pem"), leaf.key_pem(), "file:/etc/ipsec/node.key"
    )
    with pytest.raises(CertificateSetError, match="does not belong"):
        svc.backend.set_certificates(node=NodeCert(node.cert, other.key_pem(), None))
    with pytest.raises(CertificateSetError, match="1 to 15"):
        svc.backend.set_certificates(roots=[CertFile(root.cert_pem(), "r.pem")] * 16)
    svc.backend.set_certificates(node=node, roots=[CertFile(root.cert_pem(), "/etc/ipsec/r.pem")])
    shown = svc.show("certs")
    assert [(c["role"], c["managed"]) for c in shown] == [("node", False), ("root", False)]
    assert svc.backend.secret_references() == {"cert.node#private_key": "file:/etc/ipsec/node.key"}
    svc.backend.set_certificates(roots=[CertFile(root.cert_pem() + other.cert_pem(), "/x.pem")])
    assert [c["role"] for c in svc.show("certs")] == ["node", "root", "root"]


def test_imperative_backend_calls_for_the_ipsec_command(svc: Service, tmp_path: Path) -> None:
    from ipsecconf.model.desired import Policy
    from ipsecconf.model.spd import expand

    backend = svc.backend
    name = backend.new_policy_name()
    rows = expand(Policy(name=name, source="198.51.100.8", destination="203.0.113.8[139]"))
    idx = backend.add_policies(rows)
    assert [(p.idx, p.managed) for p in backend.policies()] == [(i, False) for i in idx]
    serial = backend.snapshot().serial
    assert backend.delete_policies([idx[1]]) == [f"{name}.in"]
    assert backend.snapshot().serial == serial + 1
    store = backend.store  # type: ignore[attr-defined]
    with store.transaction() as w:
        w.add_counters({"ike_started": 2, "policy_drops": 5})
    assert svc.show("stats")["counters"]["policy_drops"] == 5
    backend.zero_counters()
    assert set(svc.show("stats")["counters"].values()) == {0}
    assert backend.snapshot().serial == serial + 1  # counters are not configuration
