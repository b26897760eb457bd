"""``ansible-test sanity --python 3.11`` on the collection, and ``ansible-doc`` rendering.

scripts/ansible-sanity.sh builds the collection, installs the artifact as
ansible_collections/ipsecconf/ipsecconf/ in a temporary directory, puts it in git and
runs every sanity test ansible-test has for collections (validate-modules, ansible-doc,
import, compile, pep8, pylint, yamllint, runtime-metadata, shebang, ...).  The first run
builds ansible-test's virtualenvs from PyPI (a few minutes); later runs reuse them.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.ansible.conftest import INFO_MODULE, MODULE, ROOT

pytestmark = pytest.mark.slow


def test_ansible_test_sanity_passes(ansible_bin: Path) -> None:
    env = dict(os.environ, ANSIBLE_BIN_DIR=str(ansible_bin))
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        [str(ROOT / "scripts" / "ansible-sanity.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-8000:]
    for test in ("validate-modules", "ansible-doc", "import", "pylint", "pep8", "yamllint"):
        assert f'Running sanity test "{test}"' in log, f"{test} did not run:\n{log[-4000:]}"
    assert "ERROR:" not in log, log[-8000:]


def test_ansible_doc_renders_the_module(ansible_bin: Path, collections_path: Path) -> None:
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections_path), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(
        [str(ansible_bin / "ansible-doc"), "--json", MODULE],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    doc = json.loads(proc.stdout)[MODULE]
    attributes = doc["doc"]["attributes"]
    assert attributes["check_mode"]["support"] == "full"
    assert attributes["diff_mode"]["support"] == "full"
    options = doc["doc"]["options"]
    assert options["secrets"]["type"] == "dict"
    assert {"src", "config", "state", "prune", "state_path", "variables", "kek"} <= set(options)
    assert {"changed", "plan", "summary", "diagnostics"} <= set(doc["return"])
    assert "ipsecconf.ipsecconf.ipsecconf:" in doc["examples"]
    text = subprocess.run(
        [str(ansible_bin / "ansible-doc"), MODULE],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "check_mode" in text and "diff_mode" in text

    info = json.loads(
        subprocess.run(
            [str(ansible_bin / "ansible-doc"), "--json", INFO_MODULE],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
    )[INFO_MODULE]
    assert info["doc"]["attributes"]["check_mode"]["support"] == "full"
    assert set(info["doc"]["options"]["gather"]["choices"]) == {
        "policies",
        "sas",
        "certs",
        "stats",
        "history",
    }
