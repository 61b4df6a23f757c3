"""The MSGin5G Server's PSK-TLS 1.2 listener against the msgin5g UE and plain OpenSSL clients."""

import asyncio
import logging
import ssl
from dataclasses import dataclass

import pytest

from af_helpers import (
    AF_FQDN,
    LOOPBACK,
    AanfStub,
    CmStub,
    make_a_kid,
    make_k_akma,
    serving,
    supi_for,
)
from msgin5g.crypto.akma import UA_TLS13, af_id, k_af, ua_tls12
from msgin5g.sbi.client import SbiClient
from msgin5g.service import messages
from msgin5g.service.authorization import CmClient, RegistrationAuthorizer
from msgin5g.service.channel import (
    FINISHED_CAUSE,
    ChannelError,
    SecureChannel,
    exchange_over_tls12,
    exchange_over_tls13,
)
from msgin5g.service.config import Limits
from msgin5g.service.kaf import AanfClient, KafProvider
from msgin5g.service.registration import RegistrationService
from msgin5g.service.server import start_tls12_listener, start_tls13_listener
from msgin5g.service.store import RegistrationStore
from msgin5g.ua.alerts import AlertDescription, alert_from_ssl_error

SERVER_LOGGER = "msgin5g.service.server"


@dataclass
class Deployment:
    aanf: AanfStub
    cm: CmStub
    kaf: KafProvider
    store: RegistrationStore
    service: RegistrationService
    port: int

    async def connect(self, number: int, **options) -> SecureChannel:
        return await SecureChannel.connect_tls12(
            LOOPBACK, self.port, options.pop("fqdn", AF_FQDN), make_a_kid(number),
            options.pop("k_akma", make_k_akma(number)), **options,
        )

    def requested_ua_ids(self) -> list[str]:
        return [request["afId"].split(";ua-protocol-id=")[1] for request in self.aanf.requests]


@pytest.fixture
async def deployment(tmp_path):
    aanf, cm = AanfStub(), CmStub()
    for number in (1, 2):
        aanf.add_ue(number)
        cm.associate(supi_for(number), f"ue-svc-{number}")
    async with (
        serving(aanf.app) as aanf_uri,
        serving(cm.app) as cm_uri,
        SbiClient(aanf_uri) as aanf_sbi,
        SbiClient(cm_uri) as cm_sbi,
    ):
        store = await RegistrationStore(tmp_path / "tls12.sqlite").open()
        kaf = KafProvider(AF_FQDN, AanfClient(aanf_sbi))
        service = RegistrationService(RegistrationAuthorizer(CmClient(cm_sbi)), store)
        listener = await start_tls12_listener(
            LOOPBACK, 0, kaf=kaf, service=service, limits=Limits(handshake_timeout=10)
        )
        try:
            port = int(listener.uri.rsplit(":", 1)[1])
            yield Deployment(aanf, cm, kaf, store, service, port)
        finally:
            await listener.close()
            await kaf.aclose()
            await store.close()


def rejections(caplog) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == SERVER_LOGGER and " rejected: " in record.getMessage()
    ]


