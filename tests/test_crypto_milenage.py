"""Behaviour of Milenage (TS 35.206): input checks, the separate functions, masked repr."""

import pytest

from msgin5g.crypto.milenage import (
    MilenageError,
    MilenageOutput,
    build_autn,
    f1,
    f2345,
    f5_star,
    milenage,
    opc_from_op,
)

# TS 35.207 implementors' test set 1; the vector tests check every output.
K = bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc")
OP = bytes.fromhex("cdc202d5123e20f62b6d676ac72cb318")
OPC = bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf")
RAND = bytes.fromhex("23553cbe9637a89d218ae64dae47bf35")
SQN = bytes.fromhex("ff9bb4d0b607")
AMF = bytes.fromhex("b9b9")

VALID = {"k": K, "opc": OPC, "rand": RAND, "sqn": SQN, "amf": AMF}


def test_opc_from_op() -> None:
    assert opc_from_op(K, OP) == OPC


@pytest.mark.parametrize(
    ("name", "bad_value", "expected_length"),
    [
        ("k", bytes(15), 16),
        ("opc", bytes(17), 16),
        ("rand", bytes(8), 16),
        ("sqn", bytes(5), 6),
        ("amf", bytes(3), 2),
    ],
)
def test_milenage_rejects_wrong_length(name: str, bad_value: bytes, expected_length: int) -> None:
    arguments = {**VALID, name: bad_value}

    with pytest.raises(MilenageError, match=f"^{name} must be {expected_length} octets"):
        milenage(**arguments)


def test_milenage_rejects_hex_text() -> None:
    with pytest.raises(MilenageError, match="k must be bytes, got str"):
        milenage(**{**VALID, "k": K.hex()})


def test_opc_from_op_names_op() -> None:
    with pytest.raises(MilenageError, match="^op must be 16 octets, got 15 octets$"):
        opc_from_op(K, OP[:15])


def test_milenage_error_is_value_error() -> None:
    assert issubclass(MilenageError, ValueError)


def test_milenage_error_hides_value() -> None:
    with pytest.raises(MilenageError) as error:
        milenage(**{**VALID, "k": K[:15]})

    assert K[:15].hex() not in str(error.value)


def test_milenage_matches_separate_functions() -> None:
    output = milenage(K, OPC, RAND, SQN, AMF)
    res, ck, ik, ak = f2345(K, OPC, RAND)

    assert (output.mac_a, output.mac_s) == f1(K, OPC, RAND, SQN, AMF)
    assert output.res == res
    assert output.ck == ck
    assert output.ik == ik
    assert output.ak == ak
    assert output.ak_star == f5_star(K, OPC, RAND)


def test_milenage_output_lengths() -> None:
    output = milenage(K, OPC, RAND, SQN, AMF)

    assert len(output.mac_a) == 8
    assert len(output.mac_s) == 8
    assert len(output.res) == 8
    assert len(output.ck) == 16
    assert len(output.ik) == 16
    assert len(output.ak) == 6
    assert len(output.ak_star) == 6


def test_milenage_output_repr_masks_keys() -> None:
    output = milenage(K, OPC, RAND, SQN, AMF)
    text = repr(output)

    assert text == "MilenageOutput()"
    for value in (output.res, output.ck, output.ik, output.ak, output.ak_star):
        assert value.hex() not in text


def test_milenage_output_is_frozen() -> None:
    output = milenage(K, OPC, RAND, SQN, AMF)

    with pytest.raises(AttributeError):
        output.ck = bytes(16)  # type: ignore[misc]


def test_build_autn_layout() -> None:
    output = milenage(K, OPC, RAND, SQN, AMF)
    autn = build_autn(SQN, output.ak, AMF, output.mac_a)
    concealed_sqn = bytes(a ^ b for a, b in zip(SQN, output.ak))

    assert len(autn) == 16
    assert autn[:6] == concealed_sqn
    assert autn[6:8] == AMF
    assert autn[8:] == output.mac_a


def test_usim_recovers_sqn_from_autn() -> None:
    network = milenage(K, OPC, RAND, SQN, AMF)
    autn = build_autn(SQN, network.ak, AMF, network.mac_a)

    # The USIM computes AK from RAND alone, then SQN, then checks MAC-A.
    _, _, _, ak = f2345(K, OPC, RAND)
    sqn = bytes(a ^ b for a, b in zip(autn[:6], ak))
    xmac_a, _ = f1(K, OPC, RAND, sqn, autn[6:8])

    assert sqn == SQN
    assert xmac_a == autn[8:]


def test_build_autn_rejects_short_mac_a() -> None:
    with pytest.raises(MilenageError, match="mac_a must be 8 octets"):
        build_autn(SQN, bytes(6), AMF, bytes(7))


def test_milenage_output_type() -> None:
    assert isinstance(milenage(K, OPC, RAND, SQN, AMF), MilenageOutput)
