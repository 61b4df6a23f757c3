"""AKMA key derivations and identifiers of TS 33.535.

Keys: K_AKMA and A-TID from K_AUSF, K_AF from K_AKMA (TS 33.535 Annex A, KDF
of TS 33.220 Annex B.2). Identifiers: the A-KID, the AF_ID and the Ua*
security protocol identifiers (TS 33.220 Annex H).

This module alone builds and parses the A-KID. TS 33.535 defines the A-KID
as an NAI (username@realm): the username contains the Routing Indicator and
the A-TID, and the realm contains the Home Network Identifier. It fixes no
byte layout, so this project uses

    rid<RID>.atid<base64url(A-TID) without padding>@5gc.mnc<MNC>.mcc<MCC>.3gppnetwork.org

with a 3-digit MNC in the realm, as in the NAI form of the SUCI in TS 23.003.
"""

import base64
import binascii
import functools
import re
from dataclasses import dataclass

from msgin5g.crypto._checks import describe, require_octets
from msgin5g.crypto.aka import check_mcc_mnc
from msgin5g.crypto.errors import CryptoInputError
from msgin5g.crypto.kdf import MAX_PARAMETER_OCTETS, encode_string, kdf
from msgin5g.crypto.supi import supi_kdf_value

__all__ = [
    "UA_HTTP_DIGEST",
    "UA_TLS13",
    "AKid",
    "a_tid",
    "af_id",
    "af_id_from_wire",
    "af_id_to_wire",
    "format_a_kid",
    "k_af",
    "k_akma",
    "parse_a_kid",
    "split_af_id",
    "supi_kdf_value",
    "ua_dtls12",
    "ua_tls12",
]

KEY_OCTETS = 32  # K_AUSF, K_AKMA, K_AF
A_TID_OCTETS = 32

FC_K_AKMA = 0x80
FC_A_TID = 0x81
FC_K_AF = 0x82

# TS 33.220 Annex H.3: Ua security protocol identifiers, 5 octets each.
UA_PROTOCOL_ID_OCTETS = 5
UA_TLS13 = bytes.fromhex("0100000007")  # shared-key TLS 1.3 (TS 33.222 5.4.0.2)
UA_HTTP_DIGEST = bytes.fromhex("0100000002")  # HTTP Digest (TS 24.109)
UA_TLS12_PREFIX = bytes.fromhex("010001")  # followed by the 2-octet cipher suite

# TS 23.003 (SUCI): the Routing Indicator is 1 to 4 decimal digits.
ROUTING_INDICATOR_PATTERN = re.compile(r"[0-9]{1,4}")

# 32 octets in base64url without padding are 43 characters.
A_KID_PATTERN = re.compile(
    r"rid(?P<rid>[0-9]{1,4})\.atid(?P<atid>[A-Za-z0-9_-]{43})"
    r"@(?P<realm>5gc\.mnc(?P<mnc>[0-9]{3})\.mcc(?P<mcc>[0-9]{3})\.3gppnetwork\.org)"
)

# Host name syntax of RFC 1035 2.3.1 as relaxed by RFC 1123 2.1: labels of 1 to
# 63 letters, digits and hyphens that neither start nor end with a hyphen. The
# 255-octet name limit of RFC 1035 leaves 253 characters in dotted form, and
# the trailing dot is not accepted.
FQDN_LABEL_PATTERN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
FQDN_MAX_CHARACTERS = 253

# Sizes of the caches of pure parsing and validation steps. A process derives
# keys for few AFs, and K_AKMA and the A-TID of one UE one after the other, so
# small caches hit. An input that fails validation is never cached.
AF_ID_CACHE_SIZE = 256
SUPI_CACHE_SIZE = 1024

# P0 of K_AKMA and of the A-TID (TS 33.535 Annex A.2 and A.3).
P0_K_AKMA = encode_string("AKMA")
P0_A_TID = encode_string("A-TID")

WIRE_SEPARATOR = ";ua-protocol-id="
WIRE_UA_PATTERN = re.compile(r"[0-9a-f]{10}")


@dataclass(frozen=True)
class AKid:
    """The parts of an A-KID in this project's layout."""

    routing_indicator: str
    a_tid: bytes
    mcc: str
    mnc: str  # 3 digits, as in the realm
    realm: str  # 5gc.mnc<MNC>.mcc<MCC>.3gppnetwork.org


def k_akma(k_ausf: bytes, supi: str) -> bytes:
    """Derive K_AKMA from K_AUSF.

    TS 33.535 Annex A.2: FC = 0x80, P0 = "AKMA", P1 = SUPI, key = K_AUSF.
    The SUPI is fed without its SBI prefix (TS 33.501 A.7.0).
    """
    key = require_octets("k_ausf", k_ausf, length=KEY_OCTETS)
    return kdf(key, FC_K_AKMA, P0_K_AKMA, _supi_parameter(supi))


