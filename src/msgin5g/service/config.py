"""YAML configuration of the MSGin5G Server, for example:

    listen: {host: 127.0.0.1, port: 0}
    fqdn: msgin5g.example.test
    aanf: {uri: http://127.0.0.1:8003}
    cm: {uri: http://127.0.0.1:8004}
    database: msgin5g.sqlite3
    limits: {max_connections: 1000, handshake_timeout: 10}

or, with one listener per Ua* security profile:

    profiles:
      psk-tls1.3: {listen: {host: 127.0.0.1, port: 5684}, options: {allow_psk_ke: false}}
      psk-tls1.2: {listen: {host: 127.0.0.1, port: 5685}}
      https-digest:
        listen: {host: 127.0.0.1, port: 8443}
        options: {certfile: server.pem, keyfile: server.key}
      psk-dtls1.2: {listen: {host: 127.0.0.1, port: 5684}, options: {mtu: 1200}}

An AF outside the operator's network reaches AKMA through the NEF instead of
the AAnF: replace `aanf` with

    nef: {uri: http://127.0.0.1:8005, client_id: msgin5g-server, client_secret: <secret>}

Exactly one of `aanf` and `nef` is set. Through the NEF the server gets the
UE's GPSI, never its SUPI, and authorizes registrations by that GPSI.

The associations of UE service IDs with UE IDs come from the SEAL CM server
(`cm`) or, instead, from the MSGin5G Configuration Function:

    configuration_function: {uri: http://127.0.0.1:8006}

Exactly one of `cm` and `configuration_function` is set.

`fqdn` is the AF's FQDN in AF_ID (TS 33.535 Annex A.4): the UE derives K_AF for
exactly this spelling. `port: 0` lets the system pick a free port. A relative
`database` path is taken relative to the folder of the configuration file.
An optional `store:` section keeps the registrations in Redis and shares K_AF
entries between server instances there (see `msgin5g.store.redis`).
The optional `messaging:` section sets the store-and-forward expiries and
queue limit (`MessagingConfig`). Unknown keys are errors, so that a typo does
not pass silently.
"""

import ipaddress
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import (
    Field,
    ModelWrapValidatorHandler,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails

from msgin5g.coap.tcp import BASE_MAX_MESSAGE_SIZE, DEFAULT_MAX_MESSAGE_SIZE
from msgin5g.crypto.akma import UA_TLS13, af_id
from msgin5g.nf.aanf.config import AanfPeer
from msgin5g.nf.config import ConfigError, ConfigModel, Peer
from msgin5g.nf.config import load_config as load_nf_style_config
from msgin5g.nf.config import require_database
from msgin5g.store.redis import StoreSelection, check_database_selected
from msgin5g.ua.clienthello import DEFAULT_MAX_CLIENT_HELLO_SIZE

__all__ = ["ConfigError", "Limits", "Listen", "MessagingConfig", "NefPeer", "Peer", "ServerConfig", "load_config"]


class Listen(ConfigModel):
    """Listening address of the CoAP-over-TLS endpoint."""

    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)

    @field_validator("host")
    @classmethod
    def check_host(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"must be an IP address such as 127.0.0.1 or ::1, got {value!r}") from None
        return value


class Limits(ConfigModel):
    max_connections: int = Field(default=1000, ge=1)
    # Seconds from TCP accept until the TLS handshake completes, K_AF retrieval included.
    handshake_timeout: float = Field(default=10.0, gt=0, le=300)
    # Octets; advertised as Max-Message-Size in the server's CSM.
    max_message_size: int = Field(default=DEFAULT_MAX_MESSAGE_SIZE, ge=BASE_MAX_MESSAGE_SIZE, le=2**20)
    max_client_hello_size: int = Field(default=DEFAULT_MAX_CLIENT_HELLO_SIZE, ge=512, le=2**16)


class MessagingConfig(ConfigModel):
    """Store-and-forward settings of MSG and IMDN (section `messaging`), times in seconds."""

    # Expiry of a queued item when the MSG names no stoAndFwParams.exprTime.
    default_expiry: float = Field(default=86400.0, gt=0)
    # Upper bound of a requested exprTime; a later one is shortened to it.
    max_expiry: float = Field(default=7 * 86400.0, gt=0)
    # Items queued for one UE service ID; a MSG beyond it gets STORE_FULL.
    max_queued_per_recipient: int = Field(default=1000, ge=1)
    # Largest INBOX response body in octets when the request names no maxOctets.
    max_inbox_octets: int = Field(default=7000, ge=512, le=2**20)
    # Seconds between two runs of the task that expires items and reports failures.
    expiry_interval: float = Field(default=5.0, gt=0, le=3600)

    @model_validator(mode="after")
    def check_expiries(self) -> Self:
        if self.default_expiry > self.max_expiry:
            raise ValueError(
                f"default_expiry ({self.default_expiry} s) exceeds max_expiry ({self.max_expiry} s); "
                "lower default_expiry or raise max_expiry"
            )
        return self


