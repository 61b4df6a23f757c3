"""Nudm_UEAuthentication bodies (TS 29.503 clause 6.3, API nudm-ueau v1).

Only the GenerateAuthData operation with a 5G_HE_AKA vector is modelled.
"""

from typing import Literal

from pydantic import Field

from msgin5g.sbi.models.common import (
    Autn,
    Auts,
    Key256,
    NfInstanceId,
    Rand,
    RoutingIndicator,
    SbiModel,
    ServingNetworkName,
    Supi,
    SupportedFeatures,
    XresStar,
)

API_ROOT = "/nudm-ueau/v1"


def generate_auth_data_path(supi_or_suci: str) -> str:
    return f"{API_ROOT}/{supi_or_suci}/security-information/generate-auth-data"


class ResynchronizationInfo(SbiModel):
    """RAND and AUTS from a UE that rejected the SQN (TS 33.102 clause 6.3.5)."""

    rand: Rand
    auts: Auts


class AuthenticationInfoRequest(SbiModel):
    supported_features: SupportedFeatures | None = Field(default=None, alias="supportedFeatures")
    serving_network_name: ServingNetworkName = Field(alias="servingNetworkName")
    resynchronization_info: ResynchronizationInfo | None = Field(
        default=None, alias="resynchronizationInfo"
    )
    ausf_instance_id: NfInstanceId = Field(alias="ausfInstanceId")


class Av5GHeAka(SbiModel):
    """The 5G home environment authentication vector (TS 33.501 clause 6.1.3.2)."""

    av_type: Literal["5G_HE_AKA"] = Field(default="5G_HE_AKA", alias="avType")
    rand: Rand
    xres_star: XresStar = Field(alias="xresStar", repr=False)
    autn: Autn
    kausf: Key256 = Field(repr=False)


class AuthenticationInfoResult(SbiModel):
    auth_type: Literal["5G_AKA"] = Field(default="5G_AKA", alias="authType")
    supported_features: SupportedFeatures | None = Field(default=None, alias="supportedFeatures")
    authentication_vector: Av5GHeAka = Field(alias="authenticationVector")
    supi: Supi
    akma_ind: bool = Field(default=False, alias="akmaInd")
    routing_id: RoutingIndicator | None = Field(default=None, alias="routingId")
