"""Calls from the AUSF to the UDM (Nudm_UEAuthentication) and the AAnF (Naanf_AKMA).

These classes only send requests and validate responses. They raise the
SbiClientError family unchanged, and the processor decides what each failure
means for the authentication.
"""

from urllib.parse import quote

from msgin5g.sbi.client import SbiClient
from msgin5g.sbi.models.naanf_akma import (
    REGISTER_ANCHOR_KEY_PATH,
    REMOVE_CONTEXT_PATH,
    AkmaKeyInfo,
    CtxRemove,
)
from msgin5g.sbi.models.nudm_ueau import (
    AuthenticationInfoRequest,
    AuthenticationInfoResult,
    generate_auth_data_path,
)


class UdmConsumer:
    def __init__(self, client: SbiClient) -> None:
        self._client = client

    async def generate_auth_data(
        self, supi_or_suci: str, request: AuthenticationInfoRequest
    ) -> AuthenticationInfoResult:
        """Nudm_UEAuthentication_Get (POST .../security-information/generate-auth-data)."""
        path = generate_auth_data_path(quote(supi_or_suci, safe="@"))
        response = await self._client.call(
            "POST", path, body=request, response_type=AuthenticationInfoResult
        )
        return response.body


class AanfConsumer:
    def __init__(self, client: SbiClient) -> None:
        self._client = client

    async def register_anchor_key(self, key_info: AkmaKeyInfo) -> None:
        """Naanf_AKMA_AnchorKey_Register (POST /register-anchorkey)."""
        await self._client.call(
            "POST", REGISTER_ANCHOR_KEY_PATH, body=key_info, response_type=AkmaKeyInfo
        )

    async def remove_context(self, supi: str) -> None:
        """Naanf_AKMA_Context_Remove (POST /remove-context)."""
        await self._client.call("POST", REMOVE_CONTEXT_PATH, body=CtxRemove(supi=supi))
