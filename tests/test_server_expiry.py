"""The MSGin5G Server ends a session keyed by a K_AF at that K_AF's expiry, in every profile."""

import asyncio
import json
import logging
import ssl
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from af_helpers import (
    AF_FQDN,
    AanfStub,
    CmStub,
    ProfileListener,
    make_k_akma,
    running_listener,
    serving,
    supi_for,
)
from msgin5g.crypto.akma import UA_TLS13, af_id, k_af
from msgin5g.service import messages
from msgin5g.service.channel import ChannelError, SecureChannel
from msgin5g.service.dtls_channel import DtlsClientSession, akma_client_engine
from msgin5g.service.https_server import KafExpiries
from msgin5g.ua import digest

SERVICE_ID = "ue-service-1"
LIFETIME = timedelta(seconds=1.5)
REG_PATH = "/msgin5g/v1/registrations"
DEADLINE_SECONDS = 20


class Stubs:
    def __init__(self) -> None:
        self.aanf = AanfStub()
        self.cm = CmStub()

    def add_ue(self, number: int, lifetime: timedelta = LIFETIME) -> str:
        self.cm.associate(supi_for(number), SERVICE_ID)
        return self.aanf.add_ue(number, lifetime=lifetime)


@pytest.fixture
async def stubs() -> AsyncIterator[tuple[Stubs, str, str]]:
    stubs = Stubs()
    async with serving(stubs.aanf.app) as aanf_uri, serving(stubs.cm.app) as cm_uri:
        yield stubs, aanf_uri, cm_uri


def log_messages(caplog, logger_name: str) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == logger_name]


# CoAP over TLS


@pytest.mark.parametrize("profile", ["psk-tls1.3", "psk-tls1.2"])
async def test_tls_channel_released_at_expiry(tmp_path, stubs, caplog, profile):
    caplog.set_level(logging.INFO)
    stubs, aanf_uri, cm_uri = stubs
    a_kid = stubs.add_ue(1)

    async with running_listener(tmp_path, profile, aanf_uri, cm_uri) as listener:
        channel = await connect_tls(listener, a_kid, 1)
        try:
            registered = await channel.register(SERVICE_ID)
            async with asyncio.timeout(DEADLINE_SECONDS):
                reason = await channel.wait_closed()
            with pytest.raises(ChannelError) as after:
                await channel.register(SERVICE_ID)
        finally:
            await channel.close()

    assert registered.accepted
    assert reason.startswith("the server released the connection: K_AF expired at")
    assert "run primary authentication again" in reason
    assert "K_AF expired" in after.value.cause
    assert any("closed: its K_AF expired" in text for text in log_messages(caplog, "msgin5g.service.server"))


async def connect_tls(listener: ProfileListener, a_kid: str, number: int) -> SecureChannel:
    if listener.profile == "psk-tls1.2":
        return await SecureChannel.connect_tls12(
            listener.host, listener.port, AF_FQDN, a_kid, make_k_akma(number)
        )
    key = k_af(make_k_akma(number), af_id(AF_FQDN, UA_TLS13))
    return await SecureChannel.connect(listener.host, listener.port, AF_FQDN, a_kid, key)


async def test_tls_channel_open_before_expiry(tmp_path, stubs):
    stubs, aanf_uri, cm_uri = stubs
    a_kid = stubs.add_ue(1, lifetime=timedelta(hours=1))

    async with running_listener(tmp_path, "psk-tls1.3", aanf_uri, cm_uri) as listener:
        channel = await connect_tls(listener, a_kid, 1)
        try:
            await asyncio.sleep(LIFETIME.total_seconds() + 0.5)
            closed = channel.closed
        finally:
            await channel.close()

    assert not closed


# CoAP over DTLS


async def test_dtls_session_closed_at_expiry(tmp_path, stubs, caplog):
    caplog.set_level(logging.INFO)
    stubs, aanf_uri, cm_uri = stubs
    a_kid = stubs.add_ue(1)

    async with running_listener(tmp_path, "psk-dtls1.2", aanf_uri, cm_uri) as listener:
        engine = akma_client_engine(AF_FQDN, a_kid, make_k_akma(1))
        async with DtlsClientSession(listener.host, listener.port, engine, af_fqdn=AF_FQDN) as session:
            first = await session.request(messages.build_request(messages.RegistrationRequest(SERVICE_ID)))
            await asyncio.sleep(LIFETIME.total_seconds() + 1.0)
            with pytest.raises(ChannelError) as after:
                await session.request(messages.build_request(messages.RegistrationRequest(SERVICE_ID)))

    assert first.code.is_successful()
    assert "closed the DTLS session" in after.value.cause
    assert any(
        "closed: its K_AF expired" in text for text in log_messages(caplog, "msgin5g.service.dtls_server")
    )


# HTTPS with Digest


