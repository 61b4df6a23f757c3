"""CM server decisions: which profiles a RetrieveValUserProfile request returns.

A request names either a VAL UE ID (here the UE ID, SUPI or GPSI) or a VAL
user ID (here the UE service ID). The response contains one ProfileDoc per
association found, possibly none. When `val-service-id` is given, it must be
the MSGin5G service for anything to match.
"""

import logging

from msgin5g.nf.cm.store import Association, AssociationStore
from msgin5g.sbi.models.ss_upr import (
    MSGIN5G_VAL_SERVICE_ID,
    ProfileDoc,
    ProfileInformation,
    ValTargetUe,
)

logger = logging.getLogger(__name__)


class CmProcessor:
    def __init__(self, store: AssociationStore) -> None:
        self._store = store

    async def retrieve_val_user_profiles(
        self, target: ValTargetUe, val_service_id: str | None
    ) -> list[ProfileDoc]:
        if val_service_id is not None and val_service_id != MSGIN5G_VAL_SERVICE_ID:
            return []

        if target.val_ue_id is not None:
            associations = await self._store.find_by_ue_id(target.val_ue_id)
        else:
            associations = await self._store.find_by_ue_service_id(target.val_user_id)
        logger.debug("%d association(s) found for %s", len(associations), target)
        return [profile_doc(association) for association in associations]


def profile_doc(association: Association) -> ProfileDoc:
    return ProfileDoc.for_association(
        ProfileInformation(
            ue_service_id=association.ue_service_id,
            ue_id=association.ue_id,
            relation=association.relation,
        )
    )
