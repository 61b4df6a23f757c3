"""Authorization of a registration against the source of associations (TS 33.501 Annex Y.2).

The MSGin5G Server accepts a REG only if the requested UE service ID is associated
with the UE ID (SUPI or GPSI) that the AAnF returned together with K_AF. Each
association has a relation: `own` (the UE service ID is the UE's own) or
`gateway` (the UE ID is a Gateway UE that may represent the constrained UE with
that UE service ID). The server's configuration selects one source of
associations:

- the SEAL Configuration Management server, through the TS 29.549 user profile
  retrieval (GET /ss-upr/v1/val-services?val-tgt-ue={"valUeId": "<UE ID>"}).
  Each ProfileDoc names one UE service ID as valTgtUe.valUserId, because in
  SEAL the UE service ID plays the role of the VAL user ID, and carries the
  relation in its profileInformation;
- the MSGin5G Configuration Function, through this project's API
  (GET /msgin5g-cf/v1/ue-associations?ue-id=<UE ID>, docs/openapi/msgin5g-cf.yaml).
"""

import json
import logging
from abc import ABC, abstractmethod

from msgin5g.nf.cf.models import UE_ASSOCIATIONS_PATH, UE_ID_QUERY, UeAssociations
from msgin5g.nf.cm.store import RELATION_OWN
from msgin5g.sbi.client import SbiClient, SbiClientError, SbiProblemError
from msgin5g.sbi.models.ss_upr import VAL_SERVICES_PATH, VAL_TARGET_UE_QUERY, ProfileDoc

logger = logging.getLogger(__name__)

# UE service ID -> relation ("own" or "gateway") of one UE ID.
Relations = dict[str, str]


class AuthorizationUnavailable(Exception):
    """The source of associations could not be asked, so the association is unknown."""


class CmUnavailable(AuthorizationUnavailable):
    """The CM server could not be asked."""


class ConfigurationFunctionUnavailable(AuthorizationUnavailable):
    """The MSGin5G Configuration Function could not be asked."""


class AssociationSource(ABC):
    """A network function that stores the associations of UE IDs."""

    # The function's name in responses to the UE, e.g. "SEAL CM server".
    name: str

    @abstractmethod
    async def relations(self, ue_id: str) -> Relations:
        """Return the relation of each UE service ID associated with `ue_id`.

        Raise AuthorizationUnavailable when the function cannot be asked.
        """


class CmClient(AssociationSource):
    """Consumer of SS_UserProfileRetrieval (TS 29.549) at the SEAL CM server."""

    name = "SEAL CM server"

    def __init__(self, sbi: SbiClient) -> None:
        self._sbi = sbi

    async def relations(self, ue_id: str) -> Relations:
        """Return the relations of the UE service IDs of `ue_id`; raise CmUnavailable on failure."""
        profiles = await self._profiles(ue_id)

        relations = {}
        for profile in profiles:
            ue_service_id = profile.val_tgt_ue.val_user_id
            if ue_service_id is None:
                continue
            relations[ue_service_id] = profile_relation(profile)
        return relations

    async def associated_ue_service_ids(self, ue_id: str) -> frozenset[str]:
        """Return the UE service IDs associated with `ue_id`; raise CmUnavailable on failure."""
        return frozenset(await self.relations(ue_id))

    async def _profiles(self, ue_id: str) -> list[ProfileDoc]:
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
                return []
            raise CmUnavailable(f"CM server rejected the profile request: {error}") from error
        except SbiClientError as error:
            raise CmUnavailable(f"CM server request failed: {error}") from error
        return response.body or []


def profile_relation(profile: ProfileDoc) -> str:
    """Return the relation in a ProfileDoc's profileInformation, "own" when it names none.

    A profileInformation that is not an MSGin5G association counts as "own", as
    before associations had a relation, so it never grants the gateway relation.
    """
    try:
        return profile.association().relation
    except ValueError:
        logger.warning(
            "CM server sent a profile whose profileInformation is not an MSGin5G association; "
            "treating its relation as %r",
            RELATION_OWN,
        )
        return RELATION_OWN


class ConfigurationFunctionClient(AssociationSource):
    """Consumer of the MSGin5G Configuration Function's ue-associations resource."""

    name = "MSGin5G Configuration Function"

    def __init__(self, sbi: SbiClient) -> None:
        self._sbi = sbi

    async def relations(self, ue_id: str) -> Relations:
        """Return the relations of the UE service IDs of `ue_id`.

        Raise ConfigurationFunctionUnavailable when the request fails.
        """
        try:
            response = await self._sbi.call(
                "GET",
                UE_ASSOCIATIONS_PATH,
                params={UE_ID_QUERY: ue_id},
                response_type=UeAssociations,
            )
        except SbiClientError as error:
            raise ConfigurationFunctionUnavailable(
                f"Configuration Function request failed: {error}"
            ) from error

        if response.body is None:
            raise ConfigurationFunctionUnavailable("Configuration Function sent an empty body")
        return {item.ue_service_id: item.relation for item in response.body.associations}


class RegistrationAuthorizer:
    """Decide whether a UE may register a UE service ID, and with which relation."""

    def __init__(self, source: AssociationSource) -> None:
        self._source = source

    @property
    def source_name(self) -> str:
        """Name of the function that stores the associations, for messages to the UE."""
        return self._source.name

    async def relations(self, ue_id: str) -> Relations:
        """Return every association of `ue_id`; raise AuthorizationUnavailable on failure."""
        relations = await self._source.relations(ue_id)
        logger.debug("UE ID %s has %d associated UE service IDs", ue_id, len(relations))
        return relations

    async def relation(self, ue_id: str, ue_service_id: str) -> str | None:
        """Return the relation of (`ue_id`, `ue_service_id`), or None when they are not associated.

        Raise AuthorizationUnavailable when the source cannot be asked.
        """
        return (await self.relations(ue_id)).get(ue_service_id)

    async def is_associated(self, ue_id: str, ue_service_id: str) -> bool:
        """Return True if `ue_service_id` is associated with `ue_id` in either relation."""
        return await self.relation(ue_id, ue_service_id) is not None
