"""SEAL user profile retrieval bodies (TS 29.549, API ss-upr v1).

The project stores the MSGin5G association between a UE service ID and a UE
ID (SUPI or GPSI) at the SEAL Configuration Management server. In SEAL the UE
service ID plays the role of the VAL user ID and the UE ID the role of the VAL
UE ID (TS 23.554 clause 8.1.2). A ProfileDoc returned by the CM server
carries the association as JSON text in `profileInformation`, with its
relation: `own` or `gateway` (the UE ID is a Gateway UE that may represent the
constrained UE with this UE service ID).
"""

import json
from typing import Literal, Self

from pydantic import Field, ValidationError, model_validator

from msgin5g.sbi.models.common import IdentifierText, MemberError, SbiModel

API_ROOT = "/ss-upr/v1"
VAL_SERVICES_PATH = f"{API_ROOT}/val-services"
VAL_TARGET_UE_QUERY = "val-tgt-ue"
VAL_SERVICE_ID_QUERY = "val-service-id"
# The VAL service ID of the MSGin5G profiles at the CM server.
MSGIN5G_VAL_SERVICE_ID = "msgin5g"
# Association relations inside profileInformation; a document without one means "own".
Relation = Literal["own", "gateway"]


class ValTargetUe(SbiModel):
    val_user_id: IdentifierText | None = Field(default=None, alias="valUserId")
    val_ue_id: IdentifierText | None = Field(default=None, alias="valUeId")

    @model_validator(mode="after")
    def check_one_target(self) -> Self:
        if (self.val_user_id is None) == (self.val_ue_id is None):
            raise MemberError("/valUeId", "exactly one of valUserId and valUeId must be present")
        return self


class ProfileInformation(SbiModel):
    """The association carried as JSON text inside ProfileDoc.profileInformation."""

    ue_service_id: IdentifierText = Field(alias="ueServiceId")
    ue_id: IdentifierText = Field(alias="ueId")
    val_service_id: IdentifierText = Field(default=MSGIN5G_VAL_SERVICE_ID, alias="valServiceId")
    relation: Relation = "own"


class ProfileDoc(SbiModel):
    profile_information: str = Field(alias="profileInformation")
    val_tgt_ue: ValTargetUe = Field(alias="valTgtUe")

    @classmethod
    def for_association(cls, information: ProfileInformation) -> "ProfileDoc":
        """Build the ProfileDoc of one UE service ID (the VAL user ID)."""
        text = json.dumps(information.to_json_dict(), separators=(",", ":"))
        return cls(
            profile_information=text,
            val_tgt_ue=ValTargetUe(val_user_id=information.ue_service_id),
        )

    def association(self) -> ProfileInformation:
        """Parse profileInformation; raise ValueError when it is not the expected JSON."""
        try:
            return ProfileInformation.model_validate_json(self.profile_information)
        except ValidationError as error:
            raise ValueError(
                f"profileInformation is not an MSGin5G association ({error.error_count()} error(s))"
            ) from None
