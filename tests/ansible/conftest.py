"""Fixtures for the Ansible tests: ansible-core found, the collection laid out, playbooks run.

The tests run real ``ansible-playbook`` processes against localhost (connection local).
The collection is a symlink ``ansible_collections/ipsecconf/ipsecconf`` -> this checkout
in a temporary ANSIBLE_COLLECTIONS_PATH; the module runs under this test's Python (which
has ipsecconf's dependencies) with the checkout on PYTHONPATH.

ansible-core is found in $IPSECCONF_ANSIBLE_BIN_DIR, else beside this Python (the test
extra installs it into .venv), else on PATH.  When it is missing the tests fail with a
message saying so, unless IPSECCONF_SKIP_ANSIBLE=1.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "ipsecconf"
NAME = "ipsecconf"
MODULE = f"{NAMESPACE}.{NAME}.ipsecconf"
INFO_MODULE = f"{NAMESPACE}.{NAME}.ipsecconf_info"
SKIP_ENV = "IPSECCONF_SKIP_ANSIBLE"
BIN_ENV = "IPSECCONF_ANSIBLE_BIN_DIR"

PSK = "Ansible-Test-psk-9d41c7"
"""The test secret: it must never appear in any output."""
PSK_ROTATED = "Ansible-Test-psk-rotated-5be2f0"
GW_PSK = "Ansible-Test-gw-psk-77aa13"
SECRETS = (PSK, PSK_ROTATED, GW_PSK)


def find_ansible_bin() -> Path | None:
    """The directory holding ``ansible-playbook``, or None."""
    candidates: list[Path] = []
    if os.environ.get(BIN_ENV):
        candidates.append(Path(os.environ[BIN_ENV]))
    candidates.append(Path(sys.executable).parent)
    which = shutil.which("ansible-playbook")
    if which:
        candidates.append(Path(which).parent)
    for c in candidates:
        if (c / "ansible-playbook").exists():
            return c
    return None


def require_ansible() -> Path:
    """The ansible-core bin directory; fails (or skips with IPSECCONF_SKIP_ANSIBLE=1)."""
    found = find_ansible_bin()
    if found is None:
        msg = (
            "ansible-core is not installed: `pip install -e '.[test]'` installs it "
            f"(or point {BIN_ENV} at a bin directory holding ansible-playbook); "
            f"set {SKIP_ENV}=1 to skip the Ansible tests"
        )
        if os.environ.get(SKIP_ENV) == "1":
            pytest.skip(msg)
        pytest.fail(msg)
    return found


@pytest.fixture(scope="session")
def ansible_bin() -> Path:
    return require_ansible()


@pytest.fixture(scope="session")
def collections_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temporary collections path whose ipsecconf.ipsecconf is this checkout."""
    base = tmp_path_factory.mktemp("collections")
    ns = base / "ansible_collections" / NAMESPACE
    ns.mkdir(parents=True)
    (ns / NAME).symlink_to(ROOT, target_is_directory=True)
    return base


@dataclass
class Outcome:
    """One playbook run: exit status, what it printed, the module's registered result."""

    rc: int
    stdout: str
    stderr: str
    result: dict[str, Any]

    @property
    def output(self) -> str:
        """Everything a user could see: stdout, stderr and the registered result."""
        return self.stdout + self.stderr + json.dumps(self.result)


