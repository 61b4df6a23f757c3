"""NEF configuration (nef.yaml).

    sbi: {host: 127.0.0.1, port: 0}
    aanf:
      uri: http://127.0.0.1:8003
      timeout: 5                    # seconds
      signing_key: <hex>            # optional: the AAnF's oauth.signing_key
      audience: aanf                # the AAnF's oauth.audience
    udm: {uri: http://127.0.0.1:8001, timeout: 5}
    oauth:
      signing_key: <64 or more hex digits>   # HMAC key of the tokens issued to AFs
      token_lifetime: 3600          # seconds
    afs:                            # the AFs allowed to use 3gpp-akma
      - client_id: msgin5g-server
        client_secret: <secret>
        fqdn: msgin5g.example.org   # the only FQDN this AF may put in afId
        scopes: [3gpp-akma, nnef-akma:gpsi-access]

With `aanf.signing_key`, the NEF signs its own access token for the AAnF
with the scopes naanf-akma:applicationkeyget and
naanf-akma:applicationkeyget:supi-access, standing in for the NRF that this
project does not have. Unknown keys are errors, so that a typo does not pass
silently.
"""

from pathlib import Path
from typing import Self

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator

from msgin5g.crypto.akma import UA_TLS13, af_id
from msgin5g.nf.aanf.config import AanfPeer, SigningKeySettings, check_signing_key_hex
from msgin5g.nf.config import ConfigError, ConfigModel, Peer, SbiBinding, describe_errors, read_yaml
from msgin5g.sbi.oauth import parse_scope

AKMA_SCOPE = "3gpp-akma"
GPSI_ACCESS_SCOPE = "nnef-akma:gpsi-access"
DEFAULT_AF_SCOPES = (AKMA_SCOPE, GPSI_ACCESS_SCOPE)


class TokenSettings(SigningKeySettings):
    """The key and lifetime of the tokens the NEF issues to AFs."""

    token_lifetime: int = Field(default=3600, gt=0, le=86400)


class AfClient(ConfigModel):
    """One AF allowed to call the NEF: its OAuth client credentials, FQDN and scopes."""

    client_id: str = Field(min_length=1, max_length=255)
    client_secret: SecretStr
    fqdn: str
    scopes: list[str] = list(DEFAULT_AF_SCOPES)

    @field_validator("client_secret")
    @classmethod
    def check_secret(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 16:
            raise ValueError("must have at least 16 characters")
        return value

    @field_validator("fqdn")
    @classmethod
    def check_fqdn(cls, value: str) -> str:
        af_id(value, UA_TLS13)  # Raises a ValueError that names the expected form.
        return value

    @field_validator("scopes")
    @classmethod
    def check_scopes(cls, values: list[str]) -> list[str]:
        parse_scope(" ".join(values))
        return values


class NefConfig(ConfigModel):
    sbi: SbiBinding = SbiBinding()
    aanf: AanfPeer
    udm: Peer
    oauth: TokenSettings
    afs: list[AfClient] = Field(min_length=1)

    @model_validator(mode="after")
    def check_unique_clients(self) -> Self:
        client_ids = [af.client_id for af in self.afs]
        duplicates = sorted({client_id for client_id in client_ids if client_ids.count(client_id) > 1})
        if duplicates:
            raise ValueError(f"afs lists client_id {', '.join(duplicates)} more than once")
        return self


def load_nef_config(path: Path | str) -> NefConfig:
    """Read and validate nef.yaml; raise ConfigError naming each wrong key."""
    path = Path(path)
    document = read_yaml(path)
    try:
        return NefConfig.model_validate(document)
    except ValidationError as error:
        raise ConfigError(describe_errors(path, error)) from None
