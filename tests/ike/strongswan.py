"""A strongSwan 5.9.8 peer in a network namespace of its own (test helper).

Two namespaces joined by a veth pair: ``ss`` holds charon at 198.51.100.2 and a
203.0.113.0/25 "site" on its loopback; ``me`` holds our core's UDP driver at
198.51.100.1.  Names carry the test process id so that parallel runs never clash, and
:meth:`Lab.close` deletes exactly what :meth:`Lab.open` created.  charon runs with a
private /run (bind mount inside ``ip netns exec``'s own mount namespace), its own
strongswan.conf (STRONGSWAN_CONF) and its own vici socket; it is never a host service.
Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

CHARON = "/usr/lib/ipsec/charon"
SS_ADDR6 = "2001:db8:1::2"
ME_ADDR6 = "2001:db8:1::1"
SITE_NET6 = "2001:db8:2::/64"
OUR_NET6 = "2001:db8:3::/64"
SS_ADDR = "198.51.100.2"
ME_ADDR = "198.51.100.1"
SITE_NET = "203.0.113.0/25"
"""The network behind strongSwan."""
OUR_NET = "203.0.113.128/25"
"""The network behind our core (the tunnel may not cover the IKE addresses: libipsec
refuses a route that would capture IKE traffic)."""
PSK = "interop-test-psk-0123456789"

PLUGINS = (
    "random nonce openssl pem pkcs1 pkcs8 x509 pubkey constraints mgf1 kdf sha1 sha2 hmac aes gcm "
    "kernel-libipsec kernel-netlink socket-default vici"
)


def charon_conf(
    plugins: str,
    log: Path,
    vici_uri: str,
    levels: dict[str, int],
    *,
    routes: bool,
    options: str = "",
    legacy: bool = False,
) -> str:
    """strongswan.conf for a charon of the tests: only ``plugins``, no syslog, a file log
    at ``levels`` per subsystem, the vici socket at ``vici_uri``; ``routes`` lets
    kernel-libipsec install its routes, ``options`` adds charon settings and ``legacy``
    loads OpenSSL's legacy provider (DES, 3DES)."""
    levels_text = "".join(f"\n            {k} = {v}" for k, v in levels.items())
    openssl = "\n        openssl {\n            load_legacy = yes\n        }" if legacy else ""
    return f"""
charon {{
    load_modular = no
    load = {plugins}
    install_routes = {"yes" if routes else "no"}
    install_virtual_ip = no{options}
    syslog {{
        daemon {{
            default = -1
        }}
        auth {{
            default = -1
        }}
    }}
    filelog {{
        test {{
            path = {log}{levels_text}
            flush_line = yes
            time_format = %T
        }}
    }}
    plugins {{
        vici {{
            socket = {vici_uri}
        }}{openssl}
    }}
}}
"""


def swanctl_connection(
    name: str,
    addrs: tuple[str, str],
    ike: str,
    esp: str,
    auth: tuple[str, str],
    ts: tuple[str, str],
    *,
    options: str = "",
    child_options: str = "",
) -> str:
    """One swanctl.conf tunnel connection over ESP-in-UDP (libipsec speaks nothing else)
    with its child ``net``: ``addrs``, ``auth`` (the local and remote sections' text) and
    ``ts`` are (local, remote); ``options`` and ``child_options`` add settings."""
    return f"""
    {name} {{
        version = 2
        local_addrs = {addrs[0]}
        remote_addrs = {addrs[1]}
        proposals = {ike}
        encap = yes
        send_cert = always{options}
        local {{
            {auth[0]}
        }}
        remote {{
            {auth[1]}
        }}
        children {{
            net {{
                local_ts = {ts[0]}
                remote_ts = {ts[1]}
                esp_proposals = {esp}
                mode = tunnel{child_options}
            }}
        }}
    }}
"""


def missing_requirements() -> str | None:
    """Why the interop test cannot run here, or ``None``."""
    if os.geteuid() != 0:
        return "needs root (network namespaces); CI runs it as root"
    for tool in (CHARON, shutil.which("swanctl"), shutil.which("ip"), shutil.which("mount")):
        if not tool or not os.path.exists(tool):
            return "strongSwan or iproute2 missing: run scripts/install-test-deps.sh"
    if not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun for strongSwan's kernel-libipsec"
    return None


def _run(*args: str, check: bool = True, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=timeout)


