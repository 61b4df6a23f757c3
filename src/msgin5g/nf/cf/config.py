"""MSGin5G Configuration Function configuration (cf.yaml).

    sbi: {host: 127.0.0.1, port: 0}
    associations:
      - ue_service_id: alice-phone
        ue_id: imsi-001010000000001      # a SUPI or a GPSI
      - ue_service_id: sensor-17
        ue_id: imsi-001010000000002
        relation: gateway                # own (default) or gateway

The associations are pre-configured in this file (TS 33.501 Annex Y.2): the
function reads them once at start. A UE service ID appears at most once,
because it identifies one UE. Unknown keys are errors, so that a typo does
not pass silently.
"""

from pathlib import Path
from typing import Self

from pydantic import ValidationError, field_validator, model_validator

from msgin5g.nf.cm.store import RELATION_OWN, Association, check_relation
from msgin5g.nf.config import ConfigError, ConfigModel, SbiBinding, describe_errors, read_yaml
from msgin5g.sbi.models.common import GPSI_PATTERN, SUPI_PATTERN, check_identifier_text


class CfAssociation(ConfigModel):
    """One pre-configured association of a UE service ID with a UE ID."""

    ue_service_id: str
    ue_id: str
    relation: str = RELATION_OWN

    @field_validator("ue_service_id", "ue_id", "relation", mode="before")
    @classmethod
    def check_text(cls, value: object) -> object:
        if not isinstance(value, str):
            raise ValueError(f"must be quoted text, e.g. \"sensor-17\", got {value!r}")
        return value

    @field_validator("ue_service_id")
    @classmethod
    def check_service_id(cls, value: str) -> str:
        return check_identifier_text(value)

    @field_validator("ue_id")
    @classmethod
    def check_ue_id(cls, value: str) -> str:
        if not (SUPI_PATTERN.fullmatch(value) or GPSI_PATTERN.fullmatch(value)):
            raise ValueError(
                "must be a SUPI (imsi-001010000000001) or a GPSI (msisdn-491700000001)"
            )
        return value

    @field_validator("relation")
    @classmethod
    def check_relation_name(cls, value: str) -> str:
        return check_relation(value)

    def to_association(self) -> Association:
        return Association(self.ue_service_id, self.ue_id, self.relation)


class CfConfig(ConfigModel):
    sbi: SbiBinding = SbiBinding()
    associations: list[CfAssociation] = []

    @model_validator(mode="after")
    def check_unique_service_ids(self) -> Self:
        first_index: dict[str, int] = {}
        for index, entry in enumerate(self.associations):
            if entry.ue_service_id in first_index:
                raise ValueError(
                    f"associations[{index}] repeats ue_service_id {entry.ue_service_id!r} of "
                    f"associations[{first_index[entry.ue_service_id]}]; a UE service ID belongs "
                    "to one UE ID, so keep one entry"
                )
            first_index[entry.ue_service_id] = index
        return self


def load_cf_config(path: Path | str) -> CfConfig:
    """Read and validate cf.yaml; raise ConfigError naming each wrong key."""
    path = Path(path)
    document = read_yaml(path)
    try:
        return CfConfig.model_validate(document)
    except ValidationError as error:
        raise ConfigError(describe_errors(path, error)) from None

