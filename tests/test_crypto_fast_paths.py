"""The fast paths and caches of the KDF code give the same results and errors as the plain checks.

Each reference below is the code as it was before the fast path: generic
Buffer checks, no caches. Hypothesis compares the two on valid and invalid
inputs, and a cached step must raise again for the same invalid input.
"""

import hashlib
import hmac
import unicodedata
from collections.abc import Buffer

import pytest
from hypothesis import given
from hypothesis import strategies as st

from msgin5g.crypto import akma
from msgin5g.crypto._checks import require_octets
from msgin5g.crypto.errors import CryptoInputError
from msgin5g.crypto.kdf import MAX_PARAMETER_OCTETS, encode_s
from msgin5g.crypto.supi import supi_kdf_value


class TextSubclass(str):
    """A str subclass, which takes the uncached path."""


def reference_octets(name: str, value: object, **limits: int | None) -> bytes:
    if isinstance(value, str) or not isinstance(value, Buffer):
        raise CryptoInputError(
            f"{name} must be bytes, got {type(value).__name__}; convert hex text with bytes.fromhex()"
        )
    octets = bytes(value)
    length, min_length, max_length = limits.get("length"), limits.get("min_length", 0), limits.get("max_length")
    if length is not None and len(octets) != length:
        raise CryptoInputError(f"{name} must be {length} octets, got {len(octets)} octets")
    if not octets and min_length > 0:
        raise CryptoInputError(f"{name} must not be empty")
    if len(octets) < min_length:
        raise CryptoInputError(f"{name} must be at least {min_length} octets, got {len(octets)} octets")
    if max_length is not None and len(octets) > max_length:
        raise CryptoInputError(f"{name} must be at most {max_length} octets, got {len(octets)} octets")
    return octets


def reference_encode_s(fc: object, *params: object) -> bytes:
    if isinstance(fc, bool) or not isinstance(fc, int):
        raise CryptoInputError(f"fc must be an int, got {type(fc).__name__}")
    if not 0 <= fc <= 0xFF:
        raise CryptoInputError(f"fc must be in 0..255 (one octet), got {fc}")
    parts = [bytes([fc])]
    for index, param in enumerate(params):
        octets = reference_octets(f"P{index}", param, max_length=MAX_PARAMETER_OCTETS)
        parts += [octets, len(octets).to_bytes(2, "big")]
    return b"".join(parts)


def outcome(function, *args, **kwargs) -> tuple[str, object]:
    """Return ("ok", result) or ("error", message), so results and errors compare alike."""
    try:
        return "ok", function(*args, **kwargs)
    except CryptoInputError as error:
        return "error", str(error)


octet_values = st.one_of(
    st.binary(max_size=40),
    st.binary(max_size=40).map(bytearray),
    st.binary(max_size=40).map(memoryview),
    st.text(max_size=5),
    st.integers(),
    st.none(),
)
limits = st.fixed_dictionaries(
    {},
    optional={
        "length": st.integers(0, 40),
        "min_length": st.integers(0, 40),
        "max_length": st.integers(0, 40),
    },
)


@given(octet_values, limits)
def test_require_octets_matches_reference(value, chosen_limits):
    assert outcome(require_octets, "key", value, **chosen_limits) == outcome(
        reference_octets, "key", value, **chosen_limits
    )


@given(
    st.one_of(st.integers(-2, 300), st.booleans(), st.floats(0, 5), st.none()),
    st.lists(octet_values, max_size=4),
)
def test_encode_s_matches_reference(fc, params):
    assert outcome(encode_s, fc, *params) == outcome(reference_encode_s, fc, *params)


def test_encode_s_long_parameter_still_rejected():
    long_parameter = bytes(MAX_PARAMETER_OCTETS + 1)

    with pytest.raises(CryptoInputError, match="P0 must be at most 65535 octets"):
        encode_s(0x80, long_parameter)


supis = st.one_of(
    st.from_regex(r"imsi-[0-9]{5,15}", fullmatch=True),
    st.from_regex(r"nai-[a-z0-9.]{1,10}@[a-z0-9.]{1,10}", fullmatch=True),
    st.text(max_size=20),
)


def reference_supi_key(fc: int, label: str, k_ausf: bytes, supi: str) -> bytes:
    p1 = unicodedata.normalize("NFKC", supi_kdf_value(supi)).encode("utf-8")
    return hmac.digest(k_ausf, reference_encode_s(fc, label.encode(), p1), hashlib.sha256)


@given(st.binary(min_size=32, max_size=32), supis)
def test_k_akma_and_a_tid_match_reference(k_ausf, supi):
    for subject in (supi, TextSubclass(supi), supi):  # The third call hits the cache.
        assert outcome(akma.k_akma, k_ausf, subject) == outcome(reference_supi_key, 0x80, "AKMA", k_ausf, supi)
        assert outcome(akma.a_tid, k_ausf, subject) == outcome(reference_supi_key, 0x81, "A-TID", k_ausf, supi)


def test_k_akma_rejects_non_str_supi():
    with pytest.raises(CryptoInputError, match="supi must be str, got bytes"):
        akma.k_akma(bytes(32), b"imsi-001010000000001")


fqdns = st.one_of(
    st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?(\.[a-z0-9]{1,8}){0,3}", fullmatch=True),
    st.text(max_size=20),
)
ua_ids = st.binary(min_size=5, max_size=5)


def reference_k_af(k_akma: bytes, af_id: object) -> bytes:
    octets = reference_octets("af_id", af_id, min_length=6, max_length=MAX_PARAMETER_OCTETS)
    try:
        fqdn = octets[:-5].decode("ascii")
    except UnicodeDecodeError as error:
        raise CryptoInputError("invalid af_id: the FQDN part is not ASCII") from error
    if not akma._fqdn_is_valid(fqdn):
        raise CryptoInputError("invalid")
    return hmac.digest(k_akma, reference_encode_s(0x82, octets), hashlib.sha256)


@given(st.binary(min_size=32, max_size=32), fqdns, ua_ids)
def test_k_af_matches_reference(k_akma, fqdn, ua_protocol_id):
    af_id = fqdn.encode("utf-8") + ua_protocol_id
    expected_kind, expected = outcome(reference_k_af, k_akma, af_id)

    for value in (af_id, bytearray(af_id), af_id):  # The third call hits the cache.
        kind, result = outcome(akma.k_af, k_akma, value)
        assert kind == expected_kind
        if kind == "ok":
            assert result == expected


@given(fqdns, ua_ids)
def test_af_id_fqdn_check_cached_alike(fqdn, ua_protocol_id):
    first = outcome(akma.af_id, fqdn, ua_protocol_id)
    cached = outcome(akma.af_id, fqdn, ua_protocol_id)
    uncached = outcome(akma.af_id, TextSubclass(fqdn), ua_protocol_id)

    assert first == cached
    assert first == uncached
    assert (first[0] == "ok") == akma._fqdn_is_valid(fqdn)


def test_invalid_af_id_raises_every_time():
    af_id = b"-bad-.example" + akma.UA_TLS13

    for _ in range(3):
        with pytest.raises(CryptoInputError, match="invalid af_id FQDN"):
            akma.k_af(bytes(32), af_id)
