"""Who we are and whether the peer is who it says (IKE_AUTH, RFC 7296 2.15 and 3.5-3.8).

:func:`our_authenticator` picks how we authenticate: a signature with our certificate's
key when the config has :class:`~ipsecconf.ike.credentials.Credentials`, else the
pre-shared key the lookup finds.  :func:`check_peer` decides on the peer's AUTH in the
order that gives the most useful reason: the method must be one this side accepts from
the peer (each side chooses its own method in IKEv2; the responder accepts only those
configured); for a signature, a certificate must come in a CERT payload, be valid now,
chain to one of our roots (through the intermediates the peer sent), be fit to sign,
carry the identity of IDi/IDr (IP, FQDN, email in subjectAltName, or the subject DN),
and verify the AUTH signature.  Every refusal names a
:class:`~ipsecconf.ike.events.FailureReason` and says why in words.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass

from ipsecconf.crypto import signatures, x509
from ipsecconf.ike.auth import Authenticator, PskAuthenticator
from ipsecconf.ike.config import Identity, PskQuery
from ipsecconf.ike.constants import IdType
from ipsecconf.ike.context import SaContext
from ipsecconf.ike.credentials import (
    METHOD_NAMES,
    X509_SIGNATURE,
    SignatureAuthenticator,
    choose_scheme,
    scheme_of_auth,
)
from ipsecconf.ike.events import FailureReason
from ipsecconf.ike.message import Message
from ipsecconf.ike.payloads import AuthPayload, CertPayload, IdPayload

MAX_CERTS = 8
"""Certificates we look at in one message (a leaf and its intermediates)."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the peer's authentication was refused."""

    reason: FailureReason
    detail: str


def psk_for(ctx: SaContext, remote_id: Identity | None) -> bytes | None:
    """The pre-shared key the config's lookup gives for this peer (asked once per SA
    and identity: each side needs it two or three times in a handshake)."""
    found = ctx.psk_lookup
    # Identities and addresses are shared immutable values: identity first, then equality.
    if (
        found is not None
        and (found[0] is remote_id or found[0] == remote_id)
        and (found[1] is ctx.remote_address or found[1] == ctx.remote_address)
    ):
        return found[2]
    query = PskQuery(ctx.remote_address, remote_id, ctx.prepared.local_id)
    key = ctx.config.psk(query)
    ctx.psk_lookup = (remote_id, ctx.remote_address, key)
    return key


def _psk(ctx: SaContext, remote_id: Identity | None) -> PskAuthenticator | None:
    assert ctx.algorithms is not None
    key = psk_for(ctx, remote_id)
    if key is None:
        return None
    known = ctx.psk_authenticator
    if known is not None and known[0] == key and known[1] is ctx.algorithms.prf:
        return known[2]  # the same key signs ours and verifies the peer's AUTH
    authenticator = PskAuthenticator(ctx.algorithms.prf, key)
    ctx.psk_authenticator = (key, ctx.algorithms.prf, authenticator)
    return authenticator


def our_authenticator(ctx: SaContext, remote_id: Identity | None) -> Authenticator | None:
    """How we authenticate to this peer; ``None`` when we have neither key nor PSK."""
    creds = ctx.config.credentials
    if creds is not None:
        method, scheme = choose_scheme(creds, ctx.config.signature, ctx.peer_hashes)
        return SignatureAuthenticator(creds, method, scheme)
    return _psk(ctx, remote_id)


