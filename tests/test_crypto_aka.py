"""Behaviour of the 5G AKA derivations (TS 33.501 Annex A): formats and input checks."""

import hashlib

import pytest

from msgin5g.crypto.aka import (
    hxres_star,
    k_amf,
    k_ausf,
    k_seaf,
    res_star,
    serving_network_name,
)
from msgin5g.crypto.errors import CryptoInputError

CK = bytes.fromhex("b40ba9a3c58b2a05bbf0d987b21bf8cb")
IK = bytes.fromhex("f769bcd751044604127672711c6d3441")
SNN = "5G:mnc093.mcc208.3gppnetwork.org"
RAND = bytes.fromhex("23553cbe9637a89d218ae64dae47bf35")
RES = bytes.fromhex("a54211d5e3ba50bf")
SQN_XOR_AK = bytes.fromhex("55f328b43577")
KEY_32 = bytes(range(32))


def test_serving_network_name_pads_mnc() -> None:
    assert serving_network_name("001", "01") == "5G:mnc001.mcc001.3gppnetwork.org"


def test_serving_network_name_three_digit_mnc() -> None:
    assert serving_network_name("208", "093") == SNN


@pytest.mark.parametrize("mcc", ["01", "0011", "abc", "", "００１"])
def test_serving_network_name_rejects_mcc(mcc: str) -> None:
    with pytest.raises(CryptoInputError, match="invalid mcc"):
        serving_network_name(mcc, "01")


@pytest.mark.parametrize("mnc", ["1", "0001", "0a", ""])
def test_serving_network_name_rejects_mnc(mnc: str) -> None:
    with pytest.raises(CryptoInputError, match="invalid mnc"):
        serving_network_name("001", mnc)


def test_k_ausf_rejects_short_ck() -> None:
    with pytest.raises(CryptoInputError, match="^ck must be 16 octets, got 15 octets$"):
        k_ausf(CK[:15], IK, SNN, SQN_XOR_AK)


def test_k_ausf_rejects_short_ik() -> None:
    with pytest.raises(CryptoInputError, match="^ik must be 16 octets"):
        k_ausf(CK, IK[:8], SNN, SQN_XOR_AK)


def test_k_ausf_rejects_sqn_xor_ak_length() -> None:
    with pytest.raises(CryptoInputError, match="sqn_xor_ak must be 6 octets"):
        k_ausf(CK, IK, SNN, SQN_XOR_AK[:5])


@pytest.mark.parametrize("snn", ["mnc093.mcc208.3gppnetwork.org", "", "5g:mnc093.mcc208"])
def test_k_ausf_rejects_snn(snn: str) -> None:
    with pytest.raises(CryptoInputError, match="snn"):
        k_ausf(CK, IK, snn, SQN_XOR_AK)


def test_k_ausf_length() -> None:
    assert len(k_ausf(CK, IK, SNN, SQN_XOR_AK)) == 32


@pytest.mark.parametrize("length", [4, 8, 16])
def test_res_star_accepts_res_lengths(length: int) -> None:
    assert len(res_star(CK, IK, SNN, RAND, bytes(length))) == 16


@pytest.mark.parametrize(("length", "limit"), [(3, "at least 4"), (17, "at most 16")])
def test_res_star_rejects_res_length(length: int, limit: str) -> None:
    with pytest.raises(CryptoInputError, match=f"res must be {limit} octets"):
        res_star(CK, IK, SNN, RAND, bytes(length))


def test_res_star_rejects_rand_length() -> None:
    with pytest.raises(CryptoInputError, match="rand must be 16 octets"):
        res_star(CK, IK, SNN, RAND[:15], RES)


def test_hxres_star_is_last_half_of_sha256() -> None:
    xres_star = bytes(range(16))

    assert hxres_star(RAND, xres_star) == hashlib.sha256(RAND + xres_star).digest()[16:]


def test_hxres_star_rejects_res_star_length() -> None:
    with pytest.raises(CryptoInputError, match="res_star must be 16 octets"):
        hxres_star(RAND, bytes(32))


def test_k_seaf_rejects_k_ausf_length() -> None:
    with pytest.raises(CryptoInputError, match="k_ausf must be 32 octets"):
        k_seaf(KEY_32[:16], SNN)


def test_k_amf_strips_imsi_prefix() -> None:
    abba = b"\x00\x00"

    assert k_amf(KEY_32, "imsi-208930000000001", abba) == k_amf(KEY_32, "208930000000001", abba)


def test_k_amf_rejects_short_abba() -> None:
    with pytest.raises(CryptoInputError, match="abba must be at least 2 octets"):
        k_amf(KEY_32, "imsi-208930000000001", b"\x00")


def test_k_amf_rejects_bad_supi() -> None:
    with pytest.raises(ValueError, match="invalid supi"):
        k_amf(KEY_32, "imsi-20893x", b"\x00\x00")


def test_key_error_hides_value() -> None:
    short_key = bytes(range(31))

    with pytest.raises(CryptoInputError) as error:
        k_seaf(short_key, SNN)

    assert short_key.hex() not in str(error.value)