def a_tid(k_ausf: bytes, supi: str) -> bytes:
    """Derive the A-TID (AKMA Temporary UE Identifier) from K_AUSF, 32 octets.

    TS 33.535 Annex A.3: FC = 0x81, P0 = "A-TID", P1 = SUPI, key = K_AUSF.
    The SUPI is fed without its SBI prefix (TS 33.501 A.7.0).
    """
    key = require_octets("k_ausf", k_ausf, length=KEY_OCTETS)
    return kdf(key, FC_A_TID, P0_A_TID, _supi_parameter(supi))


def _supi_parameter(supi: str) -> bytes:
    """Encode P1 of K_AKMA and the A-TID: the SUPI value without its SBI prefix."""
    if type(supi) is str:
        return _cached_supi_parameter(supi)
    return encode_string(supi_kdf_value(supi))  # Raises the error that names the wrong type.


@functools.lru_cache(maxsize=SUPI_CACHE_SIZE)
def _cached_supi_parameter(supi: str) -> bytes:
    return encode_string(supi_kdf_value(supi))


def format_a_kid(routing_indicator: str, a_tid: bytes, mcc: str, mnc: str) -> str:
    """Build the A-KID `rid<RID>.atid<base64url(A-TID)>@5gc.mnc<MNC>.mcc<MCC>.3gppnetwork.org`."""
    if (
        not isinstance(routing_indicator, str)
        or ROUTING_INDICATOR_PATTERN.fullmatch(routing_indicator) is None
    ):
        raise CryptoInputError(
            f"invalid routing_indicator {routing_indicator!r}: expected 1 to 4 digits, "
            "for example '0'"
        )
    a_tid = require_octets("a_tid", a_tid, length=A_TID_OCTETS)
    mcc, mnc3 = check_mcc_mnc(mcc, mnc)

    username = f"rid{routing_indicator}.atid{_base64url(a_tid)}"
    return f"{username}@5gc.mnc{mnc3}.mcc{mcc}.3gppnetwork.org"


def parse_a_kid(a_kid: str) -> AKid:
    """Split an A-KID built by format_a_kid into its parts.

    Raises CryptoInputError (a ValueError) for any other text, including an
    A-TID whose base64url form is not the canonical one.
    """
    if not isinstance(a_kid, str):
        raise CryptoInputError(f"a_kid must be str, got {type(a_kid).__name__}")
    match = A_KID_PATTERN.fullmatch(a_kid)
    if match is None:
        raise CryptoInputError(
            f"invalid a_kid {describe(a_kid)}: expected "
            "rid<1 to 4 digits>.atid<43 base64url characters>@5gc.mnc<3 digits>"
            ".mcc<3 digits>.3gppnetwork.org"
        )

    a_tid_value = _decode_a_tid(a_kid, match["atid"])
    return AKid(
        routing_indicator=match["rid"],
        a_tid=a_tid_value,
        mcc=match["mcc"],
        mnc=match["mnc"],
        realm=match["realm"],
    )


def _base64url(octets: bytes) -> str:
    return base64.urlsafe_b64encode(octets).rstrip(b"=").decode("ascii")


def _decode_a_tid(a_kid: str, text: str) -> bytes:
    try:
        octets = base64.urlsafe_b64decode(text + "=")
    except binascii.Error as error:
        raise CryptoInputError(
            f"invalid a_kid {describe(a_kid)}: invalid base64url in the A-TID: {error}"
        ) from error

    # 43 characters carry 258 bits, so the last 2 bits must be zero. Then each
    # A-TID has exactly one text form, and A-KIDs compare as strings.
    if _base64url(octets) != text:
        raise CryptoInputError(
            f"invalid a_kid {describe(a_kid)}: the A-TID is not in canonical base64url form"
        )
    return octets


def ua_tls12(cipher_suite: int) -> bytes:
    """Build the Ua* security protocol identifier 01 00 01 yy zz (TS 33.220 Annex H.3).

    yy zz is the negotiated TLS cipher suite. TS 33.220 assigns this value to
    shared-key TLS with or without certificate-based AF authentication
    (TS 33.222 5.3 and 5.4).
    """
    if isinstance(cipher_suite, bool) or not isinstance(cipher_suite, int):
        raise CryptoInputError(f"cipher_suite must be an int, got {type(cipher_suite).__name__}")
    if not 0 <= cipher_suite <= 0xFFFF:
        raise CryptoInputError(
            f"cipher_suite must be in 0..65535 (two octets), got {cipher_suite}"
        )
    return UA_TLS12_PREFIX + cipher_suite.to_bytes(2, "big")


def ua_dtls12(cipher_suite: int) -> bytes:
    """Build the Ua* security protocol identifier for PSK-DTLS 1.2.

    NOTE: the copies of TS 33.535 Annex C and TS 33.220 Annex H that were read
    give no DTLS value. This project uses 01 00 01 yy zz, as for TLS 1.2, with
    the negotiated DTLS cipher suite.
    """
    return ua_tls12(cipher_suite)


