"""Types shared by the SBI models: identifiers, hex-encoded octets and times.

The patterns follow TS 29.571 (Supi, Gpsi, SupportedFeatures, NfInstanceId)
and TS 29.503 (ServingNetworkName), narrowed to the forms this project
supports: the OpenAPI patterns end with a catch-all `|.+` alternative that
would let any text through.
"""

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
)

from msgin5g.crypto.supi import IMSI_PATTERN, NAI_PATTERN

# The SUPI forms that msgin5g.crypto.supi can feed to a KDF, with the SBI prefix.
SUPI_PATTERN = re.compile(rf"imsi-{IMSI_PATTERN.pattern}|nai-{NAI_PATTERN.pattern}")
GPSI_PATTERN = re.compile(rf"msisdn-[0-9]{{5,15}}|extid-{NAI_PATTERN.pattern}")
SUCI_PREFIX = "suci-"
# TS 29.503 ServingNetworkName: "5G:" followed by the serving network
# identifier (TS 33.501 clause 6.1.1.4) and an optional NID.
SERVING_NETWORK_NAME_PATTERN = re.compile(
    r"5G:mnc[0-9]{3}\.mcc[0-9]{3}\.3gppnetwork\.org(:[A-F0-9]{11})?"
)
ROUTING_INDICATOR_PATTERN = re.compile(r"[0-9]{1,4}")
SUPPORTED_FEATURES_PATTERN = re.compile(r"[A-Fa-f0-9]*")
HEX_PATTERN = re.compile(r"[A-Fa-f0-9]*")

SUPI_HELP = (
    "must be a SUPI such as imsi-001010000000001 (imsi-<5 to 15 digits> or nai-<user>@<realm>)"
)
GPSI_HELP = (
    "must be a GPSI such as msisdn-4915112345678 (msisdn-<5 to 15 digits> or extid-<id>@<domain>)"
)


class SbiModel(BaseModel):
    """Base of every SBI body: JSON names as aliases, unknown members ignored.

    Unknown members are ignored so that a peer on a newer API version, which
    may send attributes this project does not know, is still understood.
    """

    model_config = ConfigDict(
        extra="ignore",
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        frozen=True,
    )

    def to_json_dict(self) -> dict:
        """Return the body as JSON-ready data, leaving out absent members."""
        return self.model_dump(mode="json", exclude_none=True)


def check_supi(value: str) -> str:
    if not SUPI_PATTERN.fullmatch(value):
        raise ValueError(SUPI_HELP)
    return value


def check_supi_or_suci(value: str) -> str:
    """Accept a SUPI, or "suci-" followed by text (a SUCI, declined later with 501)."""
    if value.startswith(SUCI_PREFIX) and len(value) > len(SUCI_PREFIX):
        return value
    return check_supi(value)


def check_gpsi(value: str) -> str:
    if not GPSI_PATTERN.fullmatch(value):
        raise ValueError(GPSI_HELP)
    return value


def check_serving_network_name(value: str) -> str:
    if not SERVING_NETWORK_NAME_PATTERN.fullmatch(value):
        raise ValueError(
            "must be a serving network name such as 5G:mnc001.mcc001.3gppnetwork.org "
            "(TS 33.501 clause 6.1.1.4, MNC padded to 3 digits)"
        )
    return value


def check_routing_indicator(value: str) -> str:
    if not ROUTING_INDICATOR_PATTERN.fullmatch(value):
        raise ValueError("must be a routing indicator of 1 to 4 decimal digits, e.g. 0 or 0123")
    return value


def check_supported_features(value: str) -> str:
    if not SUPPORTED_FEATURES_PATTERN.fullmatch(value):
        raise ValueError("must be a hexadecimal feature bitmask, e.g. 0 or 1a")
    return value


def check_nf_instance_id(value: str) -> str:
    try:
        uuid.UUID(value)
    except ValueError:
        raise ValueError(
            "must be a UUID such as 9b1f0c2e-4a55-4c1b-8f7e-2d9a6f3b1c00 (TS 29.571 NfInstanceId)"
        ) from None
    return value


def check_identifier_text(value: str) -> str:
    """Accept a printable identifier of 1 to 255 characters."""
    if not value or len(value) > 255 or not value.isprintable():
        raise ValueError("must be 1 to 255 printable characters")
    return value


def hex_octets_parser(octets: int):
    """Return a validator that turns 2*octets hex digits into bytes.

    Bytes of the right length pass unchanged, so code can build a model from
    values it computed.
    """

    def parse(value: object) -> bytes:
        if isinstance(value, bytes) and len(value) == octets:
            return value
        if isinstance(value, str) and len(value) == 2 * octets and HEX_PATTERN.fullmatch(value):
            return bytes.fromhex(value)
        raise ValueError(f"must be {2 * octets} hexadecimal characters ({octets} octets)")

    return parse


def hex_octets(octets: int):
    """Build a bytes field type carried on the wire as lowercase hex of a fixed length."""
    return Annotated[
        bytes,
        BeforeValidator(hex_octets_parser(octets)),
        PlainSerializer(lambda value: value.hex(), return_type=str, when_used="json"),
    ]


def format_date_time(value: datetime) -> str:
    """Format a time as RFC 3339 in UTC with a "Z" suffix, e.g. 2025-01-31T12:00:00Z."""
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_date_time(value: object) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("must be an RFC 3339 date-time such as 2025-01-31T12:00:00Z") from None
    else:
        raise ValueError("must be an RFC 3339 date-time such as 2025-01-31T12:00:00Z")
    if moment.tzinfo is None:
        raise ValueError("must carry a time zone offset, e.g. 2025-01-31T12:00:00Z")
    return moment


Supi = Annotated[str, AfterValidator(check_supi)]
SupiOrSuci = Annotated[str, AfterValidator(check_supi_or_suci)]
Gpsi = Annotated[str, AfterValidator(check_gpsi)]
ServingNetworkName = Annotated[str, AfterValidator(check_serving_network_name)]
RoutingIndicator = Annotated[str, AfterValidator(check_routing_indicator)]
SupportedFeatures = Annotated[str, AfterValidator(check_supported_features)]
NfInstanceId = Annotated[str, AfterValidator(check_nf_instance_id)]
IdentifierText = Annotated[str, AfterValidator(check_identifier_text)]
DateTime = Annotated[
    datetime,
    BeforeValidator(parse_date_time),
    PlainSerializer(format_date_time, return_type=str, when_used="json"),
]

Rand = hex_octets(16)
Autn = hex_octets(16)
Auts = hex_octets(14)
XresStar = hex_octets(16)
ResStar = hex_octets(16)
HxresStar = hex_octets(16)
Key256 = hex_octets(32)


class MemberError(ValueError):
    """Error of a rule between members; `param` is the JSON Pointer of the member to name.

    A model validator raises it so that the 400 response names a member
    instead of the whole body.
    """

    def __init__(self, param: str, reason: str) -> None:
        super().__init__(reason)
        self.param = param
        self.reason = reason