class Runner:
    """Writes an inventory and a one-task playbook, runs ``ansible-playbook``."""

    def __init__(self, bin_dir: Path, collections: Path, work: Path) -> None:
        self.bin_dir = bin_dir
        self.collections = collections
        self.work = work
        self.runs = 0
        self.inventory = work / "inventory.ini"
        self.inventory.write_text(
            f"node ansible_connection=local ansible_python_interpreter={sys.executable}\n"
        )

    def env(self) -> dict[str, str]:
        e = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "IPSECCONF_"))}
        e.pop("PYTHONPATH", None)
        e.update(
            ANSIBLE_COLLECTIONS_PATH=str(self.collections),
            ANSIBLE_HOME=str(self.work / "ansible-home"),
            ANSIBLE_LOCAL_TEMP=str(self.work / "ansible-tmp"),
            ANSIBLE_REMOTE_TEMP=str(self.work / "ansible-remote-tmp"),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_FORCE_COLOR="0",
            ANSIBLE_RETRY_FILES_ENABLED="0",
            ANSIBLE_DEPRECATION_WARNINGS="0",
            ANSIBLE_STDOUT_CALLBACK="default",
            ANSIBLE_LOCALHOST_WARNING="0",
            ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
        )
        return e

    def playbook(
        self,
        playbook: Path,
        inventory: Path,
        *options: str,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a playbook file as a user would (``-v``), with extra environment."""
        return subprocess.run(
            [
                str(self.bin_dir / "ansible-playbook"),
                "-v",
                "-i",
                str(inventory),
                *options,
                str(playbook),
            ],
            env={**self.env(), **(env or {})},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def run(
        self,
        args: dict[str, Any],
        *,
        check: bool = False,
        diff: bool = False,
        python_path: str | None = str(ROOT),
        interpreter: str | None = None,
        verbosity: str = "-v",
        module: str = MODULE,
    ) -> Outcome:
        """Run the module once with ``args``; the result is saved even when it fails."""
        self.runs += 1
        result_file = self.work / f"result-{self.runs}.json"
        play: dict[str, Any] = {
            "hosts": "node",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "ipsecconf",
                    module: args,
                    "register": "result",
                    "ignore_errors": True,
                },
                {
                    "name": "save the result",
                    "ansible.builtin.copy": {
                        "content": "{{ result | to_nice_json }}",
                        "dest": str(result_file),
                        "mode": "0600",
                    },
                    "check_mode": False,
                    "diff": False,
                },
            ],
        }
        if python_path is not None:
            play["environment"] = {"PYTHONPATH": python_path}
        if interpreter is not None:
            play["vars"] = {"ansible_python_interpreter": interpreter}
        playbook = self.work / f"playbook-{self.runs}.yml"
        playbook.write_text(json.dumps([play], indent=2))
        cmd = [str(self.bin_dir / "ansible-playbook"), verbosity, "-i", str(self.inventory)]
        if check:
            cmd.append("--check")
        if diff:
            cmd.append("--diff")
        cmd.append(str(playbook))
        proc = subprocess.run(
            cmd, env=self.env(), capture_output=True, text=True, timeout=180, check=False
        )
        assert result_file.exists(), f"no result saved:\n{proc.stdout}\n{proc.stderr}"
        result = json.loads(result_file.read_text())
        return Outcome(proc.returncode, proc.stdout, proc.stderr, result)


@pytest.fixture
def ansible(ansible_bin: Path, collections_path: Path, tmp_path: Path) -> Iterator[Runner]:
    yield Runner(ansible_bin, collections_path, tmp_path)


def write_config(directory: Path, text: str, name: str = "ipsec.yaml") -> Path:
    """A desired-state file (dedented)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def desired(*, encryption: str = "aes128", extra_peer: bool = False) -> str:
    """A small desired state: a PSK, a peer with a PSK (two with ``extra_peer``), a policy."""
    peers = "  - name: gw\n    address: 203.0.113.254\n    psk: env:TEST_GW_PSK\n"
    if extra_peer:
        peers += "  - name: gw2\n    address: 203.0.113.253\n    psk: env:TEST_PSK\n"
    return (
        "psks:\n"
        "  - address: 203.0.113.7\n"
        "    key: env:TEST_PSK\n"
        f"peers:\n{peers}"
        "policies:\n"
        "  - name: web\n"
        "    source: 198.51.100.1/32\n"
        "    destination: 203.0.113.7/32[443]\n"
        "    ip_protocol: tcp\n"
        "    protocol: esp\n"
        f"    encryption: {encryption}\n"
        "    authentication: sha256\n"
    )


def store_state(path: Path) -> tuple[int, str]:
    """The store's serial and a digest of its whole content, read without writing."""
    import hashlib

    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        serial = int(conn.execute("SELECT value FROM meta WHERE key = 'serial'").fetchone()[0])
        digest = hashlib.sha256("\n".join(conn.iterdump()).encode()).hexdigest()
    finally:
        conn.close()
    return serial, digest
