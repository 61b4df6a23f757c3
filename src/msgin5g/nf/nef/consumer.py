"""NEF consumers: Naanf_AKMA_ApplicationKey_Get at the AAnF and SUPI to GPSI translation at the UDM.

The AAnF call carries a bearer token when the AAnF verifies tokens. The NEF
signs that token itself with the AAnF's key (see msgin5g.nf.nef.config), and
renews it shortly before it expires.
"""

import logging

import httpx
from pydantic import ValidationError

from msgin5g.nf.udm.sdm import IdTranslationResult, id_translation_path
from msgin5g.sbi.client import SbiClient, SbiInvalidResponseError, SbiProblemError, SbiTransportError, parse_problem
from msgin5g.sbi.models.naanf_akma import RETRIEVE_APPLICATION_KEY_PATH, AkmaAfKeyData, AkmaAfKeyRequest
from msgin5g.nf.aanf.config import AANF_SCOPES
from msgin5g.sbi.oauth import SelfIssuedToken, TokenIssuer

logger = logging.getLogger(__name__)

# The NEF needs the SUPI from the AAnF, so its token requests supi-access (TS 29.535 scopes).


class AanfConsumer:
    """POST /naanf-akma/v1/retrieve-applicationkey over h2c, with a bearer token when configured."""

    def __init__(
        self,
        base_uri: str,
        *,
        timeout: float,
        issuer: TokenIssuer | None = None,
        audience: str = "aanf",
        client_id: str = "nef",
    ) -> None:
        self._sbi = SbiClient(base_uri, timeout=timeout)
        self._client = httpx.AsyncClient(base_url=self._sbi.base_uri, http1=False, http2=True, timeout=timeout)
        self._token = None if issuer is None else SelfIssuedToken(issuer, client_id, AANF_SCOPES, audience)

    async def aclose(self) -> None:
        await self._client.aclose()
        await self._sbi.aclose()

    async def retrieve_application_key(self, request: AkmaAfKeyRequest) -> AkmaAfKeyData | None:
        """Return the AAnF's AkmaAfKeyData, or None on 204; raise SbiClientError subclasses."""
        body = request.model_dump(mode="json", by_alias=True, exclude_none=True)
        try:
            response = await self._client.post(RETRIEVE_APPLICATION_KEY_PATH, json=body, headers=self._headers())
        except httpx.TimeoutException:
            raise SbiTransportError(f"request to {self._sbi.base_uri} timed out") from None
        except httpx.HTTPError as error:
            raise SbiTransportError(f"{self._sbi.base_uri} is unreachable ({type(error).__name__})") from None

        if response.status_code >= 300:
            raise SbiProblemError(response.status_code, parse_problem(response))
        if response.status_code == 204:
            return None
        try:
            return AkmaAfKeyData.model_validate_json(response.content)
        except ValidationError as error:
            raise SbiInvalidResponseError(
                f"{self._sbi.base_uri} responded with an AkmaAfKeyData that does not match the API "
                f"({error.error_count()} error(s))"
            ) from None

    def _headers(self) -> dict[str, str]:
        return {} if self._token is None else self._token.headers()


class UdmConsumer:
    """GET /nudm-sdm/v2/{supi}/id-translation-result (Nudm_SDM, operation GetSupiOrGpsi)."""

    def __init__(self, sbi: SbiClient) -> None:
        self._sbi = sbi

    async def gpsi_of(self, supi: str) -> str | None:
        """Return the GPSI provisioned with `supi`, or None when the UDM has none (404)."""
        try:
            response = await self._sbi.call(
                "GET", id_translation_path(supi), response_type=IdTranslationResult
            )
        except SbiProblemError as error:
            if error.status == 404:
                logger.debug("UDM has no GPSI for %s (%s)", supi, error.cause)
                return None
            raise
        if response.body is None:
            raise SbiInvalidResponseError(f"{self._sbi.base_uri} responded {response.status} without IdTranslationResult")
        return response.body.gpsi
