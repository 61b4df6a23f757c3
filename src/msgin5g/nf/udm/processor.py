"""UDM/ARPF decisions: 5G HE authentication vectors and SQN resynchronisation.

TS 33.501 clause 6.1.3.2: for each Nudm_UEAuthentication_Get request the
ARPF builds a fresh 5G HE AV (RAND, AUTN, XRES*, K_AUSF) with the
AMF separation bit set to 1, from a new SQN. For a subscriber with AKMA, the
UDM adds the AKMA indication and the routing indicator (TS 33.535 clause 6.1).
"""

import hmac
import logging
import secrets
from dataclasses import dataclass, field

from msgin5g.crypto.aka import k_ausf, res_star
from msgin5g.crypto.milenage import build_autn, f1, f5_star, milenage
from msgin5g.nf.udm.sdm import GPSI_NOT_FOUND, IdTranslationResult
from msgin5g.nf.udm.store import Subscriber, SubscriberStore
from msgin5g.sbi.models.common import SUCI_PREFIX
from msgin5g.sbi.models.nudm_ueau import (
    AuthenticationInfoRequest,
    AuthenticationInfoResult,
    Av5GHeAka,
    ResynchronizationInfo,
)
from msgin5g.sbi.problem import Cause, SbiError

logger = logging.getLogger(__name__)

RAND_OCTETS = 16
SQN_OCTETS = 6
# Bit 0 of AMF, its most significant bit, is the AMF separation bit. TS 33.501
# clause 6.1.3.2 sets it to 1 in 5G vectors, and the ME checks it.
AMF_SEPARATION_BIT = 0x80
# TS 33.102 clause 6.3.3: f1* for AUTS uses a dummy AMF of all zeros.
RESYNCHRONISATION_AMF = bytes(2)


@dataclass(frozen=True)
class HeVector:
    """One 5G HE authentication vector, as the ARPF builds it."""

    rand: bytes
    autn: bytes
    xres_star: bytes = field(repr=False)
    k_ausf: bytes = field(repr=False)


class UdmProcessor:
    def __init__(self, store: SubscriberStore) -> None:
        self._store = store

    async def generate_auth_data(
        self, supi_or_suci: str, request: AuthenticationInfoRequest
    ) -> AuthenticationInfoResult:
        """Nudm_UEAuthentication_Get: build a 5G HE AV for the subscriber."""
        if supi_or_suci.startswith(SUCI_PREFIX):
            raise SbiError(
                501,
                Cause.UNSUPPORTED_PROTECTION_SCHEME,
                "this UDM does not de-conceal SUCIs; send the SUPI (imsi-...) instead",
            )

        subscriber = await self._next_sqn(supi_or_suci, request.resynchronization_info)
        vector = build_vector(subscriber, request.serving_network_name)
        logger.debug("built a 5G HE AV for %s with SQN %d", subscriber.supi, subscriber.sqn)
        return authentication_info_result(subscriber, vector)

    async def get_supi_or_gpsi(self, supi: str) -> IdTranslationResult:
        """Nudm_SDM_Get for id translation: return the GPSI provisioned with the SUPI."""
        subscriber = await self._store.find(supi)
        if subscriber is None:
            raise SbiError(404, Cause.USER_NOT_FOUND, "no subscriber is provisioned with this SUPI")
        if subscriber.gpsi is None:
            raise SbiError(
                404,
                GPSI_NOT_FOUND,
                "the subscriber has no GPSI; provision one (msisdn-... or extid-...) to expose it",
            )
        logger.debug("translated %s to %s", supi, subscriber.gpsi)
        return IdTranslationResult(supi=subscriber.supi, gpsi=subscriber.gpsi)

    async def _next_sqn(
        self, supi: str, resynchronization: ResynchronizationInfo | None
    ) -> Subscriber:
        if resynchronization is None:
            subscriber = await self._store.advance_sqn(supi)
        else:
            subscriber = await self._resynchronize(supi, resynchronization)

        if subscriber is None:
            raise SbiError(404, Cause.USER_NOT_FOUND, "no subscriber is provisioned with this SUPI")
        return subscriber

    async def _resynchronize(
        self, supi: str, resynchronization: ResynchronizationInfo
    ) -> Subscriber | None:
        subscriber = await self._store.find(supi)
        if subscriber is None:
            return None

        sqn_ms = verify_auts(subscriber, resynchronization)
        if sqn_ms is None:
            raise SbiError(
                403,
                Cause.AUTHENTICATION_REJECTED,
                "MAC-S in AUTS does not verify: the UE does not hold this subscriber's K and OPc",
            )
        logger.info("resynchronising SQN after a synchronisation failure reported by the UE")
        return await self._store.resynchronize_sqn(supi, sqn_ms)


def with_separation_bit(amf: bytes) -> bytes:
    return bytes([amf[0] | AMF_SEPARATION_BIT]) + amf[1:]


def build_vector(subscriber: Subscriber, serving_network_name: str) -> HeVector:
    """Build RAND, AUTN, XRES* and K_AUSF (TS 33.501 clause 6.1.3.2, Annex A.2 and A.4)."""
    rand = secrets.token_bytes(RAND_OCTETS)
    sqn = subscriber.sqn.to_bytes(SQN_OCTETS, "big")
    amf = with_separation_bit(subscriber.amf)
    output = milenage(subscriber.k, subscriber.opc, rand, sqn, amf)

    autn = build_autn(sqn, output.ak, amf, output.mac_a)
    sqn_xor_ak = autn[:SQN_OCTETS]
    return HeVector(
        rand=rand,
        autn=autn,
        xres_star=res_star(output.ck, output.ik, serving_network_name, rand, output.res),
        k_ausf=k_ausf(output.ck, output.ik, serving_network_name, sqn_xor_ak),
    )


def verify_auts(subscriber: Subscriber, resynchronization: ResynchronizationInfo) -> int | None:
    """Return SQN_MS from AUTS when MAC-S verifies, else None (TS 33.102 clause 6.3.5).

    AUTS = (SQN_MS xor AK*) || MAC-S, with AK* = f5*(K, RAND) and
    MAC-S = f1*(K, SQN_MS, RAND, AMF = 0x0000).
    """
    rand, auts = resynchronization.rand, resynchronization.auts
    ak_star = f5_star(subscriber.k, subscriber.opc, rand)
    sqn_ms = bytes(a ^ b for a, b in zip(auts[:SQN_OCTETS], ak_star, strict=True))

    _, expected_mac_s = f1(subscriber.k, subscriber.opc, rand, sqn_ms, RESYNCHRONISATION_AMF)
    if not hmac.compare_digest(expected_mac_s, auts[SQN_OCTETS:]):
        return None
    return int.from_bytes(sqn_ms, "big")


def authentication_info_result(
    subscriber: Subscriber, vector: HeVector
) -> AuthenticationInfoResult:
    """Wrap the vector; add akmaInd and routingId for an AKMA subscriber (TS 33.535 clause 6.1)."""
    return AuthenticationInfoResult(
        authentication_vector=Av5GHeAka(
            rand=vector.rand, xres_star=vector.xres_star, autn=vector.autn, kausf=vector.k_ausf
        ),
        supi=subscriber.supi,
        akma_ind=subscriber.akma_allowed,
        routing_id=subscriber.routing_indicator if subscriber.akma_allowed else None,
    )
