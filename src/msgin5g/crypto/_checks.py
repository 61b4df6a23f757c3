"""Argument checks shared by the derivation modules."""

from collections.abc import Buffer

from msgin5g.crypto.errors import CryptoInputError


def require_octets(
    name: str,
    value: object,
    *,
    length: int | None = None,
    min_length: int = 0,
    max_length: int | None = None,
    error: type[CryptoInputError] = CryptoInputError,
) -> bytes:
    """Return `value` as bytes after checking its type and length in octets.

    The message names the parameter and the lengths, never the value, because
    most of these parameters are keys.
    """
    # bytes itself skips the isinstance check against the Buffer ABC, which is slow.
    if type(value) is bytes:
        octets = value
    elif isinstance(value, str) or not isinstance(value, Buffer):
        raise error(
            f"{name} must be bytes, got {type(value).__name__}; "
            "convert hex text with bytes.fromhex()"
        )
    else:
        octets = bytes(value)

    if length is not None and len(octets) != length:
        raise error(f"{name} must be {length} octets, got {len(octets)} octets")
    if not octets and min_length > 0:
        raise error(f"{name} must not be empty")
    if len(octets) < min_length:
        raise error(f"{name} must be at least {min_length} octets, got {len(octets)} octets")
    if max_length is not None and len(octets) > max_length:
        raise error(f"{name} must be at most {max_length} octets, got {len(octets)} octets")
    return octets


def require_text(name: str, value: object) -> str:
    """Return `value` after checking that it is a non-empty str."""
    if not isinstance(value, str):
        raise CryptoInputError(f"{name} must be str, got {type(value).__name__}")
    if not value:
        raise CryptoInputError(f"{name} must not be empty")
    return value


def describe(value: str, limit: int = 64) -> str:
    """Return a short printable form of a non-secret value for error messages."""
    if len(value) <= limit:
        return repr(value)
    return repr(value[:limit]) + f"... ({len(value)} characters)"