def check_peer(
    ctx: SaContext,
    message: Message,
    identity: IdPayload,
    auth: AuthPayload,
    octets: bytes,
    remote: Identity | None = None,
) -> Refusal | None:
    """``None`` when the peer's AUTH (over ``octets``) proves ``identity`` (``remote``
    is its :class:`Identity`, when the caller has it already)."""
    name = METHOD_NAMES.get(auth.method)
    if name is None or name not in ctx.prepared.accepted_methods:
        allowed = ", ".join(sorted(ctx.prepared.accepted_methods))
        return Refusal(
            FailureReason.METHOD_NOT_ALLOWED,
            f"the peer authenticated with method {auth.method} ({name or 'unknown'}); "
            f"accepted: {allowed}",
        )
    if remote is None:
        remote = Identity.from_payload(identity)
    if name == "psk":
        verifier = _psk(ctx, remote)
        if verifier is None:
            return Refusal(FailureReason.NO_PSK, f"no pre-shared key for {remote}")
        if not verifier.verify(auth, octets):
            return Refusal(
                FailureReason.AUTHENTICATION_FAILED,
                "the peer's AUTH payload does not verify (wrong PSK?)",
            )
        return None
    return _check_signature(ctx, message, identity, auth, octets)


def _check_signature(
    ctx: SaContext, message: Message, identity: IdPayload, auth: AuthPayload, octets: bytes
) -> Refusal | None:
    raw = [p.data for p in message.find(CertPayload) if p.encoding == X509_SIGNATURE]
    if not raw:
        return Refusal(FailureReason.AUTHENTICATION_FAILED, "signature AUTH without a certificate")
    certs = [_certificate(d) for d in raw[:MAX_CERTS]]
    parsed = [c for c in certs if c is not None]
    if len(parsed) != len(certs):
        return Refusal(FailureReason.AUTHENTICATION_FAILED, "a CERT payload does not parse")
    leaf, intermediates = parsed[0], parsed[1:]
    trust, clock = ctx.config.trust, ctx.config.clock
    assert trust is not None and clock is not None  # IkeConfig insists
    now = clock()
    expired = x509.check_validity(leaf, now)
    if expired:
        return Refusal(FailureReason.CERTIFICATE_EXPIRED, "; ".join(expired))
    problems = x509.verify_chain(leaf, intermediates, list(trust.roots), now)
    problems += x509.check_usage(leaf, ca=False)
    if problems:
        return Refusal(FailureReason.UNTRUSTED_CERTIFICATE, "; ".join(problems))
    claimed = Identity.from_payload(identity)
    if not _carries(leaf, claimed):
        subject = leaf.subject.rfc4514_string()
        return Refusal(
            FailureReason.IDENTITY_MISMATCH,
            f"the certificate {subject!r} does not carry the identity {claimed}",
        )
    scheme, signature = scheme_of_auth(auth)
    if scheme is None:
        return Refusal(FailureReason.AUTHENTICATION_FAILED, "unknown signature algorithm in AUTH")
    if not signatures.verify(leaf, scheme, octets, signature):
        return Refusal(
            FailureReason.AUTHENTICATION_FAILED,
            f"the peer's {scheme.value} signature does not verify",
        )
    return None


@functools.lru_cache(maxsize=64)
def _certificate(der: bytes) -> x509.Certificate | None:
    """A peer's certificate, parsed once per distinct DER (peers send theirs in every
    IKE_AUTH; the parsed object is immutable)."""
    return signatures.load_der_certificate(der)


@functools.lru_cache(maxsize=256)
def _carries(cert: x509.Certificate, identity: Identity) -> bool:
    """True when the certificate names ``identity`` (subjectAltName or subject DN);
    cached, being a pure function of the two (peers prove the same identity again)."""
    kind = identity.id_type
    if kind in (IdType.IPV4_ADDR, IdType.IPV6_ADDR):
        try:
            text = str(ipaddress.ip_address(identity.data))
        except ValueError:
            return False
        return x509.identity_matches(cert, "ip", text)
    if kind in (IdType.FQDN, IdType.RFC822_ADDR):
        text = identity.data.decode("ascii", "replace")
        return x509.identity_matches(cert, "fqdn" if kind == IdType.FQDN else "email", text)
    if kind == IdType.DER_ASN1_DN:
        return identity.data == signatures.subject_der(cert)
    return False
