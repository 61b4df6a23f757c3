"""MSGin5G Configuration Function decisions: the associations of one UE ID."""

import logging
from collections.abc import Iterable

from msgin5g.nf.cf.models import UeAssociation, UeAssociations
from msgin5g.nf.cm.store import Association

logger = logging.getLogger(__name__)


class CfProcessor:
    """Look up associations in the pre-configured list, kept in memory."""

    def __init__(self, associations: Iterable[Association]) -> None:
        self._by_ue_id: dict[str, list[Association]] = {}
        for association in associations:
            self._by_ue_id.setdefault(association.ue_id, []).append(association)
        for entries in self._by_ue_id.values():
            entries.sort(key=lambda association: association.ue_service_id)

    def ue_associations(self, ue_id: str) -> UeAssociations:
        """Return the associations of `ue_id`, an empty list when it has none."""
        found = self._by_ue_id.get(ue_id, [])
        logger.debug("%d association(s) found for UE ID %s", len(found), ue_id)
        return UeAssociations(
            ue_id=ue_id,
            associations=[
                UeAssociation(ue_service_id=item.ue_service_id, relation=item.relation)
                for item in found
            ],
        )
