"""No secret value leaves the store: plans, JSON, saved plans, show, export, history, logs
(at the most verbose level) and error messages are searched for each test secret, raw,
hex and base64."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from pathlib import Path

from tests.stateutil import PYTHON, ROOT, env

PSK = "LeakTest-Psk-5d8e21"
PEER_PSK = "LeakTest-PeerPsk-93ac77"
MANUAL_KEY = bytes.fromhex("00112233445566778899aabbccddeeff01020304")  # AES-GCM-128 + salt
ROTATED = "LeakTest-Rotated-0b6f4c"


def _forms(secret: bytes) -> list[str]:
    out = [
        secret.hex(),
        secret.hex().upper(),
        secret.hex(":"),
        base64.b64encode(secret).decode().rstrip("="),
        base64.urlsafe_b64encode(secret).decode().rstrip("="),
    ]
    try:
        out.append(secret.decode())
    except UnicodeDecodeError:
        out.append(secret.decode("latin-1"))
    return out


def _private_key_forms(path: Path) -> list[str]:
    body = [line for line in path.read_text().splitlines() if line and not line.startswith("-----")]
    der = base64.b64decode("".join(body))
    return [body[1], der[20:52].hex(), base64.b64encode(der[:48]).decode()[10:50]]


def _config(tmp: Path) -> Path:
    cfg = tmp / "cfg"
    shutil.copytree(ROOT / "examples" / "site-to-site", cfg)
    (cfg / "keys").mkdir()
    (cfg / "keys" / "m.hex").write_text(MANUAL_KEY.hex() + "\n")
    (cfg / "extra.yaml").write_text(
        "psks:\n"
        "  - address: 203.0.113.9\n    key: env:LEAK_PSK\n"
        "  - address: 203.0.113.10\n    key: 'literal-LeakTest-Literal-77aa'\n"
        "policies:\n"
        "  - name: nine\n    source: 198.51.100.9\n    destination: 203.0.113.9\n"
        "    encryption: aes128\n    authentication: sha256\n"
        "  - name: ten\n    source: 198.51.100.10\n    destination: 203.0.113.10\n"
        "    encryption: aes128\n    authentication: sha256\n"
        "manual_sas:\n"
        "  - name: m\n    spi: 0x2001\n    source: 198.51.100.1\n    destination: 203.0.113.7\n"
        "    encryption: aes128gcm\n    encryption_key: file:keys/m.hex\n"
        "    authentication: none\n"
    )
    text = (cfg / "ipsec.yaml").read_text()
    (cfg / "ipsec.yaml").write_text(
        text.replace(
            "  - name: branch\n",
            "  - name: branch\n    psk: env:LEAK_PEER_PSK\n    remote_auth: [psk, certificate]\n",
            1,
        )
    )
    return cfg


def test_no_secret_appears_anywhere(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    db = str(tmp_path / "state.db")
    e = env() | {"LEAK_PSK": PSK, "LEAK_PEER_PSK": PEER_PSK}
    seen: list[str] = []

    def run(*argv: str, environ: dict[str, str] = e, code: int | None = 0) -> None:
        proc = subprocess.run(
            [PYTHON, "-m", "ipsecconf", "-vv", "--state", db, *argv],
            env=environ,
            capture_output=True,
            text=True,
            timeout=120,
        )
        seen.append(f"$ {argv}\n{proc.stdout}\n{proc.stderr}")
        if code is not None:
            assert proc.returncode == code, (argv, proc.stdout, proc.stderr)

    plan_file = str(tmp_path / "first.plan")
    run("plan", str(cfg), "--out", plan_file)
    run("plan", str(cfg), "--json")
    run("apply", plan_file)
    run("plan", str(cfg), "--out", plan_file)
    run("plan", str(cfg), "--json", "--detailed-exitcode")
    rotated = e | {"LEAK_PSK": ROTATED, "LEAK_PEER_PSK": ROTATED + "x"}
    run("plan", str(cfg), environ=rotated, code=None)
    run("plan", str(cfg), "--json", environ=rotated, code=None)
    run("apply", plan_file, environ=rotated, code=1)  # secret changed: refused
    run("apply", str(cfg), "--auto-approve", environ=rotated)
    run("apply", plan_file, code=1)  # stale
    for what in ("policies", "sas", "certs", "stats", "history"):
        run("show", what)
        run("show", what, "--json")
    run("export")
    run("export", "-o", str(tmp_path / "export.yaml"))
    # Error paths that handle secrets.
    (cfg / "keys" / "m.hex").write_text("00112233\n")  # wrong length
    run("plan", str(cfg), code=1)
    run("plan", str(cfg), environ=env(), code=1)  # unset variables
    (cfg / "keys" / "m.hex").write_text("zz" + MANUAL_KEY.hex() + "\n")  # not hex
    run("plan", str(cfg), code=1)
    files = [Path(plan_file), tmp_path / "export.yaml"]
    haystack = "\n".join(seen) + "".join(f.read_text() for f in files)
    assert "sensitive value changed" in haystack and "transaction begun" in haystack
    assert "DEBUG" in haystack  # the verbose logs are part of what was searched
    secrets = [PSK, PEER_PSK, ROTATED, "LeakTest-Literal-77aa"]
    forms = [f for s in secrets for f in _forms(s.encode())] + _forms(MANUAL_KEY)
    forms += _private_key_forms(cfg / "hq-gw.key")
    leaks = [f for f in forms if f in haystack]
    assert leaks == []


def test_store_with_a_kek_holds_no_plain_secret(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    kek = tmp_path / "kek"
    kek.write_text("a key-encryption key kept away from the store\n")
    db = tmp_path / "state.db"
    e = env() | {"LEAK_PSK": PSK, "LEAK_PEER_PSK": PEER_PSK, "IPSECCONF_KEK_FILE": str(kek)}
    proc = subprocess.run(
        [PYTHON, "-m", "ipsecconf", "--state", str(db), "apply", str(cfg), "--auto-approve"],
        env=e,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    data = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("state.db"))
    for secret in (PSK.encode(), PEER_PSK.encode(), MANUAL_KEY):
        assert secret not in data and secret.hex().encode() not in data
    assert os.stat(db).st_mode & 0o777 == 0o600
