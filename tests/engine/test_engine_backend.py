"""``ipsecconf apply`` and ``ipsec`` through a running engine's control socket, against the
same commands on a store with no engine: the stores end up alike.  One engine in one
namespace of its own (it needs a TUN device, raw sockets and nftables)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ipsecconf.state import Store
from tests.engine import topo

pytestmark = [pytest.mark.slow, pytest.mark.netns]

CONFIG = """\
peers:
  - name: gw
    address: 203.0.113.2
    auth: psk
    psk: env:ENGINE_TEST_PSK
psks:
  - address: 203.0.113.9
    key: env:ENGINE_TEST_PSK2
policies:
  - name: site
    source: 198.51.100.0/25
    destination: 198.51.100.128/25
    mode: tunnel
    peer: gw
    tunnel: {local: 203.0.113.1, remote: 203.0.113.2}
    encryption: aes128gcm
    authentication: none
  - name: cifs
    source: 198.51.100.1/32
    destination: 198.51.100.0/24[139]
    protocol: esp
    level: restrict
"""
SECRET = "s3cret-engine-psk-value"
SECRET2 = "other-secret-psk-value"


class Solo:
    """One namespace with one engine on its store."""

    def __init__(self, workdir: Path) -> None:
        self.ns = f"ipcsolo{os.getpid() % 100000}"
        self.workdir = workdir
        self.env = {**os.environ, "PYTHONPATH": str(topo.ROOT),
                    "ENGINE_TEST_PSK": SECRET, "ENGINE_TEST_PSK2": SECRET2}  # fmt: skip
        self.engine: subprocess.Popen[str] | None = None

    def cli(
        self, *args: str, tool: str = "ipsecconf", ok: bool = True
    ) -> subprocess.CompletedProcess[str]:
        module = "ipsecconf" if tool == "ipsecconf" else "ipsecconf.cli.ipsec_main"
        res = subprocess.run(
            ["ip", "netns", "exec", self.ns, sys.executable, "-m", module, *args],
            capture_output=True, text=True, timeout=60, env=self.env, check=False,
        )  # fmt: skip
        if ok:
            assert res.returncode == 0, res.stderr
        return res

    def start(self, state: str) -> None:
        log = open(self.workdir / "engine.log", "a")  # noqa: SIM115
        self.engine = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, sys.executable, "-m", "ipsecconf", "engine", "run",
             "--state", state, "--log-format", "json"],
            stdout=log, stderr=subprocess.STDOUT, text=True, env=self.env,
        )  # fmt: skip
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert self.engine.poll() is None, (self.workdir / "engine.log").read_text()
            if os.path.exists(state + ".sock"):
                return
            time.sleep(0.1)
        raise AssertionError("engine did not start")

    def stop(self) -> None:
        if self.engine is not None and self.engine.poll() is None:
            self.engine.send_signal(signal.SIGTERM)
            try:
                self.engine.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.engine.kill()
                self.engine.wait(timeout=5)
        self.engine = None


@pytest.fixture
def solo(tmp_path: Path) -> Iterator[Solo]:
    why = topo.missing()
    if why:
        pytest.skip(why)
    s = Solo(tmp_path)
    topo.sh("ip", "netns", "add", s.ns)
    try:
        topo.sh("ip", "-n", s.ns, "link", "set", "lo", "up")
        topo.sh("ip", "-n", s.ns, "link", "add", "wan0", "type", "veth", "peer", "name", "wan1")
        topo.sh("ip", "-n", s.ns, "addr", "add", "203.0.113.1/24", "dev", "wan0")
        topo.sh("ip", "-n", s.ns, "link", "set", "wan0", "up")
        yield s
    finally:
        s.stop()
        topo.sh("ip", "netns", "del", s.ns, check=False)


def dump(path: str) -> dict[str, Any]:
    """The configuration part of a store, without what differs by construction (lineage,
    salt-dependent fingerprints, timestamps)."""
    with Store.open(path, create=False) as st:
        return {
            "serial": st.serial,
            "policies": [(p.idx, p.name, p.managed, json.loads(p.data)) for p in st.policies()],
            "resources": [
                (r.kind, r.name, r.managed, json.loads(r.data))
                for k in ("peer", "psk", "setting", "cert", "sa")
                for r in st.resources(k)
            ],
            "secrets": {
                str(a): (str(ref), st.secret_value(str(a)))
                for a, ref in st.conn.execute("SELECT address, reference FROM secrets")
            },
            "history": [(h.command.split(" ")[0], h.serial, h.summary) for h in st.history()],
        }


def test_apply_with_and_without_engine_give_the_same_store(solo: Solo, tmp_path: Path) -> None:
    cfg = tmp_path / "ipsec.yaml"
    cfg.write_text(CONFIG)
    with_engine, without = str(tmp_path / "e" / "state.db"), str(tmp_path / "s" / "state.db")
    solo.start(with_engine)
    sock = with_engine + ".sock"
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
    for state in (with_engine, without):
        res = solo.cli("apply", "--state", state, "--auto-approve", str(cfg))
        assert "Apply complete" in res.stdout
        solo.cli("policy", "add", "-s", "198.51.100.5/32", "-t", "198.51.100.6/32",
                 "-p", "none", "-d", "out", "--state", state, tool="ipsec")  # fmt: skip
        plan = solo.cli("plan", "--state", state, str(cfg), "--detailed-exitcode", ok=False)
        assert plan.returncode == 0, plan.stdout + plan.stderr  # drift only: no changes
    # The engine applied its copy live: its log says so, and no secret is in the log.
    log = (tmp_path / "engine.log").read_text()
    assert "apply (apply" in log and "policy add" in log
    # --log-format json: one object per line, for log pipelines.
    records = [json.loads(line) for line in log.splitlines()]
    assert records and all({"ts", "level", "logger", "msg"} <= set(r) for r in records)
    assert SECRET not in log and SECRET2 not in log
    policies = json.loads(solo.cli("show", "policies", "--json", "--state", with_engine).stdout)
    assert {p["name"] for p in policies} >= {"site.out", "site.in", "cifs.out", "cifs.in"}
    solo.stop()
    assert not os.path.exists(sock)
    a, b = dump(with_engine), dump(without)
    assert a == b
    assert a["secrets"]["peer.gw#psk"] == ("env:ENGINE_TEST_PSK", SECRET.encode())


def test_stale_saved_plan_refused_by_the_engine(solo: Solo, tmp_path: Path) -> None:
    cfg = tmp_path / "ipsec.yaml"
    cfg.write_text(CONFIG)
    state = str(tmp_path / "state.db")
    solo.start(state)
    saved = str(tmp_path / "plan.bin")
    solo.cli("plan", "--state", state, str(cfg), "--out", saved, ok=False)
    solo.cli("apply", "--state", state, "--auto-approve", str(cfg))
    res = solo.cli("apply", "--state", state, saved, ok=False)
    assert res.returncode == 1 and "stale" in res.stderr, res.stderr
    # The engine still answers, and the refused apply changed nothing.
    stats = json.loads(solo.cli("show", "stats", "--json", "--state", state).stdout)
    assert stats["sas"] == 0
    # A second engine on the same state refuses to start, naming the first one's pid.
    assert solo.engine is not None
    second = solo.cli("engine", "run", "--state", state, ok=False)
    assert second.returncode == 1
    assert f"an engine already runs on this state (pid {solo.engine.pid})" in second.stderr
