"""AUSF decisions for 5G AKA (TS 33.501 clause 6.1.3.2) and AKMA (TS 33.535 clause 6.1).

1. AuthenticationInfo: get a 5G HE AV from the UDM, keep XRES* and K_AUSF in
   a pending context, and send RAND, AUTN and HXRES* to the SEAF.
2. ConfirmationData: compare RES* with XRES* in constant time. On success,
   derive K_SEAF and return it with the SUPI. With the AKMA indication,
   derive K_AKMA and the A-KID from K_AUSF and register them at the AAnF.

If the AAnF registration fails, the authentication still succeeds: AKMA is a
service on top of primary authentication, and TS 33.535 makes no AUSF
outcome depend on the AAnF. The AUSF logs a warning, and AFs get no K_AF for
that UE (204 from the AAnF) until its next primary authentication.
"""

import hmac
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from msgin5g.crypto.aka import hxres_star, k_seaf
from msgin5g.crypto.akma import a_tid, format_a_kid, k_akma
from msgin5g.nf.ausf.config import HomeNetwork
from msgin5g.nf.ausf.consumer import AanfConsumer, UdmConsumer
from msgin5g.nf.ausf.store import AuthContext, AuthContextStore
from msgin5g.sbi.client import SbiClientError, SbiProblemError, SbiTransportError
from msgin5g.sbi.models.common import SUCI_PREFIX
from msgin5g.sbi.models.naanf_akma import AkmaKeyInfo
from msgin5g.sbi.models.nausf_auth import (
    AKA_CONFIRMATION_LINK,
    UE_AUTHENTICATIONS_PATH,
    AuthenticationInfo,
    Av5gAka,
    ConfirmationData,
    ConfirmationDataResponse,
    Link,
    UEAuthenticationCtx,
    confirmation_path,
)
from msgin5g.sbi.models.nudm_ueau import AuthenticationInfoRequest, AuthenticationInfoResult
from msgin5g.sbi.problem import Cause, SbiError

logger = logging.getLogger(__name__)

# UDM error statuses that the AUSF passes on with the same status and cause.
FORWARDED_UDM_STATUSES = frozenset({403, 404, 501})


@dataclass(frozen=True)
class CreatedContext:
    """Body and Location URI of the 201 response to AuthenticationInfo."""

    body: UEAuthenticationCtx
    location: str