class Lab:
    """Two namespaces, charon in one, helpers to drive both."""

    def __init__(self, workdir: Path) -> None:
        tag = f"{os.getpid() % 100000}"
        self.ns_ss = f"ikess{tag}"
        self.ns_me = f"ikeme{tag}"
        self.veth_ss = f"vss{tag}"
        self.veth_me = f"vme{tag}"
        self.dir = workdir
        self.run_dir = workdir / "run"
        self.conf = workdir / "strongswan.conf"
        self.swanctl_conf = workdir / "swanctl.conf"
        self.log = workdir / "charon.log"
        self.uri = f"unix://{workdir}/charon.vici"
        self.charon: subprocess.Popen[str] | None = None
        self._created: list[str] = []

    # -- set-up and tear-down ---------------------------------------------------------
    def open(self) -> None:
        """Create the namespaces and the link, and start charon."""
        for ns in (self.ns_ss, self.ns_me):
            if ns in _run("ip", "netns", "list").stdout.split():
                # Left by a killed run whose pid we now have: same name, so ours to reuse.
                _run("ip", "netns", "delete", ns, check=False)
            _run("ip", "netns", "add", ns)
            self._created.append(ns)
        _run(
            "ip",
            "link",
            "add",
            self.veth_ss,
            "netns",
            self.ns_ss,
            "type",
            "veth",
            "peer",
            "name",
            self.veth_me,
            "netns",
            self.ns_me,
        )
        for ns, dev, addr in (
            (self.ns_ss, self.veth_ss, SS_ADDR),
            (self.ns_me, self.veth_me, ME_ADDR),
        ):
            _run("ip", "-n", ns, "link", "set", "lo", "up")
            _run("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            v6 = SS_ADDR6 if ns == self.ns_ss else ME_ADDR6
            _run("ip", "-n", ns, "addr", "add", f"{v6}/64", "dev", dev, "nodad")
            _run("ip", "-n", ns, "link", "set", dev, "up")
        # The protected site behind strongSwan (no dummy module here: use lo).
        _run("ip", "-n", self.ns_ss, "addr", "add", "203.0.113.1/25", "dev", "lo")
        _run("ip", "-n", self.ns_ss, "addr", "add", "2001:db8:2::1/64", "dev", "lo")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(self._strongswan_conf())
        env = {**os.environ, "STRONGSWAN_CONF": str(self.conf)}
        self.charon = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                self.ns_ss,
                "sh",
                "-c",
                f"mount --bind {self.run_dir} /run && exec {CHARON}",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        socket_path = self.dir / "charon.vici"
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if socket_path.exists() and self.swanctl("--stats", check=False).returncode == 0:
                return
            if self.charon.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"charon did not start; log:\n{self.log_text()}")

    def close(self) -> None:
        """Stop charon (our own process only) and delete our namespaces by name."""
        if self.charon is not None and self.charon.poll() is None:
            self.charon.send_signal(signal.SIGTERM)
            try:
                self.charon.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.charon.kill()
                self.charon.wait(timeout=10)
        for ns in reversed(self._created):
            _run("ip", "netns", "delete", ns, check=False)
        self._created.clear()

    def _strongswan_conf(self) -> str:
        # Level 4 makes charon log SKEYSEED, SK_* and child keys: only in this throw-away
        # namespace, so that the test can compare them with the keys our core derived.
        levels = {"default": 1, "ike": 4, "chd": 4, "cfg": 2, "enc": 1}
        options = "\n    retransmit_tries = 3"
        return charon_conf(PLUGINS, self.log, self.uri, levels, routes=False, options=options)

    def log_size(self) -> int:
        """The log's current length, to read only what a test case adds."""
        return len(self.log_text()) if self.log.exists() else 0

    def log_text(self) -> str:
        """charon's log so far (for failure messages)."""
        return self.log.read_text() if self.log.exists() else "(no log)"

    # -- strongSwan side --------------------------------------------------------------
    def _swanctl(self, args: tuple[str, ...]) -> tuple[list[str], dict[str, str]]:
        cmd = ["ip", "netns", "exec", self.ns_ss, "swanctl", *args, "--uri", self.uri]
        return cmd, {**os.environ, "STRONGSWAN_CONF": str(self.conf)}

    def swanctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run swanctl against our charon."""
        cmd, env = self._swanctl(args)
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=30, env=env)

    def swanctl_async(self, *args: str) -> subprocess.Popen[str]:
        """Start swanctl against our charon without waiting (the caller waits, bounded)."""
        cmd, env = self._swanctl(args)
        return subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )

    def load(
        self, name: str, ike: str, esp: str, *, family: int = 4, certs: dict[str, str] | None = None
    ) -> None:
        """Load a tunnel connection ``name`` to our core (ESP-in-UDP: encap = yes).

        With ``certs`` (absolute paths ``cert``, ``key``, ``root``) both sides
        authenticate with certificates instead of the PSK."""
        ss, me = (SS_ADDR, ME_ADDR) if family == 4 else (SS_ADDR6, ME_ADDR6)
        site, ours = (SITE_NET, OUR_NET) if family == 4 else (SITE_NET6, OUR_NET6)
        if certs:
            local = f"auth = pubkey\n            id = {ss}\n            certs = {certs['cert']}"
            remote = f"auth = pubkey\n            id = {me}\n            cacerts = {certs['root']}"
            # swanctl loads private keys from private/ beside the file it is given.
            keys = self.dir / "private"
            keys.mkdir(mode=0o700, exist_ok=True)
            (keys / f"{name}.pem").write_bytes(Path(certs["key"]).read_bytes())
            key = ""
        else:
            local, remote, key = (
                f"auth = psk\n            id = {ss}",
                f"auth = psk\n            id = {me}",
                "",
            )
        connection = swanctl_connection(
            name, (ss, me), ike, esp, (local, remote), (site, ours),
            child_options="\n                start_action = none",
        )  # fmt: skip
        self.swanctl_conf.write_text(f"""
