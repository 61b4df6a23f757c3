"""A new DTLS handshake from the address of an existing session (RFC 6347 clause 4.2.8).

The client here drives its engine over one UDP socket bound to one local
port, as a UE that reconnects from the same port does. A new handshake must
complete without a single retransmission: before this was handled, its
ClientHello went to the old session and the client had to wait for its timer.
"""

import asyncio
import logging

from aiocoap.numbers.codes import Code

from af_helpers import AF_FQDN, LOOPBACK, make_k_akma
from msgin5g.coap import udp
from msgin5g.service import messages
from msgin5g.service.dtls_channel import akma_client_engine
from msgin5g.ua import dtls12_psk as dtls
from test_server_dtls12 import SERVER_LOGGER, SERVICE_ID, deployment  # noqa: F401  (fixture)

HANDSHAKE_TIMEOUT = 10.0


class Receiver(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.inbox.put_nowait(data)


async def open_socket(port: int) -> tuple[asyncio.DatagramTransport, Receiver]:
    loop = asyncio.get_running_loop()
    transport, receiver = await loop.create_datagram_endpoint(Receiver, remote_addr=(LOOPBACK, port))
    return transport, receiver


def flush(engine: dtls.Dtls12PskClient, transport: asyncio.DatagramTransport) -> None:
    for datagram in engine.datagrams_to_send():
        transport.sendto(datagram)


async def handshake(engine: dtls.Dtls12PskClient, transport: asyncio.DatagramTransport, receiver: Receiver) -> None:
    """Run the client side of a handshake on OpenSSL's timers, within HANDSHAKE_TIMEOUT."""
    engine.start()
    flush(engine, transport)
    async with asyncio.timeout(HANDSHAKE_TIMEOUT):
        while engine.state is dtls.State.HANDSHAKING:
            try:
                async with asyncio.timeout(engine.timeout() or 1.0):
                    datagram = await receiver.inbox.get()
            except TimeoutError:
                engine.handle_timeout()
            else:
                engine.receive_datagram(datagram)
            flush(engine, transport)


async def register_over(engine: dtls.Dtls12PskClient, transport: asyncio.DatagramTransport, receiver: Receiver):
    """Send REG as a CON request on an established engine and return the response."""
    request = messages.build_request(messages.RegistrationRequest(SERVICE_ID))
    request.mtype, request.mid, request.token = udp.CON, 77, b"reco"
    engine.send(udp.encode(request))
    flush(engine, transport)
    async with asyncio.timeout(HANDSHAKE_TIMEOUT):
        while True:
            events = engine.receive_datagram(await receiver.inbox.get())
            for event in events:
                if isinstance(event, dtls.DataReceived):
                    return udp.decode(event.data)


async def test_handshake_after_close_notify_same_port(deployment):
    a_kid = deployment.add_ue(21)
    transport, receiver = await open_socket(deployment.port)
    try:
        first = akma_client_engine(AF_FQDN, a_kid, make_k_akma(21))
        await handshake(first, transport, receiver)
        first.close()
        flush(first, transport)

        second = akma_client_engine(AF_FQDN, a_kid, make_k_akma(21))
        await handshake(second, transport, receiver)
    finally:
        transport.close()

    assert first.retransmissions == 0
    assert second.state is dtls.State.ESTABLISHED
    assert second.retransmissions == 0


async def test_new_handshake_replaces_established_session(deployment, caplog):
    caplog.set_level(logging.INFO, logger=SERVER_LOGGER)
    a_kid = deployment.add_ue(22)
    transport, receiver = await open_socket(deployment.port)
    try:
        first = akma_client_engine(AF_FQDN, a_kid, make_k_akma(22))
        await handshake(first, transport, receiver)
        # The UE restarts without close_notify, as after a crash, from the same port.
        second = akma_client_engine(AF_FQDN, a_kid, make_k_akma(22))
        await handshake(second, transport, receiver)
        response = await register_over(second, transport, receiver)
    finally:
        transport.close()

    assert second.retransmissions == 0
    assert response.code == Code.CREATED
    assert deployment.listener.session_count == 1
    assert any("started a new handshake" in record.getMessage() for record in caplog.records)


async def test_client_hello_without_cookie_keeps_session(deployment):
    a_kid = deployment.add_ue(23)
    transport, receiver = await open_socket(deployment.port)
    try:
        first = akma_client_engine(AF_FQDN, a_kid, make_k_akma(23))
        await handshake(first, transport, receiver)
        # A ClientHello with a new random and no cookie: only a HelloVerifyRequest comes back.
        stray = akma_client_engine(AF_FQDN, a_kid, make_k_akma(23))
        stray.start()
        flush(stray, transport)
        async with asyncio.timeout(HANDSHAKE_TIMEOUT):
            reply = await receiver.inbox.get()
        response = await register_over(first, transport, receiver)
    finally:
        transport.close()

    assert dtls.handshake_fragments(reply)[0][1].msg_type == dtls.HANDSHAKE_HELLO_VERIFY_REQUEST
    assert response.code == Code.CREATED
    assert deployment.listener.session_count == 1
