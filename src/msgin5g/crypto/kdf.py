"""Generic key derivation function of TS 33.220 Annex B.2.

S = FC || P0 || L0 || P1 || L1 || ... || Pn || Ln, where FC is one octet and
each Li is the length of Pi in octets as two octets, big-endian. The derived
key is HMAC-SHA-256(Key, S), 32 octets (TS 33.220 B.2.0).
"""

import hashlib
import hmac
import unicodedata

from msgin5g.crypto._checks import require_octets
from msgin5g.crypto.errors import CryptoInputError

# TS 33.220 B.1: every input parameter is at most 65535 octets, because its
# length Li is encoded in two octets.
MAX_PARAMETER_OCTETS = 0xFFFF

# FC as one octet, indexed by its value.
FC_OCTETS = tuple(bytes([fc]) for fc in range(0x100))


def encode_string(text: str) -> bytes:
    """Encode a character-string parameter as TS 33.220 B.2.1.2 requires: NFKC, then UTF-8."""
    if not isinstance(text, str):
        raise CryptoInputError(f"string parameter must be str, got {type(text).__name__}")
    return unicodedata.normalize("NFKC", text).encode("utf-8")


def encode_s(fc: int, *params: bytes) -> bytes:
    """Build the KDF input string S = FC || P0 || L0 || ... || Pn || Ln (TS 33.220 B.2.0)."""
    # NOTE: only one-octet FC values are supported. No derivation in this
    # project uses the two-octet form 0xFF || FC2 of TS 33.220 B.2.0.
    if type(fc) is not int or not 0 <= fc <= 0xFF:
        _check_fc(fc)

    parts = [FC_OCTETS[fc]]
    for index, param in enumerate(params):
        if type(param) is not bytes or len(param) > MAX_PARAMETER_OCTETS:
            param = require_octets(f"P{index}", param, max_length=MAX_PARAMETER_OCTETS)
        parts += (param, len(param).to_bytes(2, "big"))
    return b"".join(parts)


def _check_fc(fc: object) -> None:
    """Raise CryptoInputError unless `fc` is an int (not a bool) in 0..255."""
    if isinstance(fc, bool) or not isinstance(fc, int):
        raise CryptoInputError(f"fc must be an int, got {type(fc).__name__}")
    if not 0 <= fc <= 0xFF:
        raise CryptoInputError(f"fc must be in 0..255 (one octet), got {fc}")


def kdf(key: bytes, fc: int, *params: bytes) -> bytes:
    """Derive a 32-octet key: HMAC-SHA-256(key, S) over S from encode_s (TS 33.220 B.2.0)."""
    key_octets = require_octets("key", key, min_length=1)
    s = encode_s(fc, *params)
    return hmac.digest(key_octets, s, hashlib.sha256)
