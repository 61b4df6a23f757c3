"""Behaviour of the software USIM's AUTN check."""

import pytest

from msgin5g.crypto.milenage import build_autn, f1, f5_star, milenage, opc_from_op
from msgin5g.service.usim import (
    MacFailure,
    NonFiveGAuthenticationUnacceptable,
    SynchFailure,
    Usim,
)

# TS 35.208 test set 1.
K = bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc")
OPC = opc_from_op(K, bytes.fromhex("cdc202d5123e20f62b6d676ac72cb318"))
RAND = bytes.fromhex("23553cbe9637a89d218ae64dae47bf35")
AMF_5G = bytes.fromhex("8000")


def make_autn(sqn: int, amf: bytes = AMF_5G, k: bytes = K) -> bytes:
    sqn_octets = sqn.to_bytes(6, "big")
    output = milenage(k, OPC, RAND, sqn_octets, amf)
    return build_autn(sqn_octets, output.ak, amf, output.mac_a)


def test_usim_accepts_fresh_autn():
    usim = Usim(k=K, opc=OPC)
    response = usim.authenticate(RAND, make_autn(sqn=64))
    expected = milenage(K, OPC, RAND, (64).to_bytes(6, "big"), AMF_5G)

    assert response.res == expected.res
    assert response.ck == expected.ck
    assert response.ik == expected.ik
    assert usim.sqn_ms == 64


def test_usim_rejects_autn_of_other_k():
    other_k = bytes([K[0] ^ 1]) + K[1:]
    usim = Usim(k=other_k, opc=OPC)

    with pytest.raises(MacFailure):
        usim.authenticate(RAND, make_autn(sqn=64))


def test_usim_rejects_amf_separation_bit_zero():
    usim = Usim(k=K, opc=OPC)

    with pytest.raises(NonFiveGAuthenticationUnacceptable):
        usim.authenticate(RAND, make_autn(sqn=64, amf=bytes.fromhex("0000")))


def test_usim_replayed_sqn_gives_verifiable_auts():
    usim = Usim(k=K, opc=OPC)
    usim.authenticate(RAND, make_autn(sqn=64))

    with pytest.raises(SynchFailure) as raised:
        usim.authenticate(RAND, make_autn(sqn=64))

    auts = raised.value.auts
    sqn_ms = bytes(a ^ b for a, b in zip(auts[:6], f5_star(K, OPC, RAND)))
    _, mac_s = f1(K, OPC, RAND, sqn_ms, bytes(2))
    assert int.from_bytes(sqn_ms, "big") == 64
    assert auts[6:] == mac_s


def test_usim_repr_hides_keys():
    usim = Usim(k=K, opc=OPC)

    assert K.hex() not in repr(usim)
    assert repr(K) not in repr(usim)


def test_usim_accepts_older_seq_in_other_ind():
    usim = Usim(k=K, opc=OPC)
    usim.authenticate(RAND, make_autn(sqn=(10 << 5) | 1))
    usim.authenticate(RAND, make_autn(sqn=(9 << 5) | 2))

    assert usim.sqn_ms == (10 << 5) | 1


def test_usim_rejects_replay_in_same_ind():
    usim = Usim(k=K, opc=OPC)
    usim.authenticate(RAND, make_autn(sqn=(10 << 5) | 1))

    with pytest.raises(SynchFailure):
        usim.authenticate(RAND, make_autn(sqn=(9 << 5) | 1))


def test_usim_rejects_seq_older_than_age_limit():
    usim = Usim(k=K, opc=OPC, age_limit=5)
    usim.authenticate(RAND, make_autn(sqn=(10 << 5) | 1))

    with pytest.raises(SynchFailure):
        usim.authenticate(RAND, make_autn(sqn=(5 << 5) | 2))


def test_usim_rejects_jump_beyond_delta():
    usim = Usim(k=K, opc=OPC, delta=100)

    with pytest.raises(SynchFailure):
        usim.authenticate(RAND, make_autn(sqn=101 << 5))


def test_usim_accepts_48_bit_sqn():
    usim = Usim(k=K, opc=OPC, sqn_ms=(1 << 48) - (2 << 5))
    usim.authenticate(RAND, make_autn(sqn=(1 << 48) - (1 << 5)))

    assert usim.sqn_ms == (1 << 48) - (1 << 5)


def test_usim_bad_mac_with_stale_sqn_is_mac_failure():
    usim = Usim(k=K, opc=OPC, sqn_ms=1000 << 5)
    other_k = bytes([K[0] ^ 1]) + K[1:]

    with pytest.raises(MacFailure):
        usim.authenticate(RAND, make_autn(sqn=64, k=other_k))


def test_usim_rejects_sqn_ms_over_48_bits():
    with pytest.raises(ValueError, match="48-bit"):
        Usim(k=K, opc=OPC, sqn_ms=1 << 48)
