"""AUSF configuration (ausf.yaml).

    sbi: {host: 127.0.0.1, port: 0}
    database: msgin5g.sqlite3
    udm: {uri: "http://127.0.0.1:8001"}
    aanf: {uri: "http://127.0.0.1:8003"}    # optional: without it, no AKMA keys are registered
    home_network: {mcc: "001", mnc: "01"}
    auth_context_lifetime: 60               # seconds a 5G AKA challenge stays valid
    nf_instance_id: 9b1f0c2e-4a55-4c1b-8f7e-2d9a6f3b1c00   # optional, a UUID
"""

import uuid
from pathlib import Path

from pydantic import Field, field_validator

from msgin5g.crypto.aka import MCC_PATTERN, MNC_PATTERN
from msgin5g.nf.config import ConfigModel, NfConfig, Peer, load_config
from msgin5g.sbi.models.common import check_nf_instance_id


class HomeNetwork(ConfigModel):
    """The PLMN of this AUSF; it forms the realm of the A-KID (TS 33.535 clause 6.1)."""

    mcc: str
    mnc: str

    @field_validator("mcc", "mnc", mode="before")
    @classmethod
    def require_text(cls, value: object) -> object:
        if not isinstance(value, str):
            raise ValueError(
                'must be quoted text, e.g. mcc: "001" and mnc: "01" '
                "(YAML drops the leading zeros of a number)"
            )
        return value

    @field_validator("mcc")
    @classmethod
    def check_mcc(cls, mcc: str) -> str:
        if not MCC_PATTERN.fullmatch(mcc):
            raise ValueError('must be 3 digits, e.g. "001"')
        return mcc

    @field_validator("mnc")
    @classmethod
    def check_mnc(cls, mnc: str) -> str:
        if not MNC_PATTERN.fullmatch(mnc):
            raise ValueError('must be 2 or 3 digits, e.g. "01"')
        return mnc


class AusfConfig(NfConfig):
    udm: Peer
    aanf: Peer | None = None
    home_network: HomeNetwork
    auth_context_lifetime: float = Field(default=60.0, gt=0, le=3600)
    nf_instance_id: str = Field(default_factory=lambda: str(uuid.uuid4()))

    @field_validator("nf_instance_id")
    @classmethod
    def check_instance_id(cls, value: str) -> str:
        return check_nf_instance_id(value)


def load_ausf_config(path: Path | str) -> AusfConfig:
    return load_config(path, AusfConfig)
