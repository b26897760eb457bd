"""The SQLite store: file safety, schema versions, lineage/serial, index numbers, secrets."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from ipsecconf.errors import StateError
from ipsecconf.model.desired import Policy
from ipsecconf.model.spd import expand
from ipsecconf.state import (
    COUNTER_NAMES,
    StaleStateError,
    Store,
    canonical,
    kek_material,
    schema,
    state_path,
)


def _rows(name: str) -> list:  # type: ignore[type-arg]
    return expand(
        Policy(name=name, source="198.51.100.1", destination="203.0.113.1[80]", ip_protocol=6)
    )


def _put(store: Store, *names: str) -> None:
    with store.transaction() as w:
        w.put_policies(
            (r.name, r.policy, r.direction, True, canonical(r.to_dict()))
            for n in names
            for r in _rows(n)
        )


def test_new_store_is_private_wal_and_secure_delete(tmp_path: Path) -> None:
    path = str(tmp_path / "sub" / "state.db")
    store = Store.open(path)
    _put(store, "a")
    for suffix in ("", "-wal", "-shm"):
        mode = stat.S_IMODE(os.stat(path + suffix).st_mode)
        assert mode == 0o600, (suffix, oct(mode))
    assert stat.S_IMODE(os.stat(tmp_path / "sub").st_mode) == 0o700
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("PRAGMA secure_delete").fetchone()[0] == 1
    assert store.integrity_check() == "ok"


def test_a_loose_mode_is_tightened(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    Store.open(path).close()
    os.chmod(path, 0o644)
    Store.open(path).close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_lineage_is_fixed_and_serial_counts_config_changes_only(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    store = Store.open(path)
    lineage = store.lineage
    assert store.serial == 0
    _put(store, "a")
    assert store.serial == 1
    with store.transaction() as w:  # SAD and counters: runtime, no serial move
        sa = w.add_sa(spi=0x1000, protocol="esp", source="198.51.100.1", destination="203.0.113.1")
        w.set_sa_state([sa], "M")
        w.add_counters({"packets_in": 3})
    assert store.serial == 1
    with store.transaction():  # an empty transaction changes nothing
        pass
    assert store.serial == 1
    store.close()
    again = Store.open(path)
    assert again.lineage == lineage and again.serial == 1
    assert Store.open(str(tmp_path / "other.db")).lineage != lineage


def test_index_numbers_are_stable_and_never_reused(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "state.db"))
    _put(store, "a", "b")
    before = {p.name: p.idx for p in store.policies()}
    _put(store, "a")  # rewrite a: same names keep their index
    assert {p.name: p.idx for p in store.policies()} == before
    with store.transaction() as w:
        w.delete_policies(["b.in", "b.out"])
    _put(store, "c")
    after = {p.name: p.idx for p in store.policies()}
    assert after["c.in"] > max(before.values()) and after["c.out"] > max(before.values())
    assert after["a.in"] == before["a.in"]


def test_imperative_rows_are_unmanaged_and_deletable_by_index(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "state.db"))
    with store.transaction() as w:
        name = w.new_policy_name()
        rows = expand(Policy(name=name, source="198.51.100.2", destination="203.0.113.2"))
        idx = w.add_policies(rows)
    assert name == "ipsec-1" and len(idx) == 2
    assert {p.name: p.managed for p in store.policies()} == {
        f"{name}.out": False,
        f"{name}.in": False,
    }
    with pytest.raises(StateError, match="exists already"), store.transaction() as w:
        w.add_policies(rows)
    with store.transaction() as w:
        assert w.delete_policy_indexes([idx[0]]) == [f"{name}.out"]
    with pytest.raises(StateError, match="no SPD entry with index 999"), store.transaction() as w:
        w.delete_policy_indexes([999])
    assert [p.idx for p in store.policies()] == [idx[1]]


def test_a_failed_transaction_leaves_nothing(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "state.db"))
    _put(store, "a")
    with pytest.raises(RuntimeError), store.transaction() as w:
        w.delete_policies(["a.in", "a.out"])
        w.put_secret("psk.203.0.113.9#key", b"x", None)
        raise RuntimeError("boom")
    assert len(store.policies()) == 2 and store.serial == 1
    assert store.snapshot().secrets == {}


def test_expected_lineage_and_serial_are_checked(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "state.db"))
    _put(store, "a")
    stale = pytest.raises(StaleStateError, match="serial 0, the state is now at serial 1")
    with stale, store.transaction(expect=(store.lineage, 0)):
        pass
    with (
        pytest.raises(StaleStateError, match="another state"),
        store.transaction(expect=("not-this-one", 1)),
    ):
        pass


def test_schema_from_the_future_is_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    Store.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {schema.SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(StateError, match="newer than this ipsecconf understands"):
        Store.open(path)


def test_migrations_bring_an_empty_database_to_the_current_version(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    sqlite3.connect(path).close()  # an empty file made by someone else
    store = Store.open(path)
    assert schema.version(store.conn) == schema.SCHEMA_VERSION
    assert set(store.counters()) == set(COUNTER_NAMES)


def test_garbage_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StateError, match="not a usable state database"):
        Store.open(str(path))
    with pytest.raises(StateError, match="no state at"):
        Store.open(str(tmp_path / "missing.db"), create=False)


def test_fingerprints_are_salted_per_store_and_bound_to_the_address(tmp_path: Path) -> None:
    a = Store.open(str(tmp_path / "a.db"))
    b = Store.open(str(tmp_path / "b.db"))
    assert a.fingerprint("psk.x#key", b"same") != b.fingerprint("psk.x#key", b"same")
    assert a.fingerprint("psk.x#key", b"same") != a.fingerprint("psk.y#key", b"same")
    assert a.fingerprint("psk.x#key", b"same") == a.fingerprint("psk.x#key", b"same")


def test_secrets_are_sealed_with_a_kek_and_unreadable_without_it(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    store = Store.open(path, kek=b"operator key material")
    with store.transaction() as w:
        w.put_secret("psk.203.0.113.1#key", b"TopSecretPSK", "env:X")
    raw = store.conn.execute("SELECT value, sealed FROM secrets").fetchone()
    assert raw[1] == 1 and b"TopSecretPSK" not in bytes(raw[0])
    assert store.secret_value("psk.203.0.113.1#key") == b"TopSecretPSK"
    store.close()
    assert b"TopSecretPSK" not in Path(path).read_bytes()
    with pytest.raises(StateError, match="does not match"):
        Store.open(path, kek=b"wrong key")
    plain = Store.open(path)
    with pytest.raises(StateError, match="sealed; set IPSECCONF_KEK_FILE"):
        plain.secret_value("psk.203.0.113.1#key")
    with (
        pytest.raises(StateError, match="sealed with a key-encryption key"),
        plain.transaction() as w,
    ):
        w.put_secret("psk.203.0.113.2#key", b"other", None)


def test_unsealed_secrets_without_kek(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "state.db"))
    with store.transaction() as w:
        fp = w.put_secret("peer.gw#psk", b"v", None)
    assert store.secret_value("peer.gw#psk") == b"v"
    assert store.snapshot().secrets["peer.gw#psk"].fingerprint == fp
    assert "v" not in repr(store.snapshot())


def test_counters_and_sa_traffic_zero(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "state.db"))
    with store.transaction() as w:
        sa = w.add_sa(spi=0x2000, protocol="esp", source="198.51.100.1", destination="203.0.113.1")
        w.add_sa_traffic(sa, 1500, 1)
        w.add_counters({"bytes_out": 1500, "packets_out": 1})
    assert store.counters()["bytes_out"] == 1500 and store.sas()[0].bytes == 1500
    with pytest.raises(StateError, match="unknown counters: nope"), store.transaction() as w:
        w.add_counters({"nope": 1})
    with store.transaction() as w:
        w.zero_counters()
    assert set(store.counters().values()) == {0} and store.sas()[0].bytes == 0


def test_history_records_each_apply(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "state.db"))
    with store.transaction() as w:
        w.put_resources([("setting", "default_action", True, '{"value":"bypass"}')])
        w.add_history(who="t@h", command="apply x", plan_digest="ab" * 32, summary="1 to add")
    (h,) = store.history()
    assert (h.serial, h.who, h.summary) == (1, "t@h", "1 to add") and store.serial == 1


def test_state_path_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert state_path(str(tmp_path / "x.db"), {}) == str(tmp_path / "x.db")
    assert state_path(None, {"IPSECCONF_STATE": str(tmp_path / "e.db")}) == str(tmp_path / "e.db")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert state_path(None, {}) == "/var/lib/ipsecconf/state.db"
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert state_path(None, {}) == str(tmp_path / ".local/state/ipsecconf/state.db")


def test_kek_from_file_or_environment(tmp_path: Path) -> None:
    key = tmp_path / "kek"
    key.write_bytes(b"file-key\n")
    assert kek_material({"IPSECCONF_KEK_FILE": str(key)}) == b"file-key"
    assert kek_material({"IPSECCONF_KEK": "env-key"}) == b"env-key"
    assert kek_material({}) is None
    with pytest.raises(StateError, match="cannot read"):
        kek_material({"IPSECCONF_KEK_FILE": str(tmp_path / "missing")})


def test_a_kek_added_later_seals_what_was_stored_in_clear(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    plain = Store.open(path)
    with plain.transaction() as w:
        w.put_secret("peer.gw#psk", b"EarlyPlainSecret", None)
    plain.close()
    sealed = Store.open(path, kek=b"added later")
    with sealed.transaction() as w:
        w.put_secret("psk.203.0.113.5#key", b"LaterSecret", None)
    assert sealed.secret_value("peer.gw#psk") == b"EarlyPlainSecret"
    rows = sealed.conn.execute("SELECT sealed FROM secrets").fetchall()
    assert rows == [(1,), (1,)]
    sealed.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    sealed.close()
    assert b"EarlyPlainSecret" not in Path(path).read_bytes()
