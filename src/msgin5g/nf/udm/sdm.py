"""Nudm_SDM bodies for the one operation this UDM serves: SUPI to GPSI translation.

TS 29.503 clause 6.1 (API nudm-sdm v2), operation GetSupiOrGpsi on
`/{ueId}/id-translation-result`, returning IdTranslationResult.
"""

from pydantic import Field

from msgin5g.sbi.models.common import Gpsi, SbiModel, Supi, SupportedFeatures

SDM_API_ROOT = "/nudm-sdm/v2"
ID_TRANSLATION_PATH = SDM_API_ROOT + "/{ueId}/id-translation-result"

# NOTE: the copies of TS 29.503 read for this project name no cause for a
# subscriber without a GPSI, so this UDM answers 404 with this one.
GPSI_NOT_FOUND = "GPSI_NOT_FOUND"


def id_translation_path(supi: str) -> str:
    return ID_TRANSLATION_PATH.replace("{ueId}", supi)


class IdTranslationResult(SbiModel):
    supported_features: SupportedFeatures | None = Field(default=None, alias="supportedFeatures")
    supi: Supi
    gpsi: Gpsi | None = None
