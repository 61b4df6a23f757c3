"""Milenage authentication functions f1, f1*, f2, f3, f4, f5 and f5* (TS 35.206).

The kernel E_K is AES-128 on single 16-octet blocks. All values are bytes:
K, OP, OPc and RAND are 16 octets, SQN 6 octets and AMF 2 octets.
"""

from dataclasses import dataclass, field

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from msgin5g.crypto._checks import require_octets
from msgin5g.crypto.errors import CryptoInputError

BLOCK_OCTETS = 16
SQN_OCTETS = 6
AMF_OCTETS = 2
AK_OCTETS = 6

# TS 35.206 clause 4.1: the default rotation amounts r1..r5 (in bits) and
# constants c1..c5, each a 128-bit value that is zero except for its last octet.
ROTATIONS = {1: 64, 2: 0, 3: 32, 4: 64, 5: 96}
CONSTANTS = {
    1: bytes(16),
    2: bytes(15) + b"\x01",
    3: bytes(15) + b"\x02",
    4: bytes(15) + b"\x04",
    5: bytes(15) + b"\x08",
}


class MilenageError(CryptoInputError):
    """An input of Milenage has the wrong type or length."""


@dataclass(frozen=True)
class MilenageOutput:
    """Outputs of f1, f1*, f2, f3, f4, f5 and f5* for one (K, OPc, RAND, SQN, AMF).

    Every field is left out of repr, because RES, CK, IK and AK are secrets.
    """

    mac_a: bytes = field(repr=False)  # f1, 8 octets
    mac_s: bytes = field(repr=False)  # f1*, 8 octets
    res: bytes = field(repr=False)  # f2, 8 octets
    ck: bytes = field(repr=False)  # f3, 16 octets
    ik: bytes = field(repr=False)  # f4, 16 octets
    ak: bytes = field(repr=False)  # f5, 6 octets
    ak_star: bytes = field(repr=False)  # f5*, 6 octets


def _check(name: str, value: object, length: int) -> bytes:
    return require_octets(name, value, length=length, error=MilenageError)


def _xor(left: bytes, right: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(left, right, strict=True))


def _rotate_left(block: bytes, bits: int) -> bytes:
    """Rotate a 128-bit block left by whole octets, the only amounts TS 35.206 uses."""
    shift = bits // 8
    return block[shift:] + block[:shift]


def _encrypt_block(k: bytes, block: bytes) -> bytes:
    """E_K: AES-128 on one block (ECB is correct here because it encrypts exactly one block)."""
    encryptor = Cipher(algorithms.AES(k), modes.ECB()).encryptor()
    return encryptor.update(block) + encryptor.finalize()


def _out(k: bytes, opc: bytes, temp: bytes, number: int) -> bytes:
    """OUT2..OUT5 of TS 35.206 clause 4.1: E_K(rot(TEMP xor OPc, r) xor c) xor OPc."""
    rotated = _rotate_left(_xor(temp, opc), ROTATIONS[number])
    return _xor(_encrypt_block(k, _xor(rotated, CONSTANTS[number])), opc)


def _temp(k: bytes, opc: bytes, rand: bytes) -> bytes:
    """TEMP = E_K(RAND xor OPc) (TS 35.206 clause 4.1)."""
    return _encrypt_block(k, _xor(rand, opc))


def opc_from_op(k: bytes, op: bytes) -> bytes:
    """Compute OPc = E_K(OP) xor OP (TS 35.206 clause 4.1)."""
    k = _check("k", k, BLOCK_OCTETS)
    op = _check("op", op, BLOCK_OCTETS)
    return _xor(_encrypt_block(k, op), op)


def f1(k: bytes, opc: bytes, rand: bytes, sqn: bytes, amf: bytes) -> tuple[bytes, bytes]:
    """Compute (MAC-A, MAC-S) with f1 and f1* (TS 35.206 clause 4.1)."""
    k = _check("k", k, BLOCK_OCTETS)
    opc = _check("opc", opc, BLOCK_OCTETS)
    rand = _check("rand", rand, BLOCK_OCTETS)
    sqn = _check("sqn", sqn, SQN_OCTETS)
    amf = _check("amf", amf, AMF_OCTETS)

    in1 = sqn + amf + sqn + amf
    rotated = _rotate_left(_xor(in1, opc), ROTATIONS[1])
    block = _xor(_xor(_temp(k, opc, rand), rotated), CONSTANTS[1])
    out1 = _xor(_encrypt_block(k, block), opc)
    return out1[:8], out1[8:]


def f2345(k: bytes, opc: bytes, rand: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    """Compute (RES, CK, IK, AK) with f2, f3, f4 and f5 (TS 35.206 clause 4.1).

    These functions do not depend on SQN, so a USIM computes AK with them
    before it recovers SQN from AUTN.
    """
    k = _check("k", k, BLOCK_OCTETS)
    opc = _check("opc", opc, BLOCK_OCTETS)
    rand = _check("rand", rand, BLOCK_OCTETS)

    temp = _temp(k, opc, rand)
    out2 = _out(k, opc, temp, 2)
    ck = _out(k, opc, temp, 3)
    ik = _out(k, opc, temp, 4)
    return out2[8:], ck, ik, out2[:AK_OCTETS]


def f5_star(k: bytes, opc: bytes, rand: bytes) -> bytes:
    """Compute AK* with f5*, used to conceal SQN_MS in AUTS (TS 35.206 clause 4.1)."""
    k = _check("k", k, BLOCK_OCTETS)
    opc = _check("opc", opc, BLOCK_OCTETS)
    rand = _check("rand", rand, BLOCK_OCTETS)

    return _out(k, opc, _temp(k, opc, rand), 5)[:AK_OCTETS]


def milenage(k: bytes, opc: bytes, rand: bytes, sqn: bytes, amf: bytes) -> MilenageOutput:
    """Run all seven Milenage functions for one authentication vector."""
    mac_a, mac_s = f1(k, opc, rand, sqn, amf)
    res, ck, ik, ak = f2345(k, opc, rand)
    ak_star = f5_star(k, opc, rand)
    return MilenageOutput(mac_a=mac_a, mac_s=mac_s, res=res, ck=ck, ik=ik, ak=ak, ak_star=ak_star)


def build_autn(sqn: bytes, ak: bytes, amf: bytes, mac_a: bytes) -> bytes:
    """Build AUTN = (SQN xor AK) || AMF || MAC-A, 16 octets (TS 33.102 clause 6.3.2)."""
    sqn = _check("sqn", sqn, SQN_OCTETS)
    ak = _check("ak", ak, AK_OCTETS)
    amf = _check("amf", amf, AMF_OCTETS)
    mac_a = _check("mac_a", mac_a, 8)
    return _xor(sqn, ak) + amf + mac_a
