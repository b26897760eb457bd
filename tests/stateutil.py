"""Test helpers for the state, plan and apply tests: configurations, stores and the CLI.

Addresses come from 198.51.100.0/24, 203.0.113.0/24 and 2001:db8::/32 only.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
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


def spawn(*argv: str, quiet: bool = False) -> subprocess.Popen[str]:
    """``python -m ipsecconf ARGV`` in a new process (``quiet``: stdout discarded, so that
    a large plan text cannot fill the pipe while the test reads stderr)."""
    return subprocess.Popen(
        [PYTHON, "-m", "ipsecconf", *argv],
        env=env(),
        stdout=subprocess.DEVNULL if quiet else subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class Terminal:
    """``python -m ipsecconf ARGV`` on a pseudo-terminal, as a person would run it."""

    def __init__(self, *argv: str) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "ipsecconf", *argv],
            env=env(),
            stdin=slave,
            stdout=slave,
            stderr=slave,
        )
        os.close(slave)
        self.output = b""

    def read_until(self, marker: str, timeout: float = 120) -> str:
        """Read until ``marker`` has appeared (or the process ended)."""
        deadline = time.monotonic() + timeout
        while marker.encode() not in self.output and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                self.output += chunk
            elif self.proc.poll() is not None:
                break
        return self.output.decode(errors="replace")

    def send(self, text: str) -> None:
        """Type a line."""
        os.write(self.master, text.encode() + b"\n")

    def finish(self, timeout: float = 120) -> tuple[int, str]:
        """Read to the end; the exit status and everything printed."""
        self.read_until("\0never\0", timeout)
        code = self.proc.wait(timeout=10)
        os.close(self.master)
        return code, self.output.decode(errors="replace")
