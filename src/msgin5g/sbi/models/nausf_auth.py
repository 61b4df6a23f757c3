"""Nausf_UEAuthentication bodies (TS 29.509 clause 6.1, API nausf-auth v1), 5G AKA only."""

from typing import Literal

from pydantic import Field

from msgin5g.sbi.models.common import (
    Autn,
    HxresStar,
    Key256,
    Rand,
    ResStar,
    RoutingIndicator,
    SbiModel,
    ServingNetworkName,
    Supi,
    SupportedFeatures,
    SupiOrSuci,
)
from msgin5g.sbi.models.nudm_ueau import ResynchronizationInfo

API_ROOT = "/nausf-auth/v1"
UE_AUTHENTICATIONS_PATH = f"{API_ROOT}/ue-authentications"
DEREGISTER_PATH = f"{UE_AUTHENTICATIONS_PATH}/deregister"
HAL_JSON = "application/3gppHal+json"
AKA_CONFIRMATION_LINK = "5g-aka"

AuthResult = Literal["AUTHENTICATION_SUCCESS", "AUTHENTICATION_FAILURE", "AUTHENTICATION_ONGOING"]


def confirmation_path(auth_ctx_id: str) -> str:
    return f"{UE_AUTHENTICATIONS_PATH}/{auth_ctx_id}/5g-aka-confirmation"


class AuthenticationInfo(SbiModel):
    supi_or_suci: SupiOrSuci = Field(alias="supiOrSuci")
    serving_network_name: ServingNetworkName = Field(alias="servingNetworkName")
    resynchronization_info: ResynchronizationInfo | None = Field(
        default=None, alias="resynchronizationInfo"
    )
    routing_indicator: RoutingIndicator | None = Field(default=None, alias="routingIndicator")
    supported_features: SupportedFeatures | None = Field(default=None, alias="supportedFeatures")


class DeregistrationInfo(SbiModel):
    """The UE whose security context the AUSF purges (Nausf_UEAuthentication_Deregister)."""

    supi: Supi
    supported_features: SupportedFeatures | None = Field(default=None, alias="supportedFeatures")


class Av5gAka(SbiModel):
    """Challenge sent to the SEAF: RAND, AUTN and HXRES*, never XRES* or K_AUSF."""

    rand: Rand
    hxres_star: HxresStar = Field(alias="hxresStar")
    autn: Autn


class Link(SbiModel):
    href: str


class UEAuthenticationCtx(SbiModel):
    auth_type: Literal["5G_AKA"] = Field(default="5G_AKA", alias="authType")
    auth_data_5g: Av5gAka = Field(alias="5gAuthData")
    links: dict[str, Link] = Field(alias="_links")
    serving_network_name: ServingNetworkName | None = Field(
        default=None, alias="servingNetworkName"
    )

    def confirmation_uri(self) -> str:
        """Return the href of the "5g-aka" link, where the SEAF sends RES*."""
        return self.links[AKA_CONFIRMATION_LINK].href


class ConfirmationData(SbiModel):
    # TS 29.509 makes resStar mandatory but nullable; null means that the
    # serving network has no RES* to offer, which fails the authentication.
    res_star: ResStar | None = Field(alias="resStar", repr=False)
    supported_features: SupportedFeatures | None = Field(default=None, alias="supportedFeatures")


class ConfirmationDataResponse(SbiModel):
    auth_result: AuthResult = Field(alias="authResult")
    supi: Supi | None = None
    kseaf: Key256 | None = Field(default=None, repr=False)
