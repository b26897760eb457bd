"""Certificate authentication for the engine's IKE SAs: the node's credentials and the
roots from the ``cert`` resources (``certificates:`` in the desired state, or ``ipsec
cert set``), and the IKE configuration fields of a peer with ``auth: certificate``.

The private key is read from the store's secrets only to build :class:`Credentials`
(whose repr never shows it); nothing here logs it.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ipsecconf.ike.credentials import Credentials, TrustAnchors
from ipsecconf.ike.errors import LocalProtocolError

if TYPE_CHECKING:
    from ipsecconf.engine.livecfg import LiveConfig, PeerSpec

log = logging.getLogger("ipsecconf.engine")

NODE_KEY = "cert.node#private_key"
"""Where the store keeps the node certificate's private key."""


def certificates(
    resources: dict[tuple[str, str], dict[str, Any]], secret: Callable[[str], bytes | None]
) -> tuple[Credentials | None, TrustAnchors | None]:
    """The node's credentials (certificate, key, intermediates) and the roots."""
    pems: dict[str, list[bytes]] = {"root": [], "intermediate": []}
    node: dict[str, Any] | None = None
    for (kind, name), data in resources.items():
        if kind != "cert" or "_pem" not in data:
            continue
        if name == "node":
            node = data
        else:
            pems.setdefault(name.split(".", 1)[0], []).append(str(data["_pem"]).encode())
    credentials = None
    try:
        trust = TrustAnchors.from_pem(*pems["root"]) if pems["root"] else None
        key = secret(NODE_KEY) if node is not None else None
        if node is not None and key is not None:
            credentials = Credentials.from_pem(
                str(node["_pem"]).encode(), key, b"".join(pems["intermediate"])
            )
    except LocalProtocolError as exc:
        from ipsecconf.engine.livecfg import LiveConfigError

        raise LiveConfigError(f"certificates: {exc}") from None
    return credentials, trust


def signing(cfg: LiveConfig, peer: PeerSpec | None) -> dict[str, Any]:
    """:class:`~ipsecconf.ike.config.IkeConfig` fields for a peer that authenticates with
    certificates (ours, the roots, the wall clock for validity); none for PSK peers."""
    if peer is None or peer.auth != "certificate":
        return {}
    if cfg.credentials is None or cfg.trust is None:
        raise LocalProtocolError(
            f"peer {peer.name} uses certificates, but no node certificate, key or root "
            "is configured"
        )
    return {
        "credentials": cfg.credentials,
        "trust": cfg.trust,
        "clock": lambda: datetime.datetime.now(datetime.UTC),
    }


def responder_signing(cfg: LiveConfig, peer: PeerSpec | None, remote: str) -> dict[str, Any] | None:
    """:func:`signing` for an IKE_SA_INIT from ``remote``; ``None`` (logged) when the peer
    wants certificates and none are configured: the request is refused."""
    try:
        return signing(cfg, peer)
    except LocalProtocolError as exc:
        log.warning("IKE_SA_INIT from %s refused: %s", remote, exc)
        return None
