"""AAnF configuration (aanf.yaml).

    sbi: {host: 127.0.0.1, port: 0}
    database: msgin5g.sqlite3
    k_af_lifetime: 3600          # seconds; the expiry sent with each K_AF
    context_lifetime: 86400      # seconds an AKMA context lasts without a new authentication
    authorized_afs:              # optional; when present, only these AF FQDNs get K_AF
      - msgin5g.example.org
    oauth:                       # optional; when present, retrieve-applicationkey needs a token
      signing_key: <64 or more hex digits>   # HMAC key shared with the token issuer
      audience: aanf             # the `aud` claim the tokens must carry

Without authorized_afs and oauth (the default, which the demo uses), every
AF that can reach the AAnF gets K_AF together with the SUPI or GPSI. With
oauth, a retrieve-applicationkey request needs a bearer token with scope
naanf-akma or naanf-akma:applicationkeyget, and the response carries the SUPI
only when the token also grants naanf-akma:applicationkeyget:supi-access
(scopes of the TS 29.535 OpenAPI file; the NEF holds that scope, an external AF
does not). Other endpoints stay open to the AUSF.

A K_AF never outlives the AKMA context it comes from: its expiry is the
earlier of now + k_af_lifetime and the context's own expiry.
"""

from pathlib import Path

from pydantic import Field, SecretStr, field_validator

from msgin5g.crypto.akma import UA_TLS13, af_id
from msgin5g.nf.config import ConfigModel, NfConfig, Peer, load_config
from msgin5g.sbi.oauth import TokenIssuer
from msgin5g.sbi.oauth import MIN_SIGNING_KEY_OCTETS

ONE_DAY_SECONDS = 86400


def check_signing_key_hex(value: SecretStr) -> SecretStr:
    """Accept a hexadecimal HMAC key of at least MIN_SIGNING_KEY_OCTETS octets."""
    text = value.get_secret_value()
    try:
        octets = bytes.fromhex(text)
    except ValueError:
        raise ValueError("must be hexadecimal digits, e.g. from 'openssl rand -hex 32'") from None
    if len(octets) < MIN_SIGNING_KEY_OCTETS:
        raise ValueError(
            f"must have at least {2 * MIN_SIGNING_KEY_OCTETS} hexadecimal digits "
            f"({MIN_SIGNING_KEY_OCTETS} octets)"
        )
    return value


class SigningKeySettings(ConfigModel):
    """An HMAC key for bearer tokens, given in hexadecimal digits."""

    signing_key: SecretStr

    @field_validator("signing_key")
    @classmethod
    def check_key(cls, value: SecretStr) -> SecretStr:
        return check_signing_key_hex(value)

    def key(self) -> bytes:
        return bytes.fromhex(self.signing_key.get_secret_value())


# The scopes a client of retrieve-applicationkey requests: K_AF, and the SUPI with it.
AANF_SCOPES = ("naanf-akma:applicationkeyget", "naanf-akma:applicationkeyget:supi-access")


class AanfPeer(Peer):
    """The AAnF as its clients see it, with the key of the tokens it expects (when it verifies tokens).

    NOTE: without an NRF, a client signs its own token with the key it shares
    with the AAnF (the AAnF's `oauth.signing_key`).
    """

    signing_key: SecretStr | None = None
    audience: str = "aanf"

    @field_validator("signing_key")
    @classmethod
    def check_peer_key(cls, value: SecretStr | None) -> SecretStr | None:
        return None if value is None else check_signing_key_hex(value)

    def token_issuer(self, issuer: str) -> TokenIssuer | None:
        """Return the issuer of this client's tokens, or None when the AAnF wants none."""
        if self.signing_key is None:
            return None
        return TokenIssuer(bytes.fromhex(self.signing_key.get_secret_value()), issuer=issuer)


class OAuthVerification(SigningKeySettings):
    """Settings with which the AAnF verifies the bearer tokens of AFs and the NEF."""

    audience: str = "aanf"


class AanfConfig(NfConfig):
    k_af_lifetime: int = Field(default=3600, gt=0, le=30 * ONE_DAY_SECONDS)
    context_lifetime: int = Field(default=ONE_DAY_SECONDS, gt=0, le=365 * ONE_DAY_SECONDS)
    authorized_afs: list[str] | None = None
    oauth: OAuthVerification | None = None

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
