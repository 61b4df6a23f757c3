"""A MSGin5G Server listener with registration and messaging, and UEs that message through it.

The listener runs one Ua* profile on 127.0.0.1 against the AAnF and CM
stand-ins of af_helpers, with its registrations and queued items in one
SQLite file, so that a test can stop it and start it again on that file.
"""

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from af_helpers import AF_FQDN, LOOPBACK, AanfStub, make_a_kid, make_k_akma, supi_for
from msgin5g.sbi.client import SbiClient
from msgin5g.service.authorization import CmClient, RegistrationAuthorizer
from msgin5g.service.config import Limits, MessagingConfig
from msgin5g.service.kaf import AanfClient, KafProvider
from msgin5g.service.message_store import SqliteMessageStore
from msgin5g.service.messaging import MessagingService
from msgin5g.service.messaging_client import MessagingSession
from msgin5g.service.primary_auth import AkmaKeys
from msgin5g.service.registration import RegistrationService
from msgin5g.service.router import Msgin5gRouter
from msgin5g.service.store import RegistrationStore
from msgin5g.service.ue_profile import UeProfile

ALL_PROFILES = ["psk-tls1.3", "psk-tls1.2", "psk-dtls1.2", "https-digest"]
FAST_EXPIRY = MessagingConfig(expiry_interval=0.1)


@dataclass
class MessagingListener:
    profile: str
    host: str
    port: int
    registrations: RegistrationStore
    message_store: SqliteMessageStore
    messaging: MessagingService
    router: Msgin5gRouter
    ca_file: str | None = None


async def _start_listener(tmp_path: Path, profile: str, options: dict) -> tuple[object, str | None]:
    # Imported here because these modules pull in Hypercorn and the DTLS engine.
    from msgin5g.cli.certs import FILE_NAMES, write_certificates
    from msgin5g.service.dtls_server import start_dtls12_listener
    from msgin5g.service.https_server import HttpsDigestOptions, start_https_listener
    from msgin5g.service.server import start_tls12_listener, start_tls13_listener

    if profile == "psk-tls1.3":
        return await start_tls13_listener(LOOPBACK, 0, **options), None
    if profile == "psk-tls1.2":
        return await start_tls12_listener(LOOPBACK, 0, **options), None
    if profile == "psk-dtls1.2":
        return await start_dtls12_listener(LOOPBACK, 0, **options), None
    if profile == "https-digest":
        folder = tmp_path / "certs"
        folder.mkdir(exist_ok=True)
        paths = {name: folder / name for name in FILE_NAMES}
        if not paths["server.pem"].exists():
            write_certificates(paths, [AF_FQDN], days=1)
        https = HttpsDigestOptions(certfile=paths["server.pem"], keyfile=paths["server.key"])
        return await start_https_listener(LOOPBACK, 0, options=https, **options), str(paths["ca.pem"])
    raise ValueError(f"unknown security profile {profile!r}")


@contextlib.asynccontextmanager
async def messaging_listener(
    tmp_path: Path,
    profile: str,
    aanf_uri: str,
    cm_uri: str,
    *,
    database: Path | None = None,
    config: MessagingConfig = FAST_EXPIRY,
    max_message_size: int = Limits().max_message_size,
) -> AsyncIterator[MessagingListener]:
    """Run the listener of `profile` with REG, DEREG, MSG, IMDN and INBOX on `database`."""
    database = database or tmp_path / "server.sqlite"
    async with SbiClient(aanf_uri) as aanf_sbi, SbiClient(cm_uri) as cm_sbi:
        registrations = await RegistrationStore(database).open()
        message_store = await SqliteMessageStore(database).open()
        kaf = KafProvider(AF_FQDN, AanfClient(aanf_sbi))
        registration = RegistrationService(RegistrationAuthorizer(CmClient(cm_sbi)), registrations)
        messaging = MessagingService(registrations, message_store, config)
        router = Msgin5gRouter(registration.routes())
        router.add_routes(messaging.routes())
        messaging.start()

        limits = Limits(handshake_timeout=10, max_message_size=max_message_size)
        options = {"kaf": kaf, "service": router, "limits": limits}
        listener, ca_file = await _start_listener(tmp_path, profile, options)
        port = int(listener.uri.rsplit(":", 1)[1])
        try:
            yield MessagingListener(
                profile, LOOPBACK, port, registrations, message_store, messaging, router, ca_file
            )
        finally:
            await listener.close()
            await messaging.stop()
            await kaf.aclose()
            await message_store.close()
            await registrations.close()


def ue_profile(listener: MessagingListener, number: int, ue_service_id: str) -> UeProfile:
    return UeProfile(
        supi=supi_for(number),
        k=bytes(16),
        opc=bytes(16),
        mcc="001",
        mnc="01",
        routing_indicator="0",
        ue_service_id=ue_service_id,
        ausf_uri="http://127.0.0.1:9",
        server_host=listener.host,
        server_port=listener.port,
        server_fqdn=AF_FQDN,
        security_profile=listener.profile,
        ca_file=listener.ca_file,
    )


def fixed_keys(number: int):
    """Return an authenticator that replaces primary authentication for test UE `number`."""

    async def authenticate(http: httpx.AsyncClient, profile: UeProfile, usim: object) -> AkmaKeys:
        return AkmaKeys(supi=supi_for(number), a_kid=make_a_kid(number), k_akma=make_k_akma(number))

    return authenticate


@contextlib.asynccontextmanager
async def ue_session(
    aanf: AanfStub, listener: MessagingListener, number: int, ue_service_id: str
) -> AsyncIterator[MessagingSession]:
    """Open the messaging session of test UE `number`, whose AKMA context the AAnF stores."""
    aanf.add_ue(number)
    async with httpx.AsyncClient() as http:
        session = MessagingSession(
            http, ue_profile(listener, number, ue_service_id), object(), authenticator=fixed_keys(number)
        )
        async with session:
            yield session
