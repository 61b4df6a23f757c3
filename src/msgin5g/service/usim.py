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
IND_SLOTS = 1 << IND_BITS
SQN_MAX = (1 << 48) - 1
# Delta of TS 33.102 Annex C.2.1: the largest forward jump of SEQ over the
# highest accepted SEQ that the USIM accepts.
# NOTE: 2**28 is the delta of the Annex C example profile as recalled, not
# checked against the specification text.
DEFAULT_DELTA = 1 << 28


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
    """RES, CK, IK and SQN xor AK, returned by the USIM after a successful AUTN check."""

    res: bytes = field(repr=False)
    ck: bytes = field(repr=False)
    ik: bytes = field(repr=False)
    sqn_xor_ak: bytes = field(repr=False)


@dataclass
class Usim:
    """USIM credentials and the SQN freshness state of TS 33.102 Annex C.2.

    `sqn_ms` is the highest SQN accepted so far. `seq_ms` contains one SEQ per
    IND slot. When it is not given, every slot starts at the SEQ of `sqn_ms`.
    A SQN is fresh when its SEQ is greater than the SEQ of its IND slot, at
    most `delta` above the highest SEQ (Annex C.2.1), and, when `age_limit`
    (L of Annex C.2.2) is set, less than L below the highest SEQ.
    """

    k: bytes = field(repr=False)
    opc: bytes = field(repr=False)
    sqn_ms: int = 0
    delta: int = DEFAULT_DELTA
    age_limit: int | None = None
    seq_ms: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 0 <= self.sqn_ms <= SQN_MAX:
            raise ValueError(f"sqn_ms must be a 48-bit SQN (0 to {SQN_MAX}), got {self.sqn_ms}")
        if self.delta < 1:
            raise ValueError(f"delta must be at least 1, got {self.delta}")
        if self.age_limit is not None and self.age_limit < 1:
            raise ValueError(f"age_limit must be at least 1 or None, got {self.age_limit}")
        if not self.seq_ms:
            self.seq_ms = [self.sqn_ms >> IND_BITS] * IND_SLOTS
        elif len(self.seq_ms) != IND_SLOTS:
            raise ValueError(f"seq_ms must have {IND_SLOTS} slots, got {len(self.seq_ms)}")

    def authenticate(self, rand: bytes, autn: bytes) -> UsimResponse:
        """Check AUTN for RAND and return RES, CK and IK, or raise AuthenticationFailure.

        MAC-A is checked first (TS 33.102 clause 6.3.3), so an AUTN with a bad
        MAC is a MAC failure whatever its SQN. The AMF separation bit follows,
        then the freshness of SQN.
        """
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
        """Annex C.2: check SEQ against its IND slot, delta and L, then record it."""
        seq, ind = sqn >> IND_BITS, sqn & (IND_SLOTS - 1)
        highest = self.sqn_ms >> IND_BITS
        if seq <= self.seq_ms[ind]:
            reason = f"SEQ {seq} is not above SEQ_MS {self.seq_ms[ind]} of IND {ind}"
        elif seq - highest > self.delta:
            reason = f"SEQ {seq} is more than delta {self.delta} above the highest SEQ {highest}"
        elif self.age_limit is not None and highest - seq >= self.age_limit:
            reason = f"SEQ {seq} is L = {self.age_limit} or more below the highest SEQ {highest}"
        else:
            self.seq_ms[ind] = seq
            if seq > highest:
                self.sqn_ms = sqn
            return
        raise SynchFailure(f"SQN is not fresh: {reason}", self._auts(rand))

    def _auts(self, rand: bytes) -> bytes:
        """AUTS = (SQN_MS xor AK*) || MAC-S, with AMF = 0x0000 (TS 33.102 6.3.3).

        SQN_MS is the highest SQN accepted so far.
        """
        sqn_ms = self.sqn_ms.to_bytes(SQN_OCTETS, "big")
        ak_star = f5_star(self.k, self.opc, rand)
        _, mac_s = f1(self.k, self.opc, rand, sqn_ms, bytes(2))
        concealed = bytes(a ^ b for a, b in zip(sqn_ms, ak_star, strict=True))
        return concealed + mac_s
