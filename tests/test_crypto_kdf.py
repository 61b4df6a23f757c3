"""Behaviour of the TS 33.220 Annex B.2 KDF: S encoding, string encoding, input checks."""

import hashlib
import hmac

import pytest

from msgin5g.crypto.errors import CryptoInputError
from msgin5g.crypto.kdf import encode_s, encode_string, kdf


def test_encode_s_layout() -> None:
    s = encode_s(0x80, b"AKMA", b"\x01\x02")

    assert s == b"\x80" + b"AKMA" + b"\x00\x04" + b"\x01\x02" + b"\x00\x02"


def test_encode_s_empty_parameter() -> None:
    assert encode_s(0x10, b"") == b"\x10\x00\x00"


def test_encode_s_without_parameters() -> None:
    assert encode_s(0xFF) == b"\xff"


def test_encode_s_length_big_endian() -> None:
    s = encode_s(0x01, bytes(0x0102))

    assert s[-2:] == b"\x01\x02"


def test_encode_s_max_parameter_length() -> None:
    s = encode_s(0x01, bytes(65535))

    assert s[-2:] == b"\xff\xff"
    assert len(s) == 1 + 65535 + 2


def test_encode_s_rejects_long_parameter() -> None:
    with pytest.raises(CryptoInputError, match="P1 must be at most 65535 octets"):
        encode_s(0x01, b"a", bytes(65536))


@pytest.mark.parametrize("fc", [-1, 256, 0x1FF])
def test_encode_s_rejects_fc_out_of_range(fc: int) -> None:
    with pytest.raises(CryptoInputError, match="fc must be in 0..255"):
        encode_s(fc, b"x")


@pytest.mark.parametrize("fc", [True, "0x80", 0x80 * 1.0])
def test_encode_s_rejects_fc_not_int(fc: object) -> None:
    with pytest.raises(CryptoInputError, match="fc must be an int"):
        encode_s(fc, b"x")  # type: ignore[arg-type]


def test_encode_s_rejects_str_parameter() -> None:
    with pytest.raises(CryptoInputError, match="P0 must be bytes, got str"):
        encode_s(0x80, "AKMA")  # type: ignore[arg-type]


def test_encode_s_accepts_bytearray_and_memoryview() -> None:
    expected = encode_s(0x80, b"AKMA")

    assert encode_s(0x80, bytearray(b"AKMA")) == expected
    assert encode_s(0x80, memoryview(b"AKMA")) == expected


def test_kdf_is_hmac_sha256_over_s() -> None:
    key = bytes(range(32))
    s = b"\x6c" + b"5G:mnc001.mcc001.3gppnetwork.org" + b"\x00\x20"

    derived = kdf(key, 0x6C, b"5G:mnc001.mcc001.3gppnetwork.org")

    assert derived == hmac.digest(key, s, hashlib.sha256)
    assert len(derived) == 32


def test_kdf_rejects_empty_key() -> None:
    with pytest.raises(CryptoInputError, match="key must not be empty"):
        kdf(b"", 0x80, b"AKMA")


def test_kdf_rejects_str_key() -> None:
    with pytest.raises(CryptoInputError, match="key must be bytes, got str"):
        kdf("00" * 32, 0x80, b"AKMA")  # type: ignore[arg-type]


def test_kdf_error_is_value_error() -> None:
    with pytest.raises(ValueError):
        kdf(b"", 0x80)


def test_encode_string_utf8() -> None:
    assert encode_string("AKMA") == b"AKMA"
    assert encode_string("é") == b"\xc3\xa9"


def test_encode_string_applies_nfkc() -> None:
    assert encode_string("ＡＫＭＡ") == b"AKMA"  # full-width letters
    assert encode_string("ﬁ") == b"fi"  # ligature
    assert encode_string("e\u0301") == encode_string("é")  # decomposed accent


def test_encode_string_rejects_bytes() -> None:
    with pytest.raises(CryptoInputError, match="must be str"):
        encode_string(b"AKMA")  # type: ignore[arg-type]
