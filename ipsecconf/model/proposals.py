"""Proposals: what an SA may be negotiated with, as ordered lists of algorithms.

A proposal string uses strongSwan's familiar shape, tokens joined by ``-``:
``aes256gcm-prfsha384-ecp384`` (IKE), ``aes128-sha256-modp2048-esn`` (ESP with PFS).
Within one proposal several tokens of a kind are alternatives, strongest first.

``auto`` (the seed's "best algorithm based on the peer capabilities") expands to an
ordered list, strongest first, with AEAD and non-AEAD suites in separate proposals as
RFC 7296 section 3.3 requires.  A responder takes the first proposal of the initiator
that it shares, so the initiator's order decides.
"""

from __future__ import annotations

from dataclasses import dataclass

from ipsecconf.model import algorithms as alg


class ProposalError(ValueError):
    """A proposal string or combination is invalid; the message says which token."""


@dataclass(frozen=True, slots=True)
class Proposal:
    """One SA proposal: each field lists alternatives, preferred first."""

    protocol: str
    """``ike``, ``esp`` or ``ah``."""
    ciphers: tuple[alg.Cipher, ...] = ()
    integrities: tuple[alg.Integrity, ...] = ()
    prfs: tuple[alg.Prf, ...] = ()
    dh_groups: tuple[alg.DhGroup, ...] = ()
    esn: tuple[bool, ...] = (False,)

    @property
    def aead(self) -> bool:
        """True when the proposal's ciphers are AEAD (they never mix, see :func:`parse`)."""
        return bool(self.ciphers) and self.ciphers[0].aead

    def weak_names(self) -> list[str]:
        """The names of weak algorithms in this proposal (RFC 8221, RFC 8247)."""
        weak = [c.name for c in self.ciphers if c.weak]
        ike = self.protocol == "ike"
        weak += [i.name for i in self.integrities if (i.weak_for_ike if ike else i.weak)]
        weak += [p.name for p in self.prfs if p.weak]
        weak += [g.name for g in self.dh_groups if g.weak]
        return weak

    def __str__(self) -> str:
        words = [c.name for c in self.ciphers]
        words += [i.name for i in self.integrities if i.name != "none"]
        words += [p.name for p in self.prfs]
        words += [g.name for g in self.dh_groups]
        if self.protocol != "ike":
            words += ["esn" if e else "noesn" for e in self.esn] if self.esn != (False,) else []
        return "-".join(words)


_PRF_FOR_INTEG = {
    "md5": "prfmd5",
    "sha1": "prfsha1",
    "sha256": "prfsha256",
    "sha384": "prfsha384",
    "sha512": "prfsha512",
}


def _classify(token: str) -> tuple[str, object]:
    t = token.strip().lower()
    if t in ("esn", "noesn"):
        return "esn", t == "esn"
    if t.startswith("prf"):
        return "prf", alg.prf(t)
    for kind, fn in (("cipher", alg.cipher), ("integ", alg.integrity), ("dh", alg.dh_group)):
        try:
            return kind, fn(t)
        except alg.UnknownAlgorithm:
            continue
    valid = sorted({*alg.CIPHERS, *alg.INTEGRITIES, *alg.PRFS, *alg.DH_GROUPS, "esn", "noesn"})
    raise ProposalError(f"unknown algorithm {token!r} in proposal; valid: {', '.join(valid)}")


def parse(text: str, protocol: str) -> Proposal:
    """Parse one proposal string for ``ike``, ``esp`` or ``ah``; raise ProposalError."""
    if protocol not in ("ike", "esp", "ah"):
        raise ProposalError(f"unknown protocol {protocol!r}")
    tokens = [t for t in str(text).split("-") if t.strip()]
    if not tokens:
        raise ProposalError("empty proposal")
    ciphers: list[alg.Cipher] = []
    integs: list[alg.Integrity] = []
    prfs: list[alg.Prf] = []
    groups: list[alg.DhGroup] = []
    esn: list[bool] = []
    for token in tokens:
        kind, value = _classify(token)
        bucket: list[object] = {
            "cipher": ciphers,
            "integ": integs,
            "prf": prfs,
            "dh": groups,
            "esn": esn,
        }[kind]  # type: ignore[assignment]
        if value not in bucket:
            bucket.append(value)
    where = f"proposal {text!r}"
    if protocol == "ah":
        if ciphers:
            raise ProposalError(f"{where}: AH does not encrypt; remove {ciphers[0].name}")
        if not integs or any(i.name == "none" for i in integs):
            raise ProposalError(f"{where}: AH needs an integrity algorithm")
    else:
        if not ciphers:
            raise ProposalError(f"{where}: no encryption algorithm")
        if len({c.aead for c in ciphers}) > 1:
            raise ProposalError(f"{where}: AEAD and non-AEAD ciphers go in separate proposals")
        if ciphers[0].aead:
            real = [i for i in integs if i.name != "none"]
            if real:
                raise ProposalError(
                    f"{where}: {ciphers[0].name} is AEAD and takes no integrity algorithm "
                    f"(remove {real[0].name}; RFC 7296 section 3.3)"
                )
            integs = []
        elif not integs and (protocol == "ike" or any(c.name == "null" for c in ciphers)):
            raise ProposalError(f"{where}: {ciphers[0].name} needs an integrity algorithm")
    if protocol == "ike":
        if any(c.name == "null" for c in ciphers):
            raise ProposalError(f"{where}: ENCR_NULL is never allowed for IKE")
        if esn:
            raise ProposalError(f"{where}: esn/noesn apply to ESP and AH, not IKE")
        if not groups:
            raise ProposalError(f"{where}: an IKE proposal needs a DH group")
        if not prfs:
            if integs:
                prfs = [alg.PRFS[_PRF_FOR_INTEG[i.name]] for i in integs]
            else:
                prfs = [alg.PRFS["prfsha256"]]
    elif prfs:
        raise ProposalError(f"{where}: a PRF belongs to IKE proposals only")
    return Proposal(
        protocol=protocol,
        ciphers=tuple(ciphers),
        integrities=tuple(integs),
        prfs=tuple(prfs),
        dh_groups=tuple(groups),
        esn=tuple(esn) or (False,),
    )


