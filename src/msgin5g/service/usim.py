"""A software USIM: the AUTN check and the RES, CK, IK computation of 5G AKA.

TS 33.102 clause 6.3.3 and TS 33.501 clause 6.1.3.2: the USIM recovers SQN
from AUTN with AK, verifies MAC-A, checks that SQN is fresh, and only then
returns RES, CK and IK. The ME also checks that the AMF separation bit is 1.
"""

import hmac
from dataclasses import dataclass, field

from msgin5g.crypto.milenage import f1, f2345, f5_star

AUTN_OCTETS = 16
SQN_OCTETS = 6
AMF_SEPARATION_BIT = 0x8000

# TS 33.102 Annex C.3.2: SQN = SEQ || IND with a 5-bit IND.
IND_BITS = 5


class AuthenticationFailure(Exception):
    """The USIM or the ME rejected the AUTN; `cause` is the TS 24.501 failure cause."""

    cause = "AUTHENTICATION_FAILURE"


class MacFailure(AuthenticationFailure):
    """MAC-A did not verify: the network does not hold this USIM's K and OPc."""

    cause = "MAC_FAILURE"


class SynchFailure(AuthenticationFailure):
    """SQN is not fresh. `auts` is what the UE sends for resynchronisation."""

    cause = "SYNCH_FAILURE"

    def __init__(self, message: str, auts: bytes) -> None:
        super().__init__(message)
        self.auts = auts


class NonFiveGAuthenticationUnacceptable(AuthenticationFailure):
    """The AMF separation bit of AUTN is 0, so the vector was not made for 5G."""

    cause = "NON_5G_AUTHENTICATION_UNACCEPTABLE"


@dataclass(frozen=True)
class UsimResponse:
    """What the USIM returns after a successful AUTN check."""

    res: bytes = field(repr=False)
    ck: bytes = field(repr=False)
    ik: bytes = field(repr=False)
    sqn_xor_ak: bytes = field(repr=False)


@dataclass
class Usim:
    """USIM credentials and the highest SEQ accepted so far (SQN_MS)."""

    k: bytes = field(repr=False)
    opc: bytes = field(repr=False)
    sqn_ms: int = 0

    def authenticate(self, rand: bytes, autn: bytes) -> UsimResponse:
        """Check AUTN for RAND and return RES, CK and IK, or raise AuthenticationFailure."""
        if len(autn) != AUTN_OCTETS:
            raise MacFailure(f"AUTN must be {AUTN_OCTETS} octets, got {len(autn)}")

        sqn_xor_ak, amf, mac_a = autn[:6], autn[6:8], autn[8:]
        res, ck, ik, ak = f2345(self.k, self.opc, rand)
        sqn = bytes(a ^ b for a, b in zip(sqn_xor_ak, ak, strict=True))

        expected_mac_a, _ = f1(self.k, self.opc, rand, sqn, amf)
        if not hmac.compare_digest(expected_mac_a, mac_a):
            raise MacFailure("MAC-A in AUTN did not verify: K or OPc differs from the home network's")

        if not int.from_bytes(amf, "big") & AMF_SEPARATION_BIT:
            raise NonFiveGAuthenticationUnacceptable("the AMF separation bit of AUTN is 0")

        self._accept_sqn(rand, int.from_bytes(sqn, "big"))
        return UsimResponse(res=res, ck=ck, ik=ik, sqn_xor_ak=sqn_xor_ak)

    def _accept_sqn(self, rand: bytes, sqn: int) -> None:
        # NOTE: a simplified freshness check, SEQ > SEQ_MS, without the IND
        # array and the age limit L of TS 33.102 Annex C.2.
        seq, seq_ms = sqn >> IND_BITS, self.sqn_ms >> IND_BITS
        if seq <= seq_ms:
            raise SynchFailure(
                f"SQN is not fresh (SEQ {seq} <= SEQ_MS {seq_ms})", self._auts(rand)
            )
        self.sqn_ms = sqn

    def _auts(self, rand: bytes) -> bytes:
        """AUTS = (SQN_MS xor AK*) || MAC-S, with AMF = 0x0000 (TS 33.102 6.3.3)."""
        sqn_ms = self.sqn_ms.to_bytes(SQN_OCTETS, "big")
        ak_star = f5_star(self.k, self.opc, rand)
        _, mac_s = f1(self.k, self.opc, rand, sqn_ms, bytes(2))
        concealed = bytes(a ^ b for a, b in zip(sqn_ms, ak_star, strict=True))
        return concealed + mac_s