class NefPeer(Peer):
    """The NEF and this AF's OAuth 2.0 client credentials at its token endpoint."""

    client_id: str = Field(min_length=1)
    client_secret: SecretStr


# The Ua* security profiles a listener can offer (see msgin5g.service.profiles).
PROFILE_NAMES = ("psk-tls1.3", "psk-tls1.2", "https-digest", "psk-dtls1.2")
ProfileName = Literal["psk-tls1.3", "psk-tls1.2", "https-digest", "psk-dtls1.2"]


class ProfileListener(ConfigModel):
    """One profile's listening address and its options (checked by the profile's own model)."""

    listen: Listen = Listen()
    options: dict[str, Any] = {}


class ServerConfig(ConfigModel):
    # Without `profiles`, one PSK-TLS 1.3 listener on `listen`.
    listen: Listen | None = None
    profiles: dict[ProfileName, ProfileListener] | None = None
    fqdn: str
    aanf: AanfPeer | None = None
    nef: NefPeer | None = None
    cm: Peer | None = None
    configuration_function: Peer | None = None
    database: Path | None = None
    store: StoreSelection = StoreSelection()
    limits: Limits = Limits()
    messaging: MessagingConfig = MessagingConfig()

    @model_validator(mode="wrap")
    @classmethod
    def name_missing_aanf(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        """Report a missing `aanf` as a missing key when neither `aanf` nor `nef` is set."""
        if not isinstance(data, dict) or "aanf" in data or "nef" in data:
            return handler(data)
        reason = ValueError(
            "is required but missing; add aanf {uri}, or nef {uri, client_id, client_secret} "
            "for an AF outside the operator's network"
        )
        missing = InitErrorDetails(type="value_error", loc=("aanf",), input=data, ctx={"error": reason})
        try:
            handler(data)
        except ValidationError as error:
            details = [
                InitErrorDetails(type=item["type"], loc=item["loc"], input=item["input"], ctx=item.get("ctx", {}))
                for item in error.errors()
            ]
            raise ValidationError.from_exception_data(cls.__name__, [missing, *details]) from None
        raise ValidationError.from_exception_data(cls.__name__, [missing])

    @model_validator(mode="wrap")
    @classmethod
    def name_missing_database(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        """Report a missing `database` as a missing key unless the store is Redis."""
        return require_database(cls.__name__, data, handler)

    @model_validator(mode="after")
    def check_listeners(self) -> Self:
        if self.listen is not None and self.profiles is not None:
            raise ValueError(
                "set either listen (one PSK-TLS 1.3 listener) or profiles, not both; "
                "move listen under profiles.psk-tls1.3.listen"
            )
        if (self.aanf is None) == (self.nef is None):
            raise ValueError(
                "set exactly one of aanf {uri} (AF inside the operator's network) "
                "and nef {uri, client_id, client_secret} (AF outside it)"
            )
        if (self.cm is None) == (self.configuration_function is None):
            raise ValueError(
                "set exactly one source of UE service ID associations: cm {uri} (the SEAL CM "
                "server) or configuration_function {uri} (the MSGin5G Configuration Function)"
                + (", not both" if self.cm is not None else "")
            )
        if self.profiles is not None and not self.profiles:
            raise ValueError(f"profiles is empty: list at least one of {', '.join(PROFILE_NAMES)}")
        check_database_selected(self.database, self.store)
        return self

    def enabled_profiles(self) -> dict[str, ProfileListener]:
        """Return the listeners to start, by profile name, in configuration order."""
        if self.profiles is None:
            return {"psk-tls1.3": ProfileListener(listen=self.listen or Listen())}
        return dict(self.profiles)

    @field_validator("fqdn")
    @classmethod
    def check_fqdn(cls, value: str) -> str:
        af_id(value, UA_TLS13)  # Raises a ValueError that names the expected form.
        return value


def load_config(path: Path | str) -> ServerConfig:
    """Read and validate the server's YAML file; raise ConfigError naming each wrong key."""
    return load_nf_style_config(path, ServerConfig)