"""The Ua* security profiles of the MSGin5G Server, and the runner that starts them.

One listener per configured profile (TS 33.535 Annex B and C):

| profile        | transport                              | Ua* protocol identifier |
| -------------- | -------------------------------------- | ----------------------- |
| `psk-tls1.3`   | CoAP over TLS 1.3, external PSK K_AF   | 01 00 00 00 07          |
| `psk-tls1.2`   | CoAP over TLS 1.2 PSK suites           | 01 00 01 yy zz          |
| `https-digest` | HTTPS, HTTP Digest with password K_AF  | 01 00 01 yy zz          |
| `psk-dtls1.2`  | CoAP over DTLS 1.2 PSK suites          | 01 00 01 yy zz          |

yy zz is the cipher suite negotiated on the connection. Every listener shares
the K_AF provider, so a K_AF fetched for one connection serves the next one
with the same A-KID and AF_ID.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from msgin5g.nf.config import ConfigError, ConfigModel, describe_errors
from msgin5g.nf.aanf.config import AANF_SCOPES
from msgin5g.sbi.client import SbiClient
from msgin5g.sbi.oauth import SelfIssuedToken
from msgin5g.service.authorization import (
    AssociationSource,
    CmClient,
    ConfigurationFunctionClient,
    RegistrationAuthorizer,
)
from msgin5g.service.config import PROFILE_NAMES, Limits, ServerConfig, load_config
from msgin5g.service.dtls_server import DtlsOptions, start_dtls12_listener
from msgin5g.service.https_server import HttpsDigestOptions, start_https_listener
from msgin5g.service.kaf import AanfClient, KafProvider, KafSource, NefClient
from msgin5g.service.registration import RegistrationService
from msgin5g.service.messaging import MessagingService
from msgin5g.service.router import CoapHandler, Msgin5gRouter
from msgin5g.service.store import RegistrationStore
from msgin5g.service.server import (
    Tls12Options,
    Tls13Options,
    start_tls12_listener,
    start_tls13_listener,
)
from msgin5g.service.kaf import KafCache
from msgin5g.service.kaf_redis import RedisKafLayer
from msgin5g.service.redis_message_store import open_message_store
from msgin5g.service.redis_store import open_registration_store

logger = logging.getLogger(__name__)

# Called once every listener is up, with the first listener's URI and all URIs by profile.
ReadyCallback = Callable[..., None]


class Listener(Protocol):
    uri: str

    async def close(self) -> None: ...


@dataclass(frozen=True)
class ProfileSpec:
    """How to configure and start one profile's listener."""

    options_model: type[ConfigModel]
    start: Callable[..., Awaitable[Listener]]
    # Option keys holding file paths, taken relative to the configuration file's folder.
    path_options: tuple[str, ...] = ()


async def _start_tls13(host: str, port: int, *, options: Tls13Options, **shared: Any) -> Listener:
    return await start_tls13_listener(host, port, **shared, **options.model_dump())


async def _start_tls12(host: str, port: int, *, options: Tls12Options, **shared: Any) -> Listener:
    return await start_tls12_listener(host, port, **shared, **options.model_dump())


PROFILES: dict[str, ProfileSpec] = {
    "psk-tls1.3": ProfileSpec(Tls13Options, _start_tls13),
    "psk-tls1.2": ProfileSpec(Tls12Options, _start_tls12),
    "https-digest": ProfileSpec(HttpsDigestOptions, start_https_listener, ("certfile", "keyfile")),
    "psk-dtls1.2": ProfileSpec(DtlsOptions, start_dtls12_listener),
}
if set(PROFILES) != set(PROFILE_NAMES):
    raise ImportError("the profile registry and the configuration's profile names differ")


def profile_options(config: ServerConfig, config_path: Path) -> dict[str, ConfigModel]:
    """Validate each configured profile's options; raise ConfigError naming the wrong key."""
    validated = {}
    for name, listener in config.enabled_profiles().items():
        spec = PROFILES[name]
        raw = dict(listener.options)
        for key in spec.path_options:
            if key in raw and not Path(raw[key]).is_absolute():
                raw[key] = str(config_path.parent / raw[key])
        try:
            validated[name] = spec.options_model.model_validate(raw)
        except ValidationError as error:
            where = Path(f"{config_path} (profiles.{name}.options)")
            raise ConfigError(describe_errors(where, error)) from None
    return validated


