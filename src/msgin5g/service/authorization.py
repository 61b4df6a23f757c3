"""Authorization of a registration against the SEAL CM server (TS 33.501 Annex Y.2).

The MSGin5G Server accepts a REG only if the requested UE service ID is associated
with the UE ID (SUPI or GPSI) that the AAnF returned together with K_AF. The
association is held by the SEAL Configuration Management server; the server
fetches it with the TS 29.549 user profile retrieval
(GET /ss-upr/v1/val-services?val-tgt-ue={"valUeId": "<UE ID>"}). Each ProfileDoc
in the response names one associated UE service ID as valTgtUe.valUserId, because
in SEAL the UE service ID plays the role of the VAL user ID.
"""

import json
import logging

from msgin5g.sbi.client import SbiClient, SbiClientError, SbiProblemError
from msgin5g.sbi.models.ss_upr import VAL_SERVICES_PATH, VAL_TARGET_UE_QUERY, ProfileDoc

logger = logging.getLogger(__name__)


class CmUnavailable(Exception):
    """The CM server could not be asked, so the association is unknown."""


class CmClient:
    """Consumer of SS_UserProfileRetrieval (TS 29.549) at the SEAL CM server."""

    def __init__(self, sbi: SbiClient) -> None:
        self._sbi = sbi

    async def associated_ue_service_ids(self, ue_id: str) -> frozenset[str]:
        """Return the UE service IDs associated with `ue_id`; raise CmUnavailable on failure."""
        target = json.dumps({"valUeId": ue_id}, separators=(",", ":"))
        try:
            response = await self._sbi.call(
                "GET",
                VAL_SERVICES_PATH,
                params={VAL_TARGET_UE_QUERY: target},
                response_type=list[ProfileDoc],
            )
        except SbiProblemError as error:
            if error.status == 404 and error.cause is not None:
                # The CM server has no profile for this UE ID, so nothing is associated.
                return frozenset()
            raise CmUnavailable(f"CM server rejected the profile request: {error}") from error
        except SbiClientError as error:
            raise CmUnavailable(f"CM server request failed: {error}") from error

        profiles = response.body or []
        return frozenset(
            profile.val_tgt_ue.val_user_id
            for profile in profiles
            if profile.val_tgt_ue.val_user_id is not None
        )


class RegistrationAuthorizer:
    """Decide whether a UE may register a UE service ID."""

    def __init__(self, cm: CmClient) -> None:
        self._cm = cm

    async def is_associated(self, ue_id: str, ue_service_id: str) -> bool:
        """Return True if the CM server associates `ue_service_id` with `ue_id`.

        Raises CmUnavailable when the CM server cannot be asked.
        """
        associated = await self._cm.associated_ue_service_ids(ue_id)
        logger.debug(
            "UE ID %s has %d associated UE service IDs; requested %s",
            ue_id,
            len(associated),
            ue_service_id,
        )
        return ue_service_id in associated
