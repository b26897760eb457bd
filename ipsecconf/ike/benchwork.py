"""The work ``ipsecconf bench ike`` times: full handshakes and their crypto-only bound.

:meth:`Workload.handshake` runs one complete IKE_SA_INIT + IKE_AUTH with its first
CHILD SA between two in-memory :class:`~ipsecconf.ike.sa.IkeSa` objects (every codec,
task, state and check that the engine would run, no sockets).  :meth:`Workload.crypto`
does only the cryptography such a handshake cannot avoid, with the same algorithms and
sizes: both sides' key generation and DH, SKEYSEED/SK_* and the child KEYMAT (prf+), the
AUTH computation and verification on each side (PSK MACs or signatures, over signed
octets that the signer and the verifier each compute from their own keys), and the
encryption and decryption of the two IKE_AUTH messages (four operations).  The ratio of
the two rates says how much the protocol machinery costs on top.

The clock is the caller's (the CLI times these); randomness and wall time are injected.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

from ipsecconf.crypto import dh, pki, signatures
from ipsecconf.crypto.dh import Rng
from ipsecconf.ike.auth import PskAuthenticator, signed_octets
from ipsecconf.ike.config import ChildConfig, IkeConfig, Mode, PskTable
from ipsecconf.ike.constants import AuthMethod
from ipsecconf.ike.context import IkeState
from ipsecconf.ike.credentials import Credentials, SignatureAuthenticator, TrustAnchors
from ipsecconf.ike.errors import LocalProtocolError
from ipsecconf.ike.keymat import child_keys, ike_keys, skeyseed
from ipsecconf.ike.message import SkCrypto
from ipsecconf.ike.payloads import IdPayload
from ipsecconf.ike.sa import IkeSa
from ipsecconf.model.proposals import parse
from ipsecconf.model.selectors import Endpoint, Selector

SUITES: dict[str, tuple[str, str, str]] = {
    "x25519+psk": ("aes256gcm-prfsha256-x25519", "aes256gcm", "psk"),
    "ecp256+rsa2048": ("aes256gcm-prfsha256-ecp256", "aes256gcm", "rsa2048"),
    "modp2048+psk": ("aes128-sha256-prfsha256-modp2048", "aes128-sha256", "psk"),
}
"""Benchmark name: (IKE proposal, ESP proposal, authentication)."""

HOST_I, HOST_R = "198.51.100.1", "198.51.100.2"


def _child(local: str, remote: str, esp: str) -> ChildConfig:
    return ChildConfig(
        name="bench",
        selectors=(Selector(Endpoint.parse(local), Endpoint.parse(remote), 0),),
        proposals=(parse(esp, "esp"),),
        mode=Mode.TRANSPORT,
    )


@dataclass(frozen=True, slots=True)
class _Sizes:
    auth_request: int
    auth_response: int
    init_request: int


class Workload:
    """One benchmark suite: configs for both sides and the two measured operations."""

    def __init__(
        self, suite: str, rng: Rng, clock: Callable[[], datetime.datetime] | None = None
    ) -> None:
        if suite not in SUITES:
            raise LocalProtocolError(f"unknown IKE bench suite {suite!r}: {', '.join(SUITES)}")
        ike, esp, auth = SUITES[suite]
        self.rng = rng
        self.name = suite
        proposal = parse(ike, "ike")
        self.algorithms = proposal
        common_i: dict[str, object] = {}
        common_r: dict[str, object] = {}
        self.credentials: tuple[Credentials, Credentials] | None = None
        if auth == "psk":
            key = rng(32)
            common_i["psk"] = PskTable({HOST_R: key})
            common_r["psk"] = PskTable({HOST_I: key})
            self.psk = key
        else:
            wall = clock or (lambda: datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC))
            root, (leaf_i, leaf_r) = pki.make_pki(wall(), (HOST_I, HOST_R), "rsa2048")
            trust = TrustAnchors.from_pem(root.cert_pem)
            cred_i = Credentials.from_pem(leaf_i.cert_pem, leaf_i.key_pem)
            cred_r = Credentials.from_pem(leaf_r.cert_pem, leaf_r.key_pem)
            self.credentials = (cred_i, cred_r)
            for common, cred in ((common_i, cred_i), (common_r, cred_r)):
                common.update(credentials=cred, trust=trust, clock=wall, signature="pkcs1")
        addr_i, addr_r = ipaddress.ip_address(HOST_I), ipaddress.ip_address(HOST_R)
        self.config_i = IkeConfig(
            local_address=addr_i,
            remote_address=addr_r,
            proposals=(proposal,),
            children=(_child(HOST_I, HOST_R, esp),),
            **common_i,  # type: ignore[arg-type]
        )
        self.config_r = IkeConfig(
            local_address=addr_r,
            remote_address=addr_i,
            proposals=(proposal,),
            children=(_child(HOST_R, HOST_I, esp),),
            **common_r,  # type: ignore[arg-type]
        )
        self.factory = dh.factory(rng)
        self.sizes = self._measure_sizes()

    # -- the full protocol ------------------------------------------------------------
    def handshake(self) -> tuple[IkeSa, IkeSa, list[int]]:
        """One IKE SA + first CHILD SA, in memory; the two SAs and the datagram sizes."""
        init = IkeSa(self.config_i, initiator=True, rng=self.rng, ke_factory=self.factory)
        resp = IkeSa(self.config_r, initiator=False, rng=self.rng, ke_factory=self.factory)
        init.connect(0.0)
        sizes: list[int] = []
        # Ping-pong: each side's datagrams go to the other until neither has any left.
        sender, receiver, source = init, resp, HOST_I
        for _ in range(16):
            out = sender.datagrams_to_send(0.0)
            if not out:
                break
            for d in out:
                sizes.append(len(d.data))
                receiver.receive_datagram(d.data, (source, d.local_port), 0.0)
            sender, receiver = receiver, sender
            source = HOST_R if sender is resp else HOST_I
        if init.state is not IkeState.ESTABLISHED or len(init.children) != 1:
            raise LocalProtocolError(f"bench handshake failed: {init.next_event()}")
        return init, resp, sizes

    def _measure_sizes(self) -> _Sizes:
        _, _, sizes = self.handshake()
        # [IKE_SA_INIT request, response, IKE_AUTH request, response]
        return _Sizes(auth_request=sizes[2], auth_response=sizes[3], init_request=sizes[0])

    # -- the crypto-only bound --------------------------------------------------------
    def crypto(self) -> None:
        """The cryptography of one handshake, nothing else."""
        rng = self.rng
        group = self.algorithms.dh_groups[0]
        prf_alg = self.algorithms.prfs[0]
        cipher = self.algorithms.ciphers[0]
        integ = self.algorithms.integrities[0] if self.algorithms.integrities else None
        integ = integ if integ is not None and integ.icv_bytes and not cipher.aead else None
        esp = self.config_i.children[0].proposals[0]
        ke_i, ke_r = self.factory(group), self.factory(group)
        shared_r = ke_r.shared_secret(ke_i.public_key())
        shared_i = ke_i.shared_secret(ke_r.public_key())
        ni, nr, spi_i, spi_r = rng(32), rng(32), rng(8), rng(8)
        keys = []
        for shared in (shared_i, shared_r):
            seed = skeyseed(prf_alg, ni, nr, shared)
            keys.append(ike_keys(prf_alg, cipher, integ, seed, ni, nr, spi_i, spi_r))
            child_keys(
                prf_alg,
                keys[-1].sk_d,
                esp.ciphers[0],
                esp.integrities[0] if esp.integrities else None,
                ni,
                nr,
            )
        k, k_r = keys  # each side's own derivation
        init_msg = rng(self.sizes.init_request)
        id_i, id_r = IdPayload(True, 1, bytes(4)), IdPayload(False, 1, bytes(4))
        # The octets each side signs, and the same octets computed again by the peer that
        # verifies them, from its own keys (RFC 7296 section 2.15).
        octets_i = signed_octets(prf_alg, init_msg, nr, k.sk_pi, id_i)
        octets_r = signed_octets(prf_alg, init_msg, ni, k_r.sk_pr, id_r)
        check_i = signed_octets(prf_alg, init_msg, nr, k_r.sk_pi, id_i)
        check_r = signed_octets(prf_alg, init_msg, ni, k.sk_pr, id_r)
        if self.credentials is None:
            # Each side derives its PSK MAC key once, MACs its AUTH and checks the peer's.
            psk_i = PskAuthenticator(prf_alg, self.psk)
            psk_r = PskAuthenticator(prf_alg, self.psk)
            for signer, checker, octets, check in (
                (psk_i, psk_r, octets_i, check_i),
                (psk_r, psk_i, octets_r, check_r),
            ):
                if not checker.verify(signer.sign(octets), check):
                    raise LocalProtocolError("bench: PSK AUTH round trip failed")
        else:
            # Each side signs; the other verifies with the signer's certificate.
            for cred, octets, check in (
                (self.credentials[0], octets_i, check_i),
                (self.credentials[1], octets_r, check_r),
            ):
                authenticator = SignatureAuthenticator(
                    cred, AuthMethod.DIGITAL_SIGNATURE, signatures.Scheme.RSA_PKCS1_SHA256
                )
                auth = authenticator.sign(octets)
                size = auth.data[0]
                if not signatures.verify(
                    cred.certificate,
                    signatures.Scheme.RSA_PKCS1_SHA256,
                    check,
                    auth.data[1 + size :],
                ):
                    raise LocalProtocolError("bench: signature round trip failed")
        side_i = SkCrypto(
            cipher,
            integ,
            encr_out=k.sk_ei,
            encr_in=k.sk_er,
            integ_out=k.sk_ai,
            integ_in=k.sk_ar,
            rng=rng,
        )
        side_r = SkCrypto(
            cipher,
            integ,
            encr_out=k.sk_er,
            encr_in=k.sk_ei,
            integ_out=k.sk_ar,
            integ_in=k.sk_ai,
            rng=rng,
        )
        for sender, receiver, total in (
            (side_i, side_r, self.sizes.auth_request),
            (side_r, side_i, self.sizes.auth_response),
        ):
            inner = rng(max(16, total - 28 - 60))
            prefix = bytes(28)
            sk = sender.seal(prefix, 35, inner)
            if receiver.open(prefix + sk, sk[4:]) != inner:
                raise LocalProtocolError("bench: SK round trip failed")
