"""Bodies of the MSGin5G Configuration Function API (msgin5g-cf v1, docs/openapi/msgin5g-cf.yaml).

No 3GPP OpenAPI file defines how the MSGin5G Server reads associations from
the MSGin5G Configuration Function, so this project defines one resource:

    GET /msgin5g-cf/v1/ue-associations?ue-id=<SUPI or GPSI>
    200 {"ueId": ..., "associations": [{"ueServiceId": ..., "relation": "own" | "gateway"}]}
"""

from pydantic import Field

from msgin5g.sbi.models.common import IdentifierText, SbiModel
from msgin5g.sbi.models.ss_upr import Relation

API_ROOT = "/msgin5g-cf/v1"
UE_ASSOCIATIONS_PATH = f"{API_ROOT}/ue-associations"
UE_ID_QUERY = "ue-id"


class UeAssociation(SbiModel):
    """One UE service ID of a UE ID, with its relation."""

    ue_service_id: IdentifierText = Field(alias="ueServiceId")
    relation: Relation


class UeAssociations(SbiModel):
    """Every association of one UE ID, ordered by UE service ID (possibly none)."""

    ue_id: IdentifierText = Field(alias="ueId")
    associations: list[UeAssociation]
