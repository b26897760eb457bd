"""The AUTH payload: what is signed and how (RFC 7296 section 2.15).

The octets to authenticate are the sender's IKE_SA_INIT message, then the peer's nonce,
then ``prf(SK_p, RestOfIDPayload)`` with the sender's SK_pi or SK_pr.  An
:class:`Authenticator` turns those octets into an AUTH payload and checks the peer's; the
pre-shared-key one is here, and signature authenticators (RSA, ECDSA, RFC 7427) implement
the same protocol.

A PSK AUTH is ``prf(prf(Shared Secret, "Key Pad for IKEv2"), <octets>)``.  The key is
held only inside the authenticator and is never printed.
"""

from __future__ import annotations

import hmac
from typing import Protocol

from ipsecconf.crypto.prf import prf
from ipsecconf.ike.constants import AuthMethod
from ipsecconf.ike.payloads import AuthPayload, IdPayload
from ipsecconf.model.algorithms import Prf

KEY_PAD = b"Key Pad for IKEv2"


def signed_octets(
    algorithm: Prf, init_message: bytes, peer_nonce: bytes, sk_p: bytes, identity: IdPayload
) -> bytes:
    """``RealMessage | NoncePeerData | prf(SK_p, RestOfIDPayload)`` (RFC 7296 2.15)."""
    return init_message + peer_nonce + prf(algorithm, sk_p, identity.rest())


class Authenticator(Protocol):
    """Builds our AUTH payload and verifies the peer's, for one method."""

    method: AuthMethod

    def sign(self, octets: bytes) -> AuthPayload:
        """Our AUTH payload over ``octets``."""

    def verify(self, auth: AuthPayload, octets: bytes) -> bool:
        """True when the peer's ``auth`` is valid over ``octets``."""


class PskAuthenticator:
    """AUTH method 2, Shared Key Message Integrity Code."""

    __slots__ = ("_key", "_prf", "method")

    def __init__(self, algorithm: Prf, psk: bytes) -> None:
        self.method = AuthMethod.SHARED_KEY_MIC
        self._prf = algorithm
        self._key = prf(algorithm, psk, KEY_PAD)

    def __repr__(self) -> str:
        return "PskAuthenticator(<secret>)"

    def sign(self, octets: bytes) -> AuthPayload:
        return AuthPayload(self.method, prf(self._prf, self._key, octets))

    def verify(self, auth: AuthPayload, octets: bytes) -> bool:
        if auth.method != self.method:
            return False
        return hmac.compare_digest(prf(self._prf, self._key, octets), auth.data)
