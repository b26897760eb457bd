"""Where the store lives and where an optional key-encryption key comes from.

Location: ``--state PATH``, else ``$IPSECCONF_STATE``, else ``/var/lib/ipsecconf/state.db``
for root and ``~/.local/state/ipsecconf/state.db`` (XDG_STATE_HOME respected) otherwise.

Key-encryption key (optional; DESIGN.md "Who does what"): ``$IPSECCONF_KEK_FILE`` names a
file holding it, or ``$IPSECCONF_KEK`` holds it directly.  There is deliberately no default
key file next to the database.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from ipsecconf.errors import StateError

ENV_STATE = "IPSECCONF_STATE"
ENV_KEK_FILE = "IPSECCONF_KEK_FILE"
ENV_KEK = "IPSECCONF_KEK"
ROOT_DEFAULT = "/var/lib/ipsecconf/state.db"


def state_path(option: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The store path chosen by the option, the environment or the per-user default."""
    env = os.environ if environ is None else environ
    if option:
        return os.path.abspath(option)
    if env.get(ENV_STATE):
        return os.path.abspath(env[ENV_STATE])
    if os.geteuid() == 0:
        return ROOT_DEFAULT
    base = env.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "ipsecconf", "state.db")


def kek_material(environ: Mapping[str, str] | None = None) -> bytes | None:
    """The key-encryption key from the environment, or None when none is configured."""
    env = os.environ if environ is None else environ
    path = env.get(ENV_KEK_FILE)
    if path:
        try:
            with open(path, "rb") as fh:
                data = fh.read().strip()
        except OSError as exc:
            raise StateError(f"{ENV_KEK_FILE}: cannot read {path}: {exc.strerror}") from None
        if not data:
            raise StateError(f"{ENV_KEK_FILE}: {path} is empty")
        return data
    value = env.get(ENV_KEK)
    if value is not None:
        if not value.strip():
            raise StateError(f"{ENV_KEK} is set but empty")
        return value.strip().encode("utf-8")
    return None
