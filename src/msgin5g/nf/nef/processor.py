"""NEF decisions for 3gpp-akma: authorize the AF, get K_AF from the AAnF, expose a GPSI only.

TS 33.535 clause 4.2.3 and 6.3: the NEF authorizes the external AF and
forwards its request to the AAnF. The AAnF gives the NEF the SUPI, and the
NEF returns K_AF, its expiry and the GPSI to the AF, never the SUPI. This NEF
translates the SUPI to the GPSI with the UDM (Nudm_SDM id translation).
"""

import logging

from msgin5g.crypto.akma import af_id_from_wire
from msgin5g.nf.nef.config import GPSI_ACCESS_SCOPE, AfClient
from msgin5g.nf.nef.consumer import AanfConsumer, UdmConsumer
from msgin5g.sbi.client import SbiClientError, SbiProblemError, SbiTransportError
from msgin5g.sbi.models.naanf_akma import AkmaAfKeyData, AkmaAfKeyRequest
from msgin5g.sbi.oauth import TokenClaims
from msgin5g.sbi.problem import Cause, SbiError

logger = logging.getLogger(__name__)

# NOTE: TS 29.522 names no cause for these cases in the copies read for this
# project. An AF that gets GPSI_UNAVAILABLE should ask the operator to
# provision a GPSI for the UE; it cannot authorize the UE without one.
AF_ID_NOT_ALLOWED = "AF_ID_NOT_ALLOWED"
GPSI_UNAVAILABLE = "GPSI_UNAVAILABLE"


class NefProcessor:
    def __init__(self, clients: list[AfClient], aanf: AanfConsumer, udm: UdmConsumer) -> None:
        self._clients = {client.client_id: client for client in clients}
        self._aanf = aanf
        self._udm = udm

    async def retrieve_akma_app_key(
        self, claims: TokenClaims, request: AkmaAfKeyRequest
    ) -> AkmaAfKeyData | None:
        """RetrieveAKMAAppKey: K_AF, expiry and GPSI for the AF, or None (204) for an unknown A-KID."""
        client = self._authorize_af_id(claims.client_id, request.af_id)
        key_data = await self._forward(request)
        if key_data is None:
            logger.info("AAnF has no AKMA context for the A-KID requested by client %s", client.client_id)
            return None

        gpsi = None
        if not request.anon_ind and claims.has_scope(GPSI_ACCESS_SCOPE):
            gpsi = await self._gpsi(key_data)
        return AkmaAfKeyData(kaf=key_data.kaf, expiry=key_data.expiry, gpsi=gpsi)

    def _authorize_af_id(self, client_id: str, af_id_wire: str) -> AfClient:
        client = self._clients.get(client_id)
        if client is None:
            raise SbiError(403, Cause.AF_NOT_AUTHORIZED, f"client {client_id} is no longer an authorized AF")

        fqdn, _ = af_id_from_wire(af_id_wire)
        # Compared as spelled, not case-insensitively: K_AF is derived from the
        # AF_ID octets, so another spelling would give the AF another K_AF.
        if fqdn != client.fqdn:
            raise SbiError(
                403,
                AF_ID_NOT_ALLOWED,
                f"afId FQDN {fqdn} is not the FQDN configured for client {client_id}; "
                "send the AF's own FQDN, spelled exactly as configured",
            )
        return client

    async def _forward(self, request: AkmaAfKeyRequest) -> AkmaAfKeyData | None:
        try:
            return await self._aanf.retrieve_application_key(request)
        except SbiProblemError as error:
            if error.status == 403:
                raise SbiError(403, error.cause or Cause.AF_NOT_AUTHORIZED, "the AAnF rejected the AF") from None
            logger.warning("AAnF failed the K_AF request: %s", error)
            raise SbiError(500, Cause.SYSTEM_FAILURE, "the AAnF failed the K_AF request") from None
        except SbiTransportError as error:
            logger.warning("AAnF unreachable: %s", error)
            raise SbiError(503, Cause.UPSTREAM_SERVER_ERROR, "the AAnF is unreachable; retry later") from None
        except SbiClientError as error:
            logger.warning("AAnF response invalid: %s", error)
            raise SbiError(500, Cause.SYSTEM_FAILURE, "the AAnF sent an invalid response") from None

    async def _gpsi(self, key_data: AkmaAfKeyData) -> str:
        if key_data.gpsi is not None:
            return key_data.gpsi
        if key_data.supi is None:
            raise gpsi_unavailable("the AAnF returned no SUPI to translate")
        try:
            gpsi = await self._udm.gpsi_of(key_data.supi)
        except SbiTransportError as error:
            logger.warning("UDM unreachable: %s", error)
            raise SbiError(503, Cause.UPSTREAM_SERVER_ERROR, "the UDM is unreachable; retry later") from None
        except SbiClientError as error:
            logger.warning("UDM failed the id translation: %s", error)
            raise SbiError(500, Cause.SYSTEM_FAILURE, "the UDM failed the id translation") from None
        if gpsi is None:
            raise gpsi_unavailable("the UE has no GPSI")
        return gpsi


def gpsi_unavailable(reason: str) -> SbiError:
    return SbiError(
        403,
        GPSI_UNAVAILABLE,
        f"K_AF is withheld because {reason}; an external AF gets a GPSI, never the SUPI, "
        "so the operator must provision a GPSI for this UE",
    )