class AusfProcessor:
    def __init__(
        self,
        store: AuthContextStore,
        udm: UdmConsumer,
        aanf: AanfConsumer | None,
        *,
        home_network: HomeNetwork,
        nf_instance_id: str,
        context_lifetime: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._udm = udm
        self._aanf = aanf
        self._home_network = home_network
        self._nf_instance_id = nf_instance_id
        self._context_lifetime = context_lifetime
        self._clock = clock

    async def create_context(self, info: AuthenticationInfo, api_root: str) -> CreatedContext:
        """Nausf_UEAuthentication_Authenticate, first step: issue the 5G AKA challenge.

        NOTE: TS 33.501 clause 6.1.2 has the AUSF check that the requesting
        serving network may use the serving network name it sent. This AUSF
        has no list of serving networks, so it accepts every well-formed name.
        """
        result = await self._get_vector(info)
        vector = result.authentication_vector
        now = self._clock()

        context = AuthContext(
            auth_ctx_id=uuid.uuid4().hex,
            supi=result.supi,
            serving_network_name=info.serving_network_name,
            rand=vector.rand,
            xres_star=vector.xres_star,
            k_ausf=vector.kausf,
            akma_ind=result.akma_ind,
            routing_id=result.routing_id,
            expires_at=now + self._context_lifetime,
        )
        await self._store.add(context, now)
        logger.debug("5G AKA context %s opened for %s", context.auth_ctx_id, context.supi)

        # TS 33.501 Annex A.5: the SEAF gets HXRES*, never XRES*.
        challenge = Av5gAka(
            rand=vector.rand, hxres_star=hxres_star(vector.rand, vector.xres_star), autn=vector.autn
        )
        confirmation_link = Link(href=api_root + confirmation_path(context.auth_ctx_id))
        body = UEAuthenticationCtx(
            auth_data_5g=challenge,
            links={AKA_CONFIRMATION_LINK: confirmation_link},
            serving_network_name=info.serving_network_name,
        )
        return CreatedContext(body, f"{api_root}{UE_AUTHENTICATIONS_PATH}/{context.auth_ctx_id}")

    async def confirm(self, auth_ctx_id: str, data: ConfirmationData) -> ConfirmationDataResponse:
        """Check RES* against XRES*, the second step of 5G AKA (TS 33.501 clause 6.1.3.2)."""
        context = await self._store.take(auth_ctx_id, self._clock())
        if context is None:
            raise SbiError(
                404,
                Cause.CONTEXT_NOT_FOUND,
                "no pending 5G AKA context with this authCtxId: it is unknown, "
                "already confirmed or expired; start a new authentication",
            )

        if data.res_star is None or not hmac.compare_digest(data.res_star, context.xres_star):
            logger.info("5G AKA context %s failed: RES* does not match XRES*", auth_ctx_id)
            return ConfirmationDataResponse(auth_result="AUTHENTICATION_FAILURE")

        if context.akma_ind:
            await self._register_akma_keys(context)
        logger.info("5G AKA context %s succeeded", auth_ctx_id)
        return ConfirmationDataResponse(
            auth_result="AUTHENTICATION_SUCCESS",
            supi=context.supi,
            kseaf=k_seaf(context.k_ausf, context.serving_network_name),
        )

    async def delete_context(self, auth_ctx_id: str) -> None:
        """Drop a pending context that the serving network abandons."""
        if not await self._store.discard(auth_ctx_id):
            raise SbiError(
                404, Cause.CONTEXT_NOT_FOUND, "no pending 5G AKA context with this authCtxId"
            )

    async def deregister(self, supi: str) -> None:
        """Nausf_UEAuthentication_Deregister: purge the UE's contexts and its AKMA context.

        The AUSF keeps K_AUSF only in the pending contexts, so purging them
        drops every K_AUSF of the UE. The AAnF then removes the UE's AKMA
        context (Naanf_AKMA_Context_Remove, POST /remove-context). A 404
        from it means there was none. Deregistering a UE without contexts succeeds,
        so the request can be repeated.
        """
        purged = await self._store.purge_supi(supi)
        logger.debug("deregistered %s: %d pending 5G AKA context(s) purged", supi, purged)
        if self._aanf is None:
            return
        try:
            await self._aanf.remove_context(supi)
        except SbiProblemError as error:
            if error.status != 404:
                raise SbiError(
                    502,
                    Cause.UPSTREAM_SERVER_ERROR,
                    f"the AAnF did not remove the AKMA context ({error.status} {error.cause}); "
                    "repeat the deregistration",
                ) from None
        except SbiClientError as error:
            raise SbiError(
                504,
                Cause.UPSTREAM_SERVER_ERROR,
                f"the request to the AAnF failed ({error}); repeat the deregistration",
            ) from None

    async def _get_vector(self, info: AuthenticationInfo) -> AuthenticationInfoResult:
        request = AuthenticationInfoRequest(
            serving_network_name=info.serving_network_name,
            resynchronization_info=info.resynchronization_info,
            ausf_instance_id=self._nf_instance_id,
        )
        try:
            result = await self._udm.generate_auth_data(info.supi_or_suci, request)
        except SbiClientError as error:
            raise udm_failure(error) from None

        if not info.supi_or_suci.startswith(SUCI_PREFIX) and result.supi != info.supi_or_suci:
            raise SbiError(
                500, Cause.AV_GENERATION_PROBLEM, "the UDM returned a vector for another SUPI"
            )
        return result

    async def _register_akma_keys(self, context: AuthContext) -> None:
        """Derive K_AKMA and the A-KID and register them (TS 33.535 clause 6.1 steps 3-5)."""
        if self._aanf is None or context.routing_id is None:
            reason = "no AAnF is configured" if self._aanf is None else "the UDM sent no routingId"
            logger.warning(
                "AKMA keys of 5G AKA context %s not registered: %s", context.auth_ctx_id, reason
            )
            return

        key_info = AkmaKeyInfo(
            supi=context.supi,
            a_kid=derive_a_kid(context, self._home_network),
            k_akma=k_akma(context.k_ausf, context.supi),
        )
        try:
            await self._aanf.register_anchor_key(key_info)
        except SbiClientError as error:
            logger.warning(
                "AKMA keys of 5G AKA context %s not registered at the AAnF (%s); the "
                "authentication still succeeds, but AFs get no K_AF for this UE until its "
                "next primary authentication",
                context.auth_ctx_id,
                error,
            )


def derive_a_kid(context: AuthContext, home_network: HomeNetwork) -> str:
    """A-TID from K_AUSF (TS 33.535 Annex A.3), then the A-KID with the UDM's routing indicator."""
    a_tid_value = a_tid(context.k_ausf, context.supi)
    return format_a_kid(context.routing_id, a_tid_value, home_network.mcc, home_network.mnc)


def udm_failure(error: SbiClientError) -> SbiError:
    """Map a failed Nudm_UEAuthentication_Get to the AUSF's own error response."""
    if isinstance(error, SbiProblemError) and error.status in FORWARDED_UDM_STATUSES:
        detail = error.problem.detail or "the UDM rejected the request"
        return SbiError(error.status, error.cause, detail)
    if isinstance(error, SbiTransportError):
        return SbiError(504, Cause.UPSTREAM_SERVER_ERROR, f"the request to the UDM failed: {error}")
    return SbiError(
        500, Cause.AV_GENERATION_PROBLEM, f"the UDM could not provide a vector: {error}"
    )
