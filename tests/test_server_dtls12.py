"""The MSGin5G Server over PSK-DTLS 1.2: REG over coaps://, rejections and their reasons."""

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiocoap.numbers.codes import Code

from af_helpers import AF_FQDN, LOOPBACK, AanfStub, CmStub, make_k_akma, serving, supi_for
from msgin5g.coap import udp
from msgin5g.sbi.client import SbiClient
from msgin5g.service import messages
from msgin5g.service.authorization import CmClient, RegistrationAuthorizer
from msgin5g.service.channel import ChannelError
from msgin5g.service.config import Limits
from msgin5g.service.dtls_channel import (
    DtlsClientSession,
    akma_client_engine,
    exchange_over_dtls12,
)
from msgin5g.service.dtls_server import DtlsListener, DtlsOptions, start_dtls12_listener
from msgin5g.service.kaf import AanfClient, KafProvider
from msgin5g.service.registration import RegistrationService
from msgin5g.service.store import RegistrationStore
from msgin5g.ua import dtls12_psk as dtls
from msgin5g.ua.alerts import AlertDescription

SERVER_LOGGER = "msgin5g.service.dtls_server"
SERVICE_ID = "ue-service-1"


@dataclass
class DtlsDeployment:
    aanf: AanfStub
    cm: CmStub
    listener: DtlsListener
    port: int

    def add_ue(self, number: int) -> str:
        a_kid = self.aanf.add_ue(number)
        self.cm.associate(supi_for(number), SERVICE_ID)
        return a_kid


@contextlib.asynccontextmanager
async def dtls_deployment_for(tmp_path, **options: object) -> AsyncIterator[DtlsDeployment]:
    """AAnF and CM stubs and a DTLS listener on 127.0.0.1 with a free port."""
    aanf, cm = AanfStub(), CmStub()
    async with serving(aanf.app) as aanf_uri, serving(cm.app) as cm_uri:
        async with SbiClient(aanf_uri) as aanf_sbi, SbiClient(cm_uri) as cm_sbi:
            store = await RegistrationStore(tmp_path / "dtls.sqlite").open()
            kaf = KafProvider(AF_FQDN, AanfClient(aanf_sbi))
            service = RegistrationService(RegistrationAuthorizer(CmClient(cm_sbi)), store)
            limits = Limits(handshake_timeout=options.pop("handshake_timeout", 10.0))
            listener = await start_dtls12_listener(
                LOOPBACK, 0, kaf=kaf, service=service, limits=limits, **options
            )
            port = int(listener.uri.rsplit(":", 1)[1])
            try:
                yield DtlsDeployment(aanf, cm, listener, port)
            finally:
                await listener.close()
                await kaf.aclose()
                await store.close()


@pytest.fixture
async def deployment(tmp_path) -> AsyncIterator[DtlsDeployment]:
    async with dtls_deployment_for(tmp_path) as deployment:
        yield deployment


def rejections(caplog) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == SERVER_LOGGER and " rejected: " in record.getMessage()
    ]


async def register(deployment: DtlsDeployment, a_kid: str, k_akma: bytes, **options) -> messages.RegistrationResult:
    return await exchange_over_dtls12(
        LOOPBACK,
        deployment.port,
        AF_FQDN,
        a_kid,
        k_akma,
        messages.RegistrationRequest(SERVICE_ID),
        **options,
    )


def engine_with_identity(identity: bytes) -> dtls.Dtls12PskClient:
    return dtls.Dtls12PskClient(identity, lambda suite: bytes(32))


async def test_reg_accepted(deployment):
    a_kid = deployment.add_ue(1)

    result = await register(deployment, a_kid, make_k_akma(1))

    assert result.accepted
    assert result.code == Code.CREATED


async def test_dereg_accepted(deployment):
    a_kid = deployment.add_ue(2)
    await register(deployment, a_kid, make_k_akma(2))

    result = await exchange_over_dtls12(
        LOOPBACK, deployment.port, AF_FQDN, a_kid, make_k_akma(2),
        messages.DeregistrationRequest(SERVICE_ID),
    )

    assert result.code == Code.DELETED


async def test_kaf_for_negotiated_suite(deployment):
    a_kid = deployment.add_ue(3)

    await register(deployment, a_kid, make_k_akma(3))

    assert deployment.aanf.requests[0]["afId"] == f"{AF_FQDN};ua-protocol-id=010001c0a8"


async def test_unknown_a_kid(deployment, caplog):
    caplog.set_level(logging.INFO)
    unknown = deployment.aanf.add_ue(4)
    del deployment.aanf.contexts[unknown]

    with pytest.raises(ChannelError) as error:
        await register(deployment, unknown, make_k_akma(4))

    assert error.value.alert is AlertDescription.unknown_psk_identity
    assert any(
        re.fullmatch(
            r"DTLS session [0-9a-f]{8} from 127\.0\.0\.1 rejected: unknown A-KID "
            r"\(alert unknown_psk_identity\)",
            line,
        )
        for line in rejections(caplog)
    )


async def test_empty_identity(deployment, caplog):
    caplog.set_level(logging.INFO)

    with pytest.raises(ChannelError) as error:
        async with DtlsClientSession(LOOPBACK, deployment.port, engine_with_identity(b"")):
            pass

    assert error.value.alert is AlertDescription.unknown_psk_identity
    assert any("rejected: empty PSK identity" in line for line in rejections(caplog))