async def plain_client_error(port: int, identity: str, key: bytes) -> ssl.SSLError:
    """Run a plain OpenSSL TLS 1.2 PSK client with any identity; return its handshake error."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("PSK-AES128-GCM-SHA256")
    context.set_psk_client_callback(lambda hint: (identity, key))
    with pytest.raises(ssl.SSLError) as raised:
        async with asyncio.timeout(10):
            _, writer = await asyncio.open_connection(
                LOOPBACK, port, ssl=context, server_hostname=AF_FQDN
            )
            writer.close()
    return raised.value


@pytest.mark.parametrize(
    "suite, code",
    [
        ("PSK-AES128-GCM-SHA256", 0x00A8),
        ("ECDHE-PSK-AES128-CBC-SHA256", 0xC037),
        ("ECDHE-PSK-CHACHA20-POLY1305", 0xCCAC),
    ],
)
async def test_register_with_suite_specific_k_af(deployment, suite, code):
    channel = await deployment.connect(1, cipher_suites=(suite,))
    try:
        result = await channel.register("ue-svc-1")
    finally:
        await channel.close()

    assert result.accepted
    assert channel.tls_cipher_suite == code
    assert deployment.requested_ua_ids() == [ua_tls12(code).hex()]


async def test_two_suites_give_two_k_af(deployment):
    for suite in ("PSK-AES128-GCM-SHA256", "ECDHE-PSK-CHACHA20-POLY1305"):
        channel = await deployment.connect(1, cipher_suites=(suite,))
        await channel.close()

    entries = [deployment.kaf.lookup(make_a_kid(1), ua_tls12(code)) for code in (0x00A8, 0xCCAC)]
    assert entries[0].k_af == k_af(make_k_akma(1), af_id(AF_FQDN, ua_tls12(0x00A8)))
    assert entries[1].k_af == k_af(make_k_akma(1), af_id(AF_FQDN, ua_tls12(0xCCAC)))
    assert entries[0].k_af != entries[1].k_af


async def test_exchange_over_tls12(deployment):
    result = await exchange_over_tls12(
        LOOPBACK,
        deployment.port,
        AF_FQDN,
        make_a_kid(2),
        make_k_akma(2),
        messages.RegistrationRequest("ue-svc-2"),
    )

    assert result.accepted
    assert await deployment.store.get("ue-svc-2") is not None


async def test_unknown_a_kid_refused(deployment, caplog):
    with pytest.raises(ChannelError) as raised:
        await deployment.connect(55)

    assert raised.value.alert is AlertDescription.unknown_psk_identity
    assert "does not know this A-KID" in raised.value.cause
    assert any("rejected: unknown A-KID" in line for line in rejections(caplog))


async def test_wrong_k_akma_fails_finished(deployment, caplog):
    with pytest.raises(ChannelError) as raised:
        await deployment.connect(1, k_akma=make_k_akma(9), cipher_suites=("PSK-AES128-GCM-SHA256",))

    assert raised.value.alert is AlertDescription.bad_record_mac
    assert raised.value.cause == FINISHED_CAUSE
    assert any("client Finished failed" in line for line in rejections(caplog))


async def test_wrong_fqdn_logged_with_sni(deployment, caplog):
    caplog.set_level(logging.INFO, logger=SERVER_LOGGER)

    with pytest.raises(ChannelError):
        await deployment.connect(1, fqdn="other.example.test")

    assert any("SNI 'other.example.test'" in line for line in rejections(caplog))


async def test_empty_identity_refused(deployment, caplog):
    error = await plain_client_error(deployment.port, "", bytes(32))

    assert alert_from_ssl_error(error) is AlertDescription.unknown_psk_identity
    assert any("rejected: empty PSK identity" in line for line in rejections(caplog))
    assert deployment.aanf.requests == []


async def test_identity_without_prefix_refused(deployment, caplog):
    error = await plain_client_error(deployment.port, make_a_kid(1), bytes(32))

    assert alert_from_ssl_error(error) is AlertDescription.unknown_psk_identity
    assert any("lacks the 3GPP-AKMA prefix" in line for line in rejections(caplog))


async def test_long_a_kid_rejected_clearly(deployment, caplog):
    """An identity of over 128 octets reaches the server, which names why it refuses it."""
    long_a_kid = "rid0.atid" + "A" * 150 + "@5gc.mnc001.mcc001.3gppnetwork.org"

    error = await plain_client_error(deployment.port, "3GPP-AKMA" + long_a_kid, bytes(32))

    assert alert_from_ssl_error(error) is AlertDescription.unknown_psk_identity
    assert any("malformed A-KID" in line for line in rejections(caplog))


async def test_tls13_only_client_refused(deployment, caplog):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.set_psk_client_callback(lambda hint: ("3GPP-AKMA" + make_a_kid(1), bytes(32)))

    with pytest.raises(ssl.SSLError):
        async with asyncio.timeout(10):
            await asyncio.open_connection(LOOPBACK, deployment.port, ssl=context, server_hostname=AF_FQDN)

    assert any("client does not offer TLS 1.2" in line for line in rejections(caplog))


async def test_delayed_a_kid_does_not_block_others(deployment):
    """While the AAnF holds the response for UE 1, UE 2 completes a whole registration."""
    a_kid_1 = make_a_kid(1)
    release = deployment.aanf.hold.setdefault(a_kid_1, asyncio.Event())
    order: list[str] = []

    async def register(number: int) -> bool:
        channel = await deployment.connect(number)
        try:
            result = await channel.register(f"ue-svc-{number}")
        finally:
            await channel.close()
        order.append(f"ue {number}")
        return result.accepted

    first = asyncio.create_task(register(1))
    async with asyncio.timeout(10):
        await deployment.aanf.requested_event(a_kid_1).wait()
    second_accepted = await register(2)
    order.append("release")
    release.set()
    first_accepted = await first

    assert second_accepted
    assert first_accepted
    assert order == ["ue 2", "release", "ue 1"]


async def test_listener_rejects_unknown_suite_option(deployment):
    with pytest.raises(ValueError, match="NO-SUCH-SUITE"):
        await start_tls12_listener(
            LOOPBACK,
            0,
            kaf=deployment.kaf,
            service=None,
            limits=Limits(),
            cipher_suites=("NO-SUCH-SUITE",),
        )


async def test_tls13_listener_and_exchange(deployment):
    """The TLS 1.3 seam next to the TLS 1.2 one, sharing the K_AF provider and service."""
    listener = await start_tls13_listener(
        LOOPBACK, 0, kaf=deployment.kaf, service=deployment.service, limits=Limits()
    )
    try:
        port = int(listener.uri.rsplit(":", 1)[1])
        result = await exchange_over_tls13(
            LOOPBACK, port, AF_FQDN, make_a_kid(1), make_k_akma(1),
            messages.RegistrationRequest("ue-svc-1"),
        )
    finally:
        await listener.close()

    assert result.accepted
    assert deployment.requested_ua_ids() == [UA_TLS13.hex()]
