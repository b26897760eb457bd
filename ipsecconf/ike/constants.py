"""The IKEv2 registries this core speaks, as IntEnums (RFC 7296 section 3 and IANA).

Numbers come from the IANA "Internet Key Exchange Version 2 (IKEv2) Parameters" registry.
Transform ids live in :mod:`ipsecconf.model.algorithms`, shared with ESP and the
configuration; they are re-exported here for the codec's convenience.
"""

from __future__ import annotations

import enum

from ipsecconf.model.algorithms import DhId, EncrId, EsnId, IntegId, PrfId, TransformType

__all__ = [
    "AuthMethod",
    "DhId",
    "EncrId",
    "EsnId",
    "ExchangeType",
    "Flags",
    "IdType",
    "IntegId",
    "NotifyType",
    "PayloadType",
    "PrfId",
    "ProtocolId",
    "TransformType",
    "TsType",
    "IKE_PORT",
    "NATT_PORT",
    "NON_ESP_MARKER",
]

IKE_PORT = 500
NATT_PORT = 4500
NON_ESP_MARKER = b"\0\0\0\0"
"""Prefix of IKE messages on port 4500 (RFC 3948 section 2.2)."""


class ExchangeType(enum.IntEnum):
    """RFC 7296 section 3.1."""

    IKE_SA_INIT = 34
    IKE_AUTH = 35
    CREATE_CHILD_SA = 36
    INFORMATIONAL = 37


class Flags(enum.IntFlag):
    """IKE header flags (RFC 7296 section 3.1)."""

    NONE = 0
    INITIATOR = 0x08
    VERSION = 0x10
    RESPONSE = 0x20


class PayloadType(enum.IntEnum):
    """Next Payload values (RFC 7296 section 3.2, RFC 7383)."""

    NONE = 0
    SA = 33
    KE = 34
    IDI = 35
    IDR = 36
    CERT = 37
    CERTREQ = 38
    AUTH = 39
    NONCE = 40
    NOTIFY = 41
    DELETE = 42
    VENDOR_ID = 43
    TSI = 44
    TSR = 45
    SK = 46
    CP = 47
    EAP = 48
    SKF = 53


class ProtocolId(enum.IntEnum):
    """Security protocol identifiers (RFC 7296 section 3.3.1)."""

    NONE = 0
    IKE = 1
    AH = 2
    ESP = 3


class IdType(enum.IntEnum):
    """Identification types (RFC 7296 section 3.5)."""

    IPV4_ADDR = 1
    FQDN = 2
    RFC822_ADDR = 3
    IPV6_ADDR = 5
    DER_ASN1_DN = 9
    DER_ASN1_GN = 10
    KEY_ID = 11


class AuthMethod(enum.IntEnum):
    """Authentication methods (RFC 7296 section 3.8, RFC 4754, RFC 7427)."""

    RSA_SIGNATURE = 1
    SHARED_KEY_MIC = 2
    DSS_SIGNATURE = 3
    ECDSA_SHA256_P256 = 9
    ECDSA_SHA384_P384 = 10
    ECDSA_SHA512_P521 = 11
    DIGITAL_SIGNATURE = 14


class TsType(enum.IntEnum):
    """Traffic selector types (RFC 7296 section 3.13.1)."""

    IPV4_ADDR_RANGE = 7
    IPV6_ADDR_RANGE = 8


class NotifyType(enum.IntEnum):
    """Notify message types: errors below 16384, status from 16384 (RFC 7296 3.10.1)."""

    UNSUPPORTED_CRITICAL_PAYLOAD = 1
    INVALID_IKE_SPI = 4
    INVALID_MAJOR_VERSION = 5
    INVALID_SYNTAX = 7
    INVALID_MESSAGE_ID = 9
    INVALID_SPI = 11
    NO_PROPOSAL_CHOSEN = 14
    INVALID_KE_PAYLOAD = 17
    AUTHENTICATION_FAILED = 24
    SINGLE_PAIR_REQUIRED = 34
    NO_ADDITIONAL_SAS = 35
    INTERNAL_ADDRESS_FAILURE = 36
    FAILED_CP_REQUIRED = 37
    TS_UNACCEPTABLE = 38
    INVALID_SELECTORS = 39
    TEMPORARY_FAILURE = 43
    CHILD_SA_NOT_FOUND = 44
    INITIAL_CONTACT = 16384
    SET_WINDOW_SIZE = 16385
    ADDITIONAL_TS_POSSIBLE = 16386
    IPCOMP_SUPPORTED = 16387
    NAT_DETECTION_SOURCE_IP = 16388
    NAT_DETECTION_DESTINATION_IP = 16389
    COOKIE = 16390
    USE_TRANSPORT_MODE = 16391
    HTTP_CERT_LOOKUP_SUPPORTED = 16392
    REKEY_SA = 16393
    ESP_TFC_PADDING_NOT_SUPPORTED = 16394
    NON_FIRST_FRAGMENTS_ALSO = 16395
    MOBIKE_SUPPORTED = 16396
    FRAGMENTATION_SUPPORTED = 16430
    SIGNATURE_HASH_ALGORITHMS = 16431

    @property
    def is_error(self) -> bool:
        """Error types are below 16384 (RFC 7296 section 3.10.1)."""
        return self.value < 16384


def notify_name(value: int) -> str:
    """The registry name of a notify type, or its number when unknown."""
    try:
        return NotifyType(value).name
    except ValueError:
        return f"NOTIFY_{value}"
