"""Test-only key export: when the environment variable :data:`ENV` names a file, the
keys of every child SA the engine installs are appended to it, one JSON object a line
(SPI, protocol, mode, addresses, algorithm names, keys in hex) -- the role SSLKEYLOGFILE
plays for TLS.  It lets a test oracle (scapy) verify the AH ICVs and ESP packets that
cross the wire.

Off unless the variable is set when the engine starts; the file is created with mode
0600 and written only here: keys still never reach a log line, the store or the control
socket.  Production units must not set the variable.
"""

from __future__ import annotations

import json
import os

ENV = "IPSECCONF_TEST_KEYLOG"


def path() -> str | None:
    """The key log file, when the test-only variable is set."""
    return os.environ.get(ENV) or None


def record(target: str, sa: dict[str, object], enc_key: bytes, integ_key: bytes) -> None:
    """Append one SA's public fields and its keys to ``target``."""
    line = json.dumps({**sa, "enc_key": enc_key.hex(), "integ_key": integ_key.hex()})
    fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (line + "\n").encode("ascii"))
    finally:
        os.close(fd)
