"""The SUPI as a KDF parameter (TS 33.501 Annex A.7.0).

On the SBI a SUPI carries a type prefix (`imsi-001010000000001`,
`nai-user@realm`, the Supi type of TS 29.571). A KDF takes only the value: the
IMSI digits of TS 23.003 clause 2.2, or the NAI of TS 23.003 clause 28.7.2.
"""

import re

from msgin5g.crypto._checks import describe
from msgin5g.crypto.errors import CryptoInputError

IMSI_PREFIX = "imsi-"
NAI_PREFIX = "nai-"

# SUPI types whose KDF form this module does not build (TS 33.501 A.7.0 feeds
# the NAI forms of the GCI and the GLI).
UNSUPPORTED_PREFIXES = ("gci-", "gli-")

# TS 29.571 Supi pattern `imsi-[0-9]{5,15}`: at most 15 digits (TS 23.003 2.2).
IMSI_PATTERN = re.compile(r"[0-9]{5,15}")

# username@realm, each part non-empty, without whitespace, control characters
# or a second "@".
NAI_PATTERN = re.compile(r"[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+")

SUPI_FORMS = (
    "imsi-<5 to 15 digits>, nai-<username@realm>, or the bare value "
    "(5 to 15 digits or username@realm)"
)


def supi_kdf_value(supi: str) -> str:
    """Return the SUPI value that a KDF takes, without its SBI type prefix.

    `imsi-001010000000001` and `001010000000001` give `001010000000001`;
    `nai-user@realm` and `user@realm` give `user@realm`. Raises CryptoInputError (a
    ValueError) for an empty or malformed SUPI.
    """
    if not isinstance(supi, str):
        raise CryptoInputError(f"supi must be str, got {type(supi).__name__}")
    if not supi:
        raise CryptoInputError(f"supi must not be empty: expected {SUPI_FORMS}")

    if supi.startswith(IMSI_PREFIX):
        return _imsi_digits(supi, supi.removeprefix(IMSI_PREFIX))
    if supi.startswith(NAI_PREFIX):
        return _nai(supi, supi.removeprefix(NAI_PREFIX))
    if supi.startswith(UNSUPPORTED_PREFIXES):
        raise CryptoInputError(
            f"invalid supi {describe(supi)}: the SUPI types gci and gli are not supported, "
            "so use an imsi- or nai- SUPI"
        )
    if "@" in supi:
        return _nai(supi, supi)
    return _imsi_digits(supi, supi)


def _imsi_digits(supi: str, digits: str) -> str:
    if IMSI_PATTERN.fullmatch(digits) is None:
        raise CryptoInputError(f"invalid supi {describe(supi)}: expected {SUPI_FORMS}")
    return digits


def _nai(supi: str, nai: str) -> str:
    if NAI_PATTERN.fullmatch(nai) is None:
        raise CryptoInputError(
            f"invalid supi {describe(supi)}: a NAI SUPI must be nai-<username>@<realm> "
            "or <username>@<realm>, without whitespace or a second '@'"
        )
    return nai
