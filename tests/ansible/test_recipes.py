"""The GitOps recipes of examples/ci: pipelines, playbooks and the pre-commit hook.

The pipelines are parsed and their validate step is run as the CI would run it; the
plan/apply playbook (site.yml) and the drift check (drift.yml) run for real against
localhost as the node ``node1`` of the example repository, and the pre-commit hook's
entry runs on the example's desired state.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from tests.ansible.conftest import ROOT, Runner, store_state

pytestmark = pytest.mark.slow

CI = ROOT / "examples" / "ci"
SECRET = "Recipe-Test-psk-31c9e4"
OTHER = "Recipe-Test-psk-other-8a02d6"


def load_yaml(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text())


@pytest.fixture
def ipsecconf_bin(tmp_path: Path) -> Path:
    """A bin directory whose ``ipsecconf`` is this checkout's, as ``pip install`` makes it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "ipsecconf"
    exe.write_text(f'#!/bin/sh\nexec {sys.executable} -m ipsecconf "$@"\n')
    exe.chmod(0o755)
    return bin_dir


def run_step(script: str, cwd: Path, bin_dir: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", PYTHONPATH=str(ROOT))
    return subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def github() -> dict[str, Any]:
    return load_yaml(CI / "github-actions.yml")  # type: ignore[no-any-return]


def gitlab() -> dict[str, Any]:
    return load_yaml(CI / "gitlab-ci.yml")  # type: ignore[no-any-return]


def runs(job: dict[str, Any]) -> str:
    return "\n".join(str(step.get("run", "")) for step in job["steps"])


def test_github_actions_wire_validate_plan_apply_drift() -> None:
    wf = github()
    assert {"push", "pull_request", "schedule"} <= set(wf["on"])
    jobs = wf["jobs"]
    assert "ipsecconf validate --offline" in runs(jobs["validate"])
    assert jobs["plan"]["if"] == "github.event_name == 'pull_request'"
    assert "ansible/site.yml --check --diff" in runs(jobs["plan"])
    assert "refs/heads/main" in jobs["apply"]["if"]
    assert "ansible/site.yml --diff" in runs(jobs["apply"])
    assert "--check" not in runs(jobs["apply"])
    assert jobs["apply"]["environment"] == "production"
    assert "schedule" in jobs["drift"]["if"]
    assert "ansible/drift.yml" in runs(jobs["drift"])
    assert jobs["plan"]["needs"] == jobs["apply"]["needs"] == "validate"


def test_gitlab_ci_wires_validate_plan_apply_drift() -> None:
    ci = gitlab()
    assert ci["stages"] == ["validate", "plan", "apply", "drift"]
    assert "ipsecconf validate --offline" in "\n".join(ci["validate"]["script"])
    assert "merge_request_event" in ci["plan"]["rules"][0]["if"]
    assert "ansible/site.yml --check --diff" in "\n".join(ci["plan"]["script"])
    assert "CI_DEFAULT_BRANCH" in ci["apply"]["rules"][0]["if"]
    assert "--check" not in "\n".join(ci["apply"]["script"])
    assert "schedule" in ci["drift"]["rules"][0]["if"]
    assert "ansible/drift.yml" in "\n".join(ci["drift"]["script"])
    for job in ("plan", "apply", "drift"):
        assert ci[job]["extends"] == ".ansible"


@pytest.mark.parametrize("pipeline", ["github", "gitlab"])
def test_validate_step_passes_and_fails_like_ci(
    pipeline: str, tmp_path: Path, ipsecconf_bin: Path
) -> None:
    if pipeline == "github":
        step = next(
            s["run"]
            for s in github()["jobs"]["validate"]["steps"]
            if "for node" in s.get("run", "")
        )
    else:
        step = next(line for line in gitlab()["validate"]["script"] if "for node" in line)
    repo = tmp_path / "repo"
    shutil.copytree(CI, repo)
    ok = run_step(step, repo, ipsecconf_bin)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.count("valid: 1 policies") == 2

    broken = repo / "ipsec" / "nodes" / "node2" / "ipsec.yaml"
    lines = broken.read_text().splitlines()
    at = next(i for i, t in enumerate(lines) if "encryption:" in t)
    lines[at] = "    encryption: rot13"
    broken.write_text("\n".join(lines) + "\n")
    bad = run_step(step, repo, ipsecconf_bin)
    assert bad.returncode == 1
    assert f"ipsec.yaml:{at + 1}:" in bad.stdout + bad.stderr


def test_pre_commit_hook_entry_validates(tmp_path: Path, ipsecconf_bin: Path) -> None:
    [hook] = load_yaml(ROOT / ".pre-commit-hooks.yaml")
    assert hook["id"] == "ipsecconf-validate" and hook["pass_filenames"] is False
    config = load_yaml(CI / "pre-commit-config.yaml")
    uses = [h for r in config["repos"] for h in r["hooks"] if h["id"] == hook["id"]]
    assert len(uses) == 2
    for use in uses:
        cmd = " ".join([hook["entry"], *use["args"]])
        proc = run_step(cmd, CI, ipsecconf_bin)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_site_and_drift_playbooks_against_a_node(
    ansible: Runner, tmp_path: Path, ipsecconf_bin: Path
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(CI, repo)
    state = tmp_path / "state.db"
    inventory = tmp_path / "nodes.ini"
    inventory.write_text(
        "[ipsec_nodes]\n"
        f"node1 ansible_connection=local ansible_python_interpreter={sys.executable}\n"
    )

    def extra(secret: str) -> str:
        path = tmp_path / f"vars-{secret[-6:]}.json"
        path.write_text(
            json.dumps(
                {
                    "ipsecconf_state_path": str(state),
                    "ipsecconf_become": False,
                    "ipsecconf_command": [sys.executable, "-m", "ipsecconf"],
                    "ipsecconf_secrets": {"IPSEC_PSK_NODE1_NODE2": secret},
                }
            )
        )
        return f"@{path}"

    env = {"PYTHONPATH": str(ROOT)}
    site, drift = repo / "ansible" / "site.yml", repo / "ansible" / "drift.yml"
    outputs = []

    def play(
        playbook: Path, *options: str, secret: str = SECRET
    ) -> subprocess.CompletedProcess[str]:
        proc = ansible.playbook(playbook, inventory, "-e", extra(secret), *options, env=env)
        outputs.append(proc.stdout + proc.stderr)
        return proc

    # The merge request's plan: changes reported, nothing written.
    planned = play(site, "--check", "--diff")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert "policy.node2.out (create)" in planned.stdout
    assert "+psk: (sensitive value)" in planned.stdout
    assert "Plan: 4 to add" in planned.stdout, planned.stdout[-3000:]
    assert not state.exists()

    # Drift before anything was applied: the node differs from git.
    drifted = play(drift)
    assert drifted.returncode == 2, drifted.stdout + drifted.stderr
    assert "node1 drifted from git" in drifted.stdout

    applied = play(site, "--diff")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "Apply complete: 4 to add" in applied.stdout
    serial = store_state(state)[0]

    again = play(site)
    assert again.returncode == 0 and "Apply complete: nothing to do" in again.stdout
    assert store_state(state)[0] == serial

    in_sync = play(drift)
    assert in_sync.returncode == 0, in_sync.stdout + in_sync.stderr
    assert "node1 matches git" in in_sync.stdout

    # Someone rotated the key in Vault but nothing was applied: drift, shown masked.
    rotated = play(drift, secret=OTHER)
    assert rotated.returncode == 2
    assert "(sensitive value changed)" in rotated.stdout
    assert store_state(state)[0] == serial
    for text in outputs:
        assert SECRET not in text and OTHER not in text