async def run(config_path: Path | str, ready: ReadyCallback, shutdown: asyncio.Event) -> None:
    """Run every listener of the YAML file `config_path` until `shutdown` is set."""
    config_path = Path(config_path)
    config = load_config(config_path)
    options = profile_options(config, config_path)

    async with contextlib.AsyncExitStack() as stack:
        source = await _association_source(stack, config)
        store = await open_registration_store(config.store, config.database)
        stack.push_async_callback(store.close)
        kaf = KafProvider(config.fqdn, await _kaf_source(stack, config), await _kaf_cache(stack, config))
        stack.push_async_callback(kaf.aclose)
        registration = RegistrationService(RegistrationAuthorizer(source), store)
        router = Msgin5gRouter(registration.routes())
        await _add_messaging(stack, config, store, router)

        uris = await _start_listeners(stack, config, options, kaf, router, config.limits)
        ready(next(iter(uris.values())), uris=uris)
        await shutdown.wait()


async def _add_messaging(
    stack: contextlib.AsyncExitStack, config: ServerConfig, store: RegistrationStore, router: Msgin5gRouter
) -> None:
    """Serve MSG, IMDN and INBOX with the queued items in the configured store (SQLite or Redis)."""
    message_store = await open_message_store(config.store, config.database)
    stack.push_async_callback(message_store.close)
    messaging = MessagingService(store, message_store, config.messaging)
    router.add_routes(messaging.routes())
    messaging.start()
    stack.push_async_callback(messaging.stop)


async def _association_source(
    stack: contextlib.AsyncExitStack, config: ServerConfig
) -> AssociationSource:
    """Build the client of the CM server, or of the Configuration Function when configured."""
    if config.configuration_function is not None:
        peer = config.configuration_function
        sbi = await stack.enter_async_context(SbiClient(peer.uri, timeout=peer.timeout))
        return ConfigurationFunctionClient(sbi)
    sbi = await stack.enter_async_context(SbiClient(config.cm.uri, timeout=config.cm.timeout))
    return CmClient(sbi)


async def _kaf_cache(stack: contextlib.AsyncExitStack, config: ServerConfig) -> KafCache:
    """Build the K_AF cache, with the shared Redis level when the store is Redis."""
    if not config.store.uses_redis:
        return KafCache()
    cache = KafCache(shared=await RedisKafLayer.open(config.store))
    stack.push_async_callback(cache.aclose)
    return cache


async def _kaf_source(stack: contextlib.AsyncExitStack, config: ServerConfig) -> KafSource:
    """Build the AAnF client, or the NEF client when the configuration names the NEF."""
    if config.nef is not None:
        nef = NefClient(
            config.nef.uri,
            config.nef.client_id,
            config.nef.client_secret.get_secret_value(),
            timeout=config.nef.timeout,
        )
        stack.push_async_callback(nef.aclose)
        return nef
    aanf_sbi = await stack.enter_async_context(SbiClient(config.aanf.uri, timeout=config.aanf.timeout))
    issuer = config.aanf.token_issuer(issuer=config.fqdn)
    if issuer is None:
        return AanfClient(aanf_sbi)
    # The operator's own AF may learn the SUPI (scope supi-access).
    token = SelfIssuedToken(issuer, config.fqdn, AANF_SCOPES, config.aanf.audience)
    return AanfClient(aanf_sbi, token)


async def _start_listeners(
    stack: contextlib.AsyncExitStack,
    config: ServerConfig,
    options: dict[str, ConfigModel],
    kaf: KafProvider,
    service: CoapHandler,
    limits: Limits,
) -> dict[str, str]:
    uris = {}
    for name, listener_config in config.enabled_profiles().items():
        listen = listener_config.listen
        try:
            listener = await PROFILES[name].start(
                listen.host, listen.port, kaf=kaf, service=service, limits=limits, options=options[name]
            )
        except ValueError as error:
            # For example a certificate file that is missing or does not match its key.
            raise ConfigError(f"profiles.{name}: {error}") from None
        except OSError as error:
            raise ConfigError(
                f"profiles.{name}: cannot listen on {listen.host}:{listen.port}: {error.strerror}; "
                "choose another port (each TCP or UDP port once), or 0 for a free one"
            ) from None
        stack.push_async_callback(listener.close)
        uris[name] = listener.uri
    return uris
