"""5G AKA key derivations of TS 33.501 Annex A.

All of them use the KDF of TS 33.220 Annex B.2 (see msgin5g.crypto.kdf).
"""

import hashlib
import re

from msgin5g.crypto._checks import describe, require_octets, require_text
from msgin5g.crypto.errors import CryptoInputError
from msgin5g.crypto.kdf import encode_string, kdf
from msgin5g.crypto.supi import supi_kdf_value

CK_OCTETS = 16
IK_OCTETS = 16
RAND_OCTETS = 16
SQN_OCTETS = 6
RES_STAR_OCTETS = 16
KEY_OCTETS = 32  # K_AUSF, K_SEAF, K_AMF

# TS 33.501 A.4: L2 = length of RES, 0x00 0x04 to 0x00 0x10.
RES_MIN_OCTETS = 4
RES_MAX_OCTETS = 16

# ABBA values are at least 2 octets, and 0x0000 is the one defined so far (TS 33.501 A.7).
ABBA_MIN_OCTETS = 2

FC_K_AUSF = 0x6A
FC_RES_STAR = 0x6B
FC_K_SEAF = 0x6C
FC_K_AMF = 0x6D

MCC_PATTERN = re.compile(r"[0-9]{3}")
MNC_PATTERN = re.compile(r"[0-9]{2,3}")


def check_mcc_mnc(mcc: str, mnc: str) -> tuple[str, str]:
    """Return (MCC, MNC padded to 3 digits) after checking their format (TS 23.003 2.2)."""
    if not isinstance(mcc, str) or MCC_PATTERN.fullmatch(mcc) is None:
        raise CryptoInputError(f"invalid mcc {mcc!r}: expected 3 digits, for example '001'")
    if not isinstance(mnc, str) or MNC_PATTERN.fullmatch(mnc) is None:
        raise CryptoInputError(f"invalid mnc {mnc!r}: expected 2 or 3 digits, for example '01'")
    return mcc, mnc.zfill(3)


def serving_network_name(mcc: str, mnc: str) -> str:
    """Build the serving network name `5G:mnc<MNC>.mcc<MCC>.3gppnetwork.org`.

    TS 33.501 6.1.1.4 with the SN Id of TS 24.501 9.12.1: a 2-digit MNC is
    padded to 3 digits with a leading zero.
    """
    mcc, mnc3 = check_mcc_mnc(mcc, mnc)
    return f"5G:mnc{mnc3}.mcc{mcc}.3gppnetwork.org"


def _check_snn(snn: str) -> bytes:
    require_text("snn", snn)
    if not snn.startswith("5G:"):
        raise CryptoInputError(
            f"invalid snn {describe(snn)}: a serving network name starts with '5G:' "
            "(TS 33.501 6.1.1.4); build it with serving_network_name()"
        )
    return encode_string(snn)


def _ck_ik(ck: bytes, ik: bytes) -> bytes:
    return require_octets("ck", ck, length=CK_OCTETS) + require_octets("ik", ik, length=IK_OCTETS)


def k_ausf(ck: bytes, ik: bytes, snn: str, sqn_xor_ak: bytes) -> bytes:
    """Derive K_AUSF for 5G AKA.

    TS 33.501 Annex A.2: FC = 0x6A, P0 = serving network name,
    P1 = SQN xor AK (6 octets), key = CK || IK.
    """
    key = _ck_ik(ck, ik)
    p0 = _check_snn(snn)
    p1 = require_octets("sqn_xor_ak", sqn_xor_ak, length=SQN_OCTETS)
    return kdf(key, FC_K_AUSF, p0, p1)


def res_star(ck: bytes, ik: bytes, snn: str, rand: bytes, res: bytes) -> bytes:
    """Derive RES* (UE) or XRES* (home network), 16 octets.

    TS 33.501 Annex A.4: FC = 0x6B, P0 = serving network name, P1 = RAND,
    P2 = RES (4 to 16 octets), key = CK || IK. The result is the 128 least
    significant bits (last 16 octets) of the KDF output.
    """
    key = _ck_ik(ck, ik)
    p0 = _check_snn(snn)
    p1 = require_octets("rand", rand, length=RAND_OCTETS)
    p2 = require_octets("res", res, min_length=RES_MIN_OCTETS, max_length=RES_MAX_OCTETS)
    return kdf(key, FC_RES_STAR, p0, p1, p2)[-RES_STAR_OCTETS:]


def hxres_star(rand: bytes, res_star: bytes) -> bytes:
    """Compute HRES* or HXRES*, 16 octets.

    TS 33.501 Annex A.5: the 128 least significant bits (last 16 octets) of
    SHA-256(RAND || (X)RES*).
    """
    rand = require_octets("rand", rand, length=RAND_OCTETS)
    res_star = require_octets("res_star", res_star, length=RES_STAR_OCTETS)
    return hashlib.sha256(rand + res_star).digest()[-16:]


def k_seaf(k_ausf: bytes, snn: str) -> bytes:
    """Derive K_SEAF.

    TS 33.501 Annex A.6: FC = 0x6C, P0 = serving network name, key = K_AUSF.
    """
    key = require_octets("k_ausf", k_ausf, length=KEY_OCTETS)
    return kdf(key, FC_K_SEAF, _check_snn(snn))


def k_amf(k_seaf: bytes, supi: str, abba: bytes) -> bytes:
    """Derive K_AMF.

    TS 33.501 Annex A.7.0: FC = 0x6D, P0 = SUPI value without its SBI prefix
    (IMSI digits or NAI), P1 = ABBA, key = K_SEAF.
    """
    key = require_octets("k_seaf", k_seaf, length=KEY_OCTETS)
    p0 = encode_string(supi_kdf_value(supi))
    p1 = require_octets("abba", abba, min_length=ABBA_MIN_OCTETS)
    return kdf(key, FC_K_AMF, p0, p1)
