"""AAnF configuration (aanf.yaml).

    sbi: {host: 127.0.0.1, port: 0}
    database: msgin5g.sqlite3
    k_af_lifetime: 3600          # seconds; the expiry sent with each K_AF
    context_lifetime: 86400      # seconds an AKMA context lasts without a new authentication
    authorized_afs:              # optional; when present, only these AF FQDNs get K_AF
      - msgin5g.example.org

A K_AF never outlives the AKMA context it comes from: its expiry is the
earlier of now + k_af_lifetime and the context's own expiry.
"""

from pathlib import Path

from pydantic import Field, field_validator

from msgin5g.crypto.akma import UA_TLS13, af_id
from msgin5g.nf.config import NfConfig, load_config

ONE_DAY_SECONDS = 86400


class AanfConfig(NfConfig):
    k_af_lifetime: int = Field(default=3600, gt=0, le=30 * ONE_DAY_SECONDS)
    context_lifetime: int = Field(default=ONE_DAY_SECONDS, gt=0, le=365 * ONE_DAY_SECONDS)
    authorized_afs: list[str] | None = None

    @field_validator("authorized_afs")
    @classmethod
    def check_fqdns(cls, values: list[str] | None) -> list[str] | None:
        if values is None:
            return None
        for fqdn in values:
            # af_id() checks the FQDN syntax; the protocol identifier is irrelevant here.
            af_id(fqdn, UA_TLS13)
        return [fqdn.lower() for fqdn in values]


def load_aanf_config(path: Path | str) -> AanfConfig:
    return load_config(path, AanfConfig)