def _check_fqdn(name: str, fqdn: str) -> str:
    if not isinstance(fqdn, str):
        raise CryptoInputError(f"{name} must be str, got {type(fqdn).__name__}")
    valid = _cached_fqdn_is_valid(fqdn) if type(fqdn) is str else _fqdn_is_valid(fqdn)
    if not valid:
        raise CryptoInputError(
            f"invalid {name} {describe(fqdn)}: expected a host name such as 'af.example.com' "
            "(ASCII letters, digits and hyphens in dot-separated labels, no trailing dot)"
        )
    return fqdn


def _fqdn_is_valid(fqdn: str) -> bool:
    labels = fqdn.split(".")
    return (
        fqdn.isascii()
        and 0 < len(fqdn) <= FQDN_MAX_CHARACTERS
        and all(FQDN_LABEL_PATTERN.fullmatch(label) for label in labels)
    )


_cached_fqdn_is_valid = functools.lru_cache(maxsize=AF_ID_CACHE_SIZE)(_fqdn_is_valid)


def _check_ua_protocol_id(ua_protocol_id: bytes) -> bytes:
    return require_octets("ua_protocol_id", ua_protocol_id, length=UA_PROTOCOL_ID_OCTETS)


def af_id(fqdn: str, ua_protocol_id: bytes) -> bytes:
    """Build AF_ID = FQDN of the AF (ASCII) || Ua* security protocol identifier (5 octets).

    TS 33.535 Annex A.4. The FQDN is used as given, so the UE and the AF must
    spell it the same way, including letter case.
    """
    fqdn = _check_fqdn("fqdn", fqdn)
    return fqdn.encode("ascii") + _check_ua_protocol_id(ua_protocol_id)


def split_af_id(af_id_value: bytes) -> tuple[str, bytes]:
    """Split an AF_ID built by af_id into (FQDN, Ua* security protocol identifier)."""
    octets = require_octets(
        "af_id",
        af_id_value,
        min_length=UA_PROTOCOL_ID_OCTETS + 1,
        max_length=MAX_PARAMETER_OCTETS,
    )
    return _split_af_id_octets(octets)


@functools.lru_cache(maxsize=AF_ID_CACHE_SIZE)
def _split_af_id_octets(octets: bytes) -> tuple[str, bytes]:
    fqdn_octets = octets[:-UA_PROTOCOL_ID_OCTETS]
    try:
        fqdn = fqdn_octets.decode("ascii")
    except UnicodeDecodeError as error:
        raise CryptoInputError("invalid af_id: the FQDN part is not ASCII") from error
    return _check_fqdn("af_id FQDN", fqdn), octets[-UA_PROTOCOL_ID_OCTETS:]


def k_af(k_akma: bytes, af_id: bytes) -> bytes:
    """Derive K_AF from K_AKMA.

    TS 33.535 Annex A.4: FC = 0x82, P0 = AF_ID (FQDN || Ua* security protocol
    identifier, as one parameter), key = K_AKMA.
    """
    key = require_octets("k_akma", k_akma, length=KEY_OCTETS)
    fqdn, ua_protocol_id = split_af_id(af_id)
    # The parts joined again are the AF_ID octets, so a valid bytes AF_ID is P0 as it is.
    p0 = af_id if type(af_id) is bytes else fqdn.encode("ascii") + ua_protocol_id
    return kdf(key, FC_K_AF, p0)


def af_id_to_wire(fqdn: str, ua_protocol_id: bytes) -> str:
    """Build the AfId string of the Naanf and NEF AKMA APIs: `<fqdn>;ua-protocol-id=<10 hex>`.

    TS 29.522 and TS 29.535 define AfId as a plain string without a format,
    so this project fixes this one, with the identifier in lowercase hex.
    """
    fqdn = _check_fqdn("fqdn", fqdn)
    return f"{fqdn}{WIRE_SEPARATOR}{_check_ua_protocol_id(ua_protocol_id).hex()}"


def af_id_from_wire(text: str) -> tuple[str, bytes]:
    """Parse an AfId string built by af_id_to_wire into (FQDN, Ua* security protocol identifier)."""
    if not isinstance(text, str):
        raise CryptoInputError(f"afId must be str, got {type(text).__name__}")
    fqdn, separator, ua_hex = text.partition(WIRE_SEPARATOR)
    if not separator or WIRE_UA_PATTERN.fullmatch(ua_hex) is None:
        raise CryptoInputError(
            f"invalid afId {describe(text)}: expected '<fqdn>;ua-protocol-id=<10 lowercase "
            "hex digits>', for example 'af.example.com;ua-protocol-id=0100000007'"
        )
    return _check_fqdn("afId FQDN", fqdn), bytes.fromhex(ua_hex)