class DigestClient:
    """Sends REG with Digest credentials, reusing one nonce with a growing nc as a UE may."""

    def __init__(self, listener: ProfileListener, client: httpx.AsyncClient, number: int, a_kid: str) -> None:
        self._listener = listener
        self._client = client
        self._number = number
        self._a_kid = a_kid
        self._challenge: digest.Challenge | None = None
        self._nc = 0

    async def post(self, authorization: str | None = None) -> httpx.Response:
        headers = {
            "Host": f"{AF_FQDN}:{self._listener.port}",
            "Content-Type": "application/json",
            "User-Agent": "test 3gpp-akma/1",
        }
        if authorization is not None:
            headers["Authorization"] = authorization
        body = json.dumps({"messageType": "REG", "ueServiceId": SERVICE_ID}).encode()
        return await self._client.post(
            f"https://{self._listener.host}:{self._listener.port}{REG_PATH}",
            content=body,
            headers=headers,
            extensions={"sni_hostname": AF_FQDN},
        )

    def take_challenge(self, response: httpx.Response) -> None:
        self._challenge = digest.parse_challenges(response.headers.get_list("www-authenticate"))[0]
        self._nc = 0

    async def answer(self, response: httpx.Response) -> httpx.Response:
        """POST with credentials for the current challenge and the cipher suite of `response`."""
        ssl_object = response.extensions["network_stream"].get_extra_info("ssl_object")
        ua_protocol_id = digest.ua_protocol_id_for_cipher(ssl_object.cipher()[0])
        key = k_af(make_k_akma(self._number), af_id(AF_FQDN, ua_protocol_id))
        self._nc += 1
        credentials = digest.answer_challenge(
            self._challenge,
            username=self._a_kid,
            password=digest.digest_password(key),
            method="POST",
            uri=REG_PATH,
            nc=self._nc,
        )
        return await self.post(credentials.to_header())


@pytest.fixture
async def https_ue(tmp_path, stubs) -> AsyncIterator[tuple[Stubs, DigestClient, httpx.Response]]:
    """A UE that answered the first challenge; yields the stubs, the UE and that answer."""
    stubs, aanf_uri, cm_uri = stubs
    a_kid = stubs.add_ue(1)
    async with running_listener(tmp_path, "https-digest", aanf_uri, cm_uri) as listener:
        context = ssl.create_default_context(cafile=listener.ca_file)
        async with httpx.AsyncClient(verify=context, http2=True) as client:
            ue = DigestClient(listener, client, 1, a_kid)
            challenge = await ue.post()
            ue.take_challenge(challenge)
            yield stubs, ue, await ue.answer(challenge)


async def test_https_nonce_reused_before_expiry(https_ue):
    stubs, ue, first = https_ue

    again = await ue.answer(first)

    assert first.status_code == 201
    assert again.status_code == 200
    assert len(stubs.aanf.requests) == 1


async def test_https_rechallenge_after_expiry(https_ue, caplog):
    caplog.set_level(logging.INFO)
    stubs, ue, first = https_ue
    await asyncio.sleep(LIFETIME.total_seconds() + 0.5)

    after_expiry = await ue.answer(first)
    ue.take_challenge(after_expiry)
    renewed = await ue.answer(after_expiry)

    assert first.status_code == 201
    assert after_expiry.status_code == 401
    assert "K_AF expired" in after_expiry.text
    assert any("3GPP-bootstrapping-akma" in value for value in after_expiry.headers.get_list("www-authenticate"))
    assert renewed.status_code == 200
    assert len(stubs.aanf.requests) == 2
    assert any(
        "K_AF of this nonce expired" in text for text in log_messages(caplog, "msgin5g.service.https_server")
    )


# The table of nonces and K_AF expiries


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_expiries_first_expiry_kept():
    clock = Clock()
    table = KafExpiries(clock)
    table.remember("nonce", "a-kid", 1010.0)
    table.remember("nonce", "a-kid", 5000.0)
    clock.now = 1010.0

    assert table.expired("nonce", "a-kid") == 1010.0
    assert table.expired("nonce", "a-kid") is None


def test_expiries_valid_before_expiry():
    table = KafExpiries(Clock())
    table.remember("nonce", "a-kid", 1010.0)

    assert table.expired("nonce", "a-kid") is None
    assert len(table) == 1


def test_expiries_full_drops_expired_then_oldest():
    clock = Clock()
    table = KafExpiries(clock, max_entries=2)
    table.remember("n1", "a", 1005.0)
    table.remember("n2", "a", 2000.0)
    clock.now = 1006.0
    table.remember("n3", "a", 2000.0)
    table.remember("n4", "a", 2000.0)

    assert len(table) == 2
    clock.now = 2000.0
    assert table.expired("n2", "a") is None
    assert table.expired("n3", "a") == 2000.0
    assert table.expired("n4", "a") == 2000.0
