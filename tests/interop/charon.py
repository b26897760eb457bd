"""strongSwan 5.9.8 as a site gateway of :class:`tests.engine.topo.Sites` (test helper).

charon runs in gateway namespace ``ga`` or ``gb`` instead of an ipsecconf engine, with a
private /run (bind mount inside ``ip netns exec``'s mount namespace), its own
strongswan.conf (STRONGSWAN_CONF) and vici socket, and its ``kernel-libipsec`` user-space
dataplane (a TUN named ``ipsec0`` and routes in table 220): tunnel mode over ESP-in-UDP
only, so every connection says ``encap = yes``.  It is started and stopped by its own
pid; every wait is bounded.  Keys are never logged (log levels stay at 1-2).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.engine import topo
from tests.ike.strongswan import CHARON, charon_conf, parse_raw_sas, swanctl_connection

PLUGINS = (
    "random nonce openssl pem pkcs1 pkcs8 x509 pubkey constraints revocation mgf1 kdf sha1 "
    "sha2 md5 hmac aes gcm kernel-libipsec kernel-netlink socket-default vici"
)
OUTER = {"ga": ("203.0.113.1", "2001:db8:f::1"), "gb": ("203.0.113.2", "2001:db8:f::2")}
INNER = {
    "ga": ("198.51.100.0/25", "2001:db8:a::/64"),
    "gb": ("198.51.100.128/25", "2001:db8:b::/64"),
}


def conn(
    name: str,
    side: str,
    *,
    ike: str,
    esp: str,
    family: int = 4,
    auth: str = "psk",
    cert: str = "",
    cacert: str = "",
    start: bool = False,
    dpd: int = 0,
    rekey: int = 0,
    reauth: int = 0,
    ike_rekey: int = 0,
) -> str:
    """One swanctl connection from gateway ``side`` ('ga' or 'gb') to the other one,
    tunnelling the two sites' subnets; IDs are the outer addresses."""
    other = "gb" if side == "ga" else "ga"
    i = 0 if family == 4 else 1
    me, peer = OUTER[side][i], OUTER[other][i]
    if auth == "psk":
        local, remote = f"auth = psk\n id = {me}", f"auth = psk\n id = {peer}"
    else:
        local = f"auth = pubkey\n id = {me}\n certs = {cert}"
        remote = f"auth = pubkey\n id = {peer}\n cacerts = {cacert}"
    start_action = "start" if start else "none"
    return swanctl_connection(
        name, (me, peer), ike, esp, (local, remote), (INNER[side][i], INNER[other][i]),
        options=f"\n        dpd_delay = {dpd}s\n        rekey_time = {ike_rekey}s"
        f"\n        reauth_time = {reauth}s",
        child_options=f"\n                rekey_time = {rekey}s"
        f"\n                start_action = {start_action}\n                dpd_action = restart",
    )  # fmt: skip


class Charon:
    """charon in one gateway namespace of a :class:`~tests.engine.topo.Sites`."""

    def __init__(self, sites: topo.Sites, ns: str, workdir: Path) -> None:
        self.sites = sites
        self.ns = ns
        self.dir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.run_dir = workdir / "run"
        self.conf = workdir / "strongswan.conf"
        self.swanctl_conf = workdir / "swanctl.conf"
        self.log = workdir / "charon.log"
        self.vici = workdir / "charon.vici"
        self.proc: subprocess.Popen[str] | None = None
        self.secrets: dict[str, str] = {}

    def _env(self) -> dict[str, str]:
        return {**os.environ, "STRONGSWAN_CONF": str(self.conf)}

    def start(self, wait: float = 15.0) -> None:
        """Start charon (its TUN and routes appear once a child SA is installed)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.vici.unlink()
        self.conf.write_text(self._strongswan_conf())
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.sites.ns[self.ns], "sh", "-c",
             f"mount --bind {self.run_dir} /run && exec {CHARON}"],
            env=self._env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        self.sites.procs.append(self.proc)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.vici.exists() and self.swanctl("--stats", check=False).returncode == 0:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"charon did not start; log:\n{self.log_text()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM, wait: float = 15.0) -> None:
        """Stop our charon by its pid (SIGKILL leaves its SAs behind, as a crash would)."""
        p = self.proc
        self.proc = None
        if p is None or p.poll() is not None:
            return
        p.send_signal(sig)
        try:
            p.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)
        if sig == signal.SIGKILL:
            # charon's TUN dies with it; its routes and rule stay, as after a crash.
            self.sites.ip(self.ns, "route", "flush", "table", "220")

    def _strongswan_conf(self) -> str:
        # Quick retransmissions (liveness tests), strongSwan's proposals in our order
        # (`auto` tests), DES and 3DES (the seed's legacy suites); keys never logged.
        options = (
            "\n    prefer_configured_proposals = no\n    retransmit_tries = 3"
            "\n    retransmit_timeout = 1.0\n    retransmit_base = 1.4"
        )
        levels = {"default": 1, "ike": 2, "chd": 2, "cfg": 1}
        return charon_conf(
            PLUGINS, self.log, f"unix://{self.vici}", levels, routes=True, options=options,
            legacy=True,
        )  # fmt: skip

    def swanctl(
        self, *args: str, check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """Run swanctl against our charon."""
        cmd = ["ip", "netns", "exec", self.sites.ns[self.ns], "swanctl", *args,
               "--uri", f"unix://{self.vici}"]  # fmt: skip
        res = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=self._env(), check=False
        )
        if check and res.returncode != 0:
            raise AssertionError(f"swanctl {' '.join(args)}: {res.stdout}{res.stderr}")
        return res

    def load(self, connections: str, psk: str = topo.PSK, key: str = "") -> None:
        """Replace the loaded connections (and the PSK for the two outer address pairs)."""
        secrets = f"""
    ike-v4 {{
        id-1 = {OUTER["ga"][0]}
        id-2 = {OUTER["gb"][0]}
        secret = "{psk}"
    }}
    ike-v6 {{
        id-1 = {OUTER["ga"][1]}
        id-2 = {OUTER["gb"][1]}
        secret = "{psk}"
    }}
"""
        if key:
            # swanctl loads private keys from private/ beside the file it is given.
            keys = self.dir / "private"
            keys.mkdir(mode=0o700, exist_ok=True)
            (keys / "node.pem").write_bytes(Path(key).read_bytes())
        self.swanctl_conf.write_text(
            f"connections {{\n{connections}\n}}\nsecrets {{\n{secrets}\n}}\n"
        )
        self.swanctl("--load-all", "--clear", "--file", str(self.swanctl_conf))

    def list_sas(self) -> list[dict[str, Any]]:
        """``swanctl --list-sas --raw`` parsed: IKE SA fields plus ``child-sas``."""
        return parse_raw_sas(self.swanctl("--list-sas", "--raw").stdout)

    def child_spis(self) -> set[int]:
        """SPIs (in and out) of the installed child SAs."""
        out: set[int] = set()
        for ike in self.list_sas():
            for child in (ike.get("child-sas") or {}).values():
                if child.get("state") == "INSTALLED":
                    out |= {int(child["spi-in"], 16), int(child["spi-out"], 16)}
        return out

    def ike_spis(self) -> set[tuple[str, str]]:
        """(initiator SPI, responder SPI) of the established IKE SAs."""
        return {
            (ike["initiator-spi"], ike["responder-spi"])
            for ike in self.list_sas()
            if ike.get("state") == "ESTABLISHED"
        }

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else "(no log)"
