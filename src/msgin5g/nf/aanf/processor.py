"""AAnF decisions: keep the latest AKMA context per UE and derive K_AF for AFs.

TS 33.535 clause 6.1 (registration by the AUSF), clause 6.2 and Annex A.4
(K_AF for an AF), clause 7.1 (service operations). For an A-KID with a live
context, an AF gets K_AF, its expiry and the UE ID. For an unknown, replaced
or expired A-KID it gets 204 No Content (TS 29.535 clause 5.1.4.3).
"""

import logging
import time
from collections.abc import Callable, Collection
from datetime import UTC, datetime

from msgin5g.crypto.akma import af_id, af_id_from_wire, k_af
from msgin5g.nf.aanf.store import AkmaContext, AkmaContextStore
from msgin5g.sbi.models.naanf_akma import AkmaAfKeyData, AkmaAfKeyRequest, AkmaKeyInfo, CtxRemove
from msgin5g.sbi.problem import Cause, SbiError

logger = logging.getLogger(__name__)


class AanfProcessor:
    def __init__(
        self,
        store: AkmaContextStore,
        *,
        k_af_lifetime: float,
        context_lifetime: float,
        authorized_afs: Collection[str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._k_af_lifetime = k_af_lifetime
        self._context_lifetime = context_lifetime
        # FQDNs compare case-insensitively (RFC 4343).
        self._authorized_afs = (
            None if authorized_afs is None else frozenset(fqdn.lower() for fqdn in authorized_afs)
        )
        self._clock = clock

    async def register_anchor_key(self, key_info: AkmaKeyInfo) -> AkmaKeyInfo:
        """Naanf_AKMA_AnchorKey_Register: store the context, replacing the UE's old one."""
        now = self._clock()
        context = AkmaContext(
            a_kid=key_info.a_kid,
            supi=key_info.supi,
            gpsi=key_info.gpsi,
            k_akma=key_info.k_akma,
            expires_at=now + self._context_lifetime,
        )
        await self._store.register(context, now)
        logger.debug("AKMA context of %s registered with A-KID %s", context.ue_id, context.a_kid)
        return key_info

    async def retrieve_application_key(
        self, request: AkmaAfKeyRequest, *, supi_access: bool = True
    ) -> AkmaAfKeyData | None:
        """Naanf_AKMA_ApplicationKey_Get: derive K_AF, or return None (204) for an unknown A-KID.

        Without `supi_access` (the caller's token lacks the supi-access scope),
        the response leaves the SUPI out.
        """
        fqdn, ua_protocol_id = af_id_from_wire(request.af_id)
        self._authorize(fqdn)

        now = self._clock()
        context = await self._store.find(request.a_kid, now)
        if context is None:
            logger.info("no AKMA context for the A-KID requested by AF %s", fqdn)
            logger.debug("unknown, replaced or expired A-KID %s", request.a_kid)
            return None

        # TS 33.535 Annex A.4: K_AF = KDF(K_AKMA, 0x82, AF_ID).
        key = k_af(context.k_akma, af_id(fqdn, ua_protocol_id))
        expiry = min(now + self._k_af_lifetime, context.expires_at)
        logger.debug("K_AF for AF %s and %s derived", fqdn, context.ue_id)
        return AkmaAfKeyData(
            kaf=key,
            expiry=datetime.fromtimestamp(int(expiry), UTC),
            supi=None if request.anon_ind or not supi_access else context.supi,
            gpsi=None if request.anon_ind else context.gpsi,
        )

    async def remove_context(self, request: CtxRemove) -> None:
        """Naanf_AKMA_ContextRemove: delete the UE's AKMA context."""
        if not await self._store.remove(request.supi):
            raise SbiError(404, Cause.CONTEXT_NOT_FOUND, "no AKMA context is held for this SUPI")
        logger.debug("AKMA context of %s removed", request.supi)

    def _authorize(self, fqdn: str) -> None:
        if self._authorized_afs is not None and fqdn.lower() not in self._authorized_afs:
            raise SbiError(
                403,
                Cause.AF_NOT_AUTHORIZED,
                f"AF {fqdn} is not authorized for AKMA at this AAnF; "
                "the operator adds it to authorized_afs",
            )