async def test_long_identity_rejected(deployment, caplog):
    caplog.set_level(logging.INFO)
    identity = dtls.AKMA_IDENTITY_PREFIX + b"rid0.atid" + b"A" * 150 + b"@5gc.mnc001.mcc001.3gppnetwork.org"

    with pytest.raises(ChannelError) as error:
        async with DtlsClientSession(LOOPBACK, deployment.port, engine_with_identity(identity)):
            pass

    assert error.value.alert is AlertDescription.unknown_psk_identity
    assert any("rejected: malformed A-KID" in line for line in rejections(caplog))


async def test_wrong_key_names_causes(deployment):
    a_kid = deployment.add_ue(5)

    with pytest.raises(ChannelError) as error:
        await register(deployment, a_kid, make_k_akma(99), max_retransmissions=1)

    assert "likely causes are a wrong K_AF" in error.value.cause
    assert "A-KID that the server's AAnF does not know" in error.value.cause


async def test_no_state_before_cookie(deployment):
    engine = engine_with_identity(b"3GPP-AKMAx")
    engine.start()
    loop = asyncio.get_running_loop()
    replies: asyncio.Queue[bytes] = asyncio.Queue()

    class Receiver(asyncio.DatagramProtocol):
        def datagram_received(self, data, addr):
            replies.put_nowait(data)

    transport, _ = await loop.create_datagram_endpoint(Receiver, remote_addr=(LOOPBACK, deployment.port))
    try:
        for datagram in engine.datagrams_to_send():
            transport.sendto(datagram)
        async with asyncio.timeout(5):
            reply = await replies.get()
    finally:
        transport.close()

    assert dtls.handshake_fragments(reply)[0][1].msg_type == dtls.HANDSHAKE_HELLO_VERIFY_REQUEST
    assert deployment.listener.session_count == 0


async def test_coap_retransmission_answered_once(deployment):
    a_kid = deployment.add_ue(6)
    engine = akma_client_engine(AF_FQDN, a_kid, make_k_akma(6))
    request = messages.build_request(messages.RegistrationRequest(SERVICE_ID))
    request.mtype, request.mid, request.token = udp.CON, 4242, b"tokn"
    octets = udp.encode(request)

    async with DtlsClientSession(LOOPBACK, deployment.port, engine) as session:
        replies = []
        for _ in range(2):
            engine.send(octets)
            session._flush()
            replies.append(await session._await_response(request, asyncio.get_running_loop().time() + 5, False))

    assert [reply.code for reply, _ in replies] == [Code.CREATED, Code.CREATED]
    assert len(deployment.cm.queries) == 1


async def test_aanf_delay_not_blocking(deployment):
    delayed = deployment.add_ue(7)
    other = deployment.add_ue(8)
    release = asyncio.Event()
    deployment.aanf.hold[delayed] = release
    order: list[str] = []

    async def held_client() -> None:
        await register(deployment, delayed, make_k_akma(7))
        order.append("delayed")

    task = asyncio.create_task(held_client())
    await deployment.aanf.requested_event(delayed).wait()
    await register(deployment, other, make_k_akma(8))
    order.append("other")
    release.set()
    await task

    assert order == ["other", "delayed"]


async def test_close_ends_sessions(deployment):
    a_kid = deployment.add_ue(9)
    await register(deployment, a_kid, make_k_akma(9))

    await deployment.listener.close()

    assert deployment.listener.session_count == 0


async def test_non_request_gets_non_response(deployment):
    a_kid = deployment.add_ue(10)
    engine = akma_client_engine(AF_FQDN, a_kid, make_k_akma(10))
    request = messages.build_request(messages.RegistrationRequest(SERVICE_ID))
    request.mtype, request.mid, request.token = udp.NON, 7, b"nonr"

    async with DtlsClientSession(LOOPBACK, deployment.port, engine) as session:
        engine.send(udp.encode(request))
        session._flush()
        reply, _ = await session._await_response(request, asyncio.get_running_loop().time() + 5, False)

    assert reply.mtype == udp.NON



async def test_handshake_cap(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    async with dtls_deployment_for(tmp_path, max_handshakes=1) as deployment:
        delayed, other = deployment.add_ue(11), deployment.add_ue(12)
        release = asyncio.Event()
        deployment.aanf.hold[delayed] = release
        task = asyncio.create_task(register(deployment, delayed, make_k_akma(11)))
        await deployment.aanf.requested_event(delayed).wait()

        with pytest.raises(ChannelError) as error:
            await register(deployment, other, make_k_akma(12), max_retransmissions=0)
        release.set()
        await task

    assert error.value.cause.startswith("no DTLS answer from 127.0.0.1:")
    assert any("handshakes are in progress (max_handshakes)" in r.getMessage() for r in caplog.records)


async def test_idle_session_closed(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    async with dtls_deployment_for(tmp_path, idle_timeout=0.2) as deployment:
        a_kid = deployment.add_ue(13)
        engine = akma_client_engine(AF_FQDN, a_kid, make_k_akma(13))
        async with DtlsClientSession(LOOPBACK, deployment.port, engine):
            for _ in range(50):  # The session stays silent; the server ends it.
                if deployment.listener.session_count == 0:
                    break
                await asyncio.sleep(0.1)

    assert any(r.getMessage().endswith("closed: no datagram for 0.2 s") for r in caplog.records)


def test_options_reject_small_mtu():
    with pytest.raises(ValueError, match="mtu"):
        DtlsOptions(mtu=100)


async def test_reg_with_small_mtu(tmp_path):
    async with dtls_deployment_for(tmp_path, mtu=256) as deployment:
        a_kid = deployment.add_ue(14)

        result = await register(deployment, a_kid, make_k_akma(14), mtu=256)

    assert result.code == Code.CREATED