connections {{{connection}}}
secrets {{
    ike-peer {{
        id-1 = {me}
        id-2 = {ss}
        secret = "{PSK}"
    }}
    {key}
}}
""")
        self.swanctl("--load-all", "--file", str(self.swanctl_conf))

    def list_sas(self) -> list[dict[str, Any]]:
        """``swanctl --list-sas --raw`` as dicts: IKE SA fields plus ``children``."""
        raw = self.swanctl("--list-sas", "--raw").stdout
        return parse_raw_sas(raw)

    # -- our side ---------------------------------------------------------------------
    def start_driver(self, spec: dict[str, Any]) -> subprocess.Popen[str]:
        """Start the UDP driver of our core inside the ``me`` namespace."""
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        proc = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                self.ns_me,
                sys.executable,
                "-m",
                "tests.ike.udp_driver",
                json.dumps(spec),
            ],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        first = proc.stdout.readline()  # {"ready": true} once the sockets are bound
        if '"ready"' not in first:
            proc.kill()
            _, err = proc.communicate(timeout=10)
            raise RuntimeError(f"driver failed to start: {first} {err}")
        return proc


def read_result(proc: subprocess.Popen[str], timeout: float = 40) -> dict[str, Any]:
    """The driver's next JSON line, waiting at most ``timeout`` seconds."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else ""
    if not line.strip():
        proc.kill()
        _, err = proc.communicate(timeout=10)
        raise RuntimeError(f"driver gave no result ({proc.returncode}): {err}")
    result: dict[str, Any] = json.loads(line)
    return result


def close_driver(proc: subprocess.Popen[str], delete: bool, timeout: float = 20) -> bool:
    """Ask the driver to delete its IKE SA (or just to stop); True when the peer confirmed."""
    try:
        out, _ = proc.communicate("close\n" if delete else "stop\n", timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=10)
        return False
    lines = [line for line in out.splitlines() if line.strip()]
    return bool(lines) and bool(json.loads(lines[-1]).get("deleted"))


_TOKEN = re.compile(r"([\w-]+)=\[([^\]]*)\]|([\w-]+)=([^\s{}\[\]]*)|([\w-]+) ?\{|\}")


def parse_raw_sas(raw: str) -> list[dict[str, Any]]:
    """Parse vici's raw dump of list-sa events into nested dicts."""
    sas: list[dict[str, Any]] = []
    for line in raw.splitlines():
        if "list-sa event" not in line:
            continue
        body = line[line.index("{") + 1 :]
        stack: list[dict[str, Any]] = [{}]
        for m in _TOKEN.finditer(body):
            if m.group(1):
                stack[-1][m.group(1)] = m.group(2).split()
            elif m.group(3):
                stack[-1][m.group(3)] = m.group(4)
            elif m.group(5):
                child: dict[str, Any] = {}
                stack[-1][m.group(5)] = child
                stack.append(child)
            elif len(stack) > 1:
                stack.pop()
        for name, ike in stack[0].items():
            if isinstance(ike, dict):
                ike["name"] = name
                sas.append(ike)
    return sas


_DUMP_HEAD = re.compile(r"\] (.+?) => (\d+) bytes @ ")
_DUMP_LINE = re.compile(r"\]\s+\d+: ((?:[0-9A-F]{2} ?){1,16})")


def logged_secrets(log: str) -> dict[str, bytes]:
    """The values charon dumped at log level 4, by label (the last dump of each label):
    ``shared Diffie Hellman secret``, ``SKEYSEED``, ``Sk_d secret`` ... ``Sk_pr secret``,
    the child's ``seed`` (Ni | Nr) and ``encryption initiator key`` and the like."""
    found: dict[str, bytes] = {}
    lines = log.splitlines()
    index = 0
    while index < len(lines):
        head = _DUMP_HEAD.search(lines[index])
        index += 1
        if head is None:
            continue
        label, size = head.group(1).strip(), int(head.group(2))
        data = bytearray()
        while len(data) < size and index < len(lines):
            row = _DUMP_LINE.search(lines[index])
            if row is None:
                break
            data += bytes.fromhex(row.group(1).replace(" ", ""))
            index += 1
        if len(data) == size:
            found[label] = bytes(data)
    return found