def default_ike() -> list[Proposal]:
    """The ``auto`` IKE proposals, strongest first: AEAD, then AES-CBC with HMAC-SHA2."""
    groups = tuple(alg.DH_GROUPS[g] for g in alg.AUTO_DH_GROUPS)
    prfs = tuple(alg.PRFS[p] for p in alg.AUTO_IKE_PRFS)
    return [
        Proposal(
            "ike",
            ciphers=tuple(alg.CIPHERS[c] for c in alg.AUTO_ESP_AEAD),
            prfs=prfs,
            dh_groups=groups,
        ),
        Proposal(
            "ike",
            ciphers=tuple(alg.CIPHERS[c] for c in alg.AUTO_ESP_CIPHERS),
            integrities=tuple(alg.INTEGRITIES[i] for i in alg.AUTO_ESP_INTEGRITIES),
            prfs=prfs,
            dh_groups=groups,
        ),
    ]


def child_proposals(
    protocol: str,
    encryption: str,
    authentication: str,
    *,
    pfs_group: str | None = None,
    esn: str = "auto",
) -> list[Proposal]:
    """ESP or AH proposals from a policy's seed-style ``encryption``/``authentication`` words.

    ``auto`` for either word offers the strong choices, strongest first; an explicit word
    is proposed exactly.  ``esn``: ``auto`` offers no-ESN first and ESN second (strongSwan's
    user-space dataplane refuses ESN), ``yes``/``no`` offer only that.
    """
    esn_opts = {"auto": (False, True), "yes": (True,), "no": (False,)}[esn]
    groups = (alg.dh_group(pfs_group),) if pfs_group else ()
    legacy_integs = ("sha1",)
    if protocol == "ah":
        if encryption not in ("auto", "null"):
            raise ProposalError(f"AH does not encrypt; encryption {encryption!r} is not allowed")
        if authentication == "auto":
            integs = tuple(alg.INTEGRITIES[i] for i in (*alg.AUTO_ESP_INTEGRITIES, *legacy_integs))
        elif authentication == "none":
            raise ProposalError("AH needs an integrity algorithm; authentication none is invalid")
        else:
            integs = (alg.integrity(authentication),)
        return [Proposal("ah", integrities=integs, dh_groups=groups, esn=esn_opts)]
    if protocol != "esp":
        raise ProposalError(f"no proposals for protocol {protocol!r}")
    proposals: list[Proposal] = []
    if encryption == "auto":
        if authentication in ("auto", "none"):
            proposals.append(
                Proposal(
                    "esp",
                    ciphers=tuple(alg.CIPHERS[c] for c in alg.AUTO_ESP_AEAD),
                    dh_groups=groups,
                    esn=esn_opts,
                )
            )
        if authentication != "none":
            integs = (
                tuple(alg.INTEGRITIES[i] for i in (*alg.AUTO_ESP_INTEGRITIES, *legacy_integs))
                if authentication == "auto"
                else (alg.integrity(authentication),)
            )
            proposals.append(
                Proposal(
                    "esp",
                    ciphers=tuple(alg.CIPHERS[c] for c in alg.AUTO_ESP_CIPHERS),
                    integrities=integs,
                    dh_groups=groups,
                    esn=esn_opts,
                )
            )
        return proposals
    c = alg.cipher(encryption)
    if c.aead:
        if authentication not in ("auto", "none"):
            raise ProposalError(
                f"{c.name} is AEAD and takes no integrity algorithm "
                f"(authentication must be none or auto, not {authentication}; RFC 7296 3.3)"
            )
        return [Proposal("esp", ciphers=(c,), dh_groups=groups, esn=esn_opts)]
    if authentication == "none":
        if c.name == "null":
            raise ProposalError("ESP with null encryption and no integrity protects nothing")
        integs = ()
    elif authentication == "auto":
        extra = ("sha1", "md5") if c.weak else legacy_integs
        integs = tuple(alg.INTEGRITIES[i] for i in (*alg.AUTO_ESP_INTEGRITIES, *extra))
    else:
        integs = (alg.integrity(authentication),)
    return [Proposal("esp", ciphers=(c,), integrities=integs, dh_groups=groups, esn=esn_opts)]
