"""Test helpers for the state, plan and apply tests: configurations, stores and the CLI.

Addresses come from 198.51.100.0/24, 203.0.113.0/24 and 2001:db8::/32 only.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ipsecconf.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable

PSK = "psk-Value-7f3a9c"
GW_PSK = "gw-Secret-42b1e8"


def policy(name: str, i: int, *, enc: str = "aes128", extra: str = "") -> str:
    """One mirrored ESP policy in block style."""
    return (
        f"  - name: {name}\n"
        f"    source: 198.51.100.{i % 250 + 1}/32\n"
        f"    destination: 203.0.113.{i % 250 + 1}/32[{1024 + i}]\n"
        f"    ip_protocol: tcp\n"
        f"    protocol: esp\n"
        f"    encryption: {enc}\n"
        f"    authentication: sha256\n"
        f"{extra}"
    )


def config(n: int = 3, *, enc: str = "aes128", peer_psk: bool = True) -> str:
    """A small desired state: PSKs for every destination, a peer, ``n`` policies."""
    lines = ["psks:\n"]
    for i in range(min(n, 250)):
        lines.append(f"  - address: 203.0.113.{i % 250 + 1}\n    key: env:TEST_PSK\n")
    if peer_psk:
        lines.append("peers:\n  - name: gw\n    address: 203.0.113.254\n    psk: env:TEST_GW_PSK\n")
    lines.append("policies:\n")
    lines += [policy(f"p{i}", i, enc=enc) for i in range(n)]
    return "".join(lines)


def write(directory: Path, text: str, name: str = "ipsec.yaml") -> Path:
    """Write a configuration file; returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    return path


def env() -> dict[str, str]:
    """Environment for subprocesses: the test secrets and this checkout on the path."""
    e = dict(os.environ)
    e["TEST_PSK"] = PSK
    e["TEST_GW_PSK"] = GW_PSK
    e["PYTHONPATH"] = str(ROOT)
    e.pop("IPSECCONF_STATE", None)
    return e


def run_cli(*argv: str) -> int:
    """The CLI in this process (the caller captures output)."""
    return main(list(argv))


def spawn(*argv: str, **kw: object) -> subprocess.Popen[str]:
    """``python -m ipsecconf ARGV`` in a new process."""
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [PYTHON, "-m", "ipsecconf", *argv],
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )
