"""Naanf_AKMA bodies (TS 29.535 clause 6.1, API naanf-akma v1).

AkmaAfKeyRequest and AkmaAfKeyData are defined by TS 29.522 (3gpp-akma) and
shared with the NEF API.
"""

from typing import Annotated, Self

from pydantic import AfterValidator, Field, model_validator

from msgin5g.crypto.akma import af_id_from_wire, parse_a_kid
from msgin5g.sbi.models.common import (
    DateTime,
    Gpsi,
    Key256,
    MemberError,
    SbiModel,
    Supi,
    SupportedFeatures,
)

API_ROOT = "/naanf-akma/v1"
REGISTER_ANCHOR_KEY_PATH = f"{API_ROOT}/register-anchorkey"
RETRIEVE_APPLICATION_KEY_PATH = f"{API_ROOT}/retrieve-applicationkey"
REMOVE_CONTEXT_PATH = f"{API_ROOT}/remove-context"


def check_a_kid(value: str) -> str:
    """Accept an A-KID in this project's NAI layout (see msgin5g.crypto.akma)."""
    parse_a_kid(value)
    return value


def check_af_id(value: str) -> str:
    """Accept the wire form "<fqdn>;ua-protocol-id=<10 hex digits>"."""
    af_id_from_wire(value)
    return value


AKid = Annotated[str, AfterValidator(check_a_kid)]
AfId = Annotated[str, AfterValidator(check_af_id)]


class AkmaKeyInfo(SbiModel):
    """AKMA key material that the AUSF registers (Naanf_AKMA_AnchorKey_Register)."""

    supp_feat: SupportedFeatures | None = Field(default=None, alias="suppFeat")
    supi: Supi | None = None
    gpsi: Gpsi | None = None
    a_kid: AKid = Field(alias="aKId")
    k_akma: Key256 = Field(alias="kAkma", repr=False)

    @model_validator(mode="after")
    def check_one_ue_id(self) -> Self:
        # The oneOf of the TS 29.535 schema: exactly one of supi and gpsi.
        if (self.supi is None) == (self.gpsi is None):
            raise MemberError("/supi", "exactly one of supi and gpsi must be present")
        return self

    @property
    def ue_id(self) -> str:
        return self.supi if self.supi is not None else self.gpsi


class CtxRemove(SbiModel):
    # The schema has no `required` list, but its description requires supi,
    # so the model does too.
    supi: Supi


class AkmaAfKeyRequest(SbiModel):
    """An AF's request for K_AF (Naanf_AKMA_ApplicationKey_Get)."""

    supp_feat: SupportedFeatures | None = Field(default=None, alias="suppFeat")
    af_id: AfId = Field(alias="afId")
    a_kid: AKid = Field(alias="aKId")
    anon_ind: bool = Field(default=False, alias="anonInd")


class AkmaAfKeyData(SbiModel):
    """K_AF, its expiry and the UE ID, as the AAnF returns them."""

    supp_feat: SupportedFeatures | None = Field(default=None, alias="suppFeat")
    gpsi: Gpsi | None = None
    expiry: DateTime
    kaf: Key256 = Field(repr=False)
    supi: Supi | None = None
