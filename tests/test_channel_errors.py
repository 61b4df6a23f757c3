"""The UE-side channel: causes for TLS alerts and misbehaving servers.

The servers here are small scripted TLS 1.3 PSK servers built from Python's ssl
module and this project's CoAP framing, so each can misbehave in one way.
"""

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable

import pytest
from aiocoap import Message
from aiocoap.numbers.codes import Code

from af_helpers import AF_FQDN, LOOPBACK, certificate_server_context, make_a_kid
from msgin5g.coap.tcp import CoapTcpConnection, MessageReceived
from msgin5g.service.channel import ChannelError, SecureChannel, cause_for_alert
from msgin5g.ua.alerts import AlertDescription

K_AF = bytes(range(32))
A_KID = make_a_kid(1)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def psk_server_context(*, alpn: bool = True) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.num_tickets = 0
    context.set_psk_server_callback(lambda identity: K_AF)
    if alpn:
        context.set_alpn_protocols(["coap"])
    return context


@contextlib.asynccontextmanager
async def scripted_server(handler: Handler, context: ssl.SSLContext | None = None):
    server = await asyncio.start_server(handler, LOOPBACK, 0, ssl=context or psk_server_context())
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                await server.wait_closed()


async def coap_session(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    on_request: Callable[[CoapTcpConnection, Message], None],
    *,
    send_csm: bool = True,
) -> None:
    """Run a CoAP-over-TLS server loop that hands each request to `on_request`."""
    connection = CoapTcpConnection()
    if send_csm:
        writer.write(connection.data_to_send())
    else:
        connection.data_to_send()
    try:
        while not connection.closed:
            data = await reader.read(65536)
            if not data:
                break
            for event in connection.receive_data(data):
                if isinstance(event, MessageReceived):
                    on_request(connection, event.message)
            writer.write(connection.data_to_send())
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("alert", "cause"),
    [
        (
            AlertDescription.unknown_psk_identity,
            "the server's AAnF does not know this A-KID (run primary authentication again, and check "
            "that the UE's home network MCC, MNC and routing indicator match the core's)",
        ),
        (
            AlertDescription.decrypt_error,
            "the PSK binder did not verify: K_AF differs (wrong AF FQDN or stale K_AKMA)",
        ),
        (
            AlertDescription.illegal_parameter,
            "illegal_parameter: most likely the PSK binder did not verify: K_AF differs "
            "(wrong AF FQDN or stale K_AKMA)",
        ),
        (AlertDescription.handshake_failure, "handshake_failure"),
        (AlertDescription.protocol_version, "protocol_version"),
    ],
)
def test_alert_causes(alert, cause):
    assert cause_for_alert(alert) == cause


async def test_k_af_must_be_32_octets():
    with pytest.raises(ValueError, match="k_af must be 32 octets"):
        await SecureChannel.connect(LOOPBACK, 1, AF_FQDN, A_KID, bytes(16))


async def test_malformed_a_kid_refused_before_connecting():
    with pytest.raises(ValueError, match="invalid a_kid"):
        await SecureChannel.connect(LOOPBACK, 1, AF_FQDN, "not-an-a-kid", K_AF)


async def test_connection_refused():
    async with scripted_server(lambda reader, writer: None) as port:
        pass

    with pytest.raises(ChannelError, match=f"cannot connect to 127.0.0.1:{port}"):
        await SecureChannel.connect(LOOPBACK, port, AF_FQDN, A_KID, K_AF)


async def test_request_and_release_by_server():
    def answer_then_release(connection: CoapTcpConnection, request: Message) -> None:
        response = Message(code=Code.CONTENT, payload=b"ok")
        response.token = request.token
        connection.send_message(response)
        connection.send_release("maintenance window")

    async def handler(reader, writer):
        await coap_session(reader, writer, answer_then_release)

    async with scripted_server(handler) as port:
        async with SecureChannel.open(LOOPBACK, port, AF_FQDN, A_KID, K_AF) as channel:
            response = await channel.request(Message(code=Code.GET, uri_path=("x",)))
            async with asyncio.timeout(10):
                reason = await channel.wait_closed()

            with pytest.raises(ChannelError, match="maintenance window"):
                await channel.request(Message(code=Code.GET, uri_path=("x",)))

    assert response.payload == b"ok"
    assert reason == "the server released the connection: maintenance window"


async def test_pending_request_fails_when_server_aborts():
    def abort(connection: CoapTcpConnection, request: Message) -> None:
        connection.send_abort("cannot continue")

    async def handler(reader, writer):
        await coap_session(reader, writer, abort)

    async with scripted_server(handler) as port:
        async with SecureChannel.open(LOOPBACK, port, AF_FQDN, A_KID, K_AF) as channel:
            with pytest.raises(ChannelError, match="the server aborted the connection: cannot continue"):
                await channel.request(Message(code=Code.GET, uri_path=("x",)))


async def test_request_from_server_gets_not_implemented():
    answers: asyncio.Queue[Message] = asyncio.Queue()

    async def handler(reader, writer):
        connection = CoapTcpConnection()
        request = Message(code=Code.GET, uri_path=("ue",))
        request.token = b"\x07"
        connection.send_message(request)
        writer.write(connection.data_to_send())
        while True:
            data = await reader.read(65536)
            if not data:
                break
            for event in connection.receive_data(data):
                if isinstance(event, MessageReceived):
                    await answers.put(event.message)
        writer.close()

    async with scripted_server(handler) as port:
        async with SecureChannel.open(LOOPBACK, port, AF_FQDN, A_KID, K_AF):
            async with asyncio.timeout(10):
                answer = await answers.get()

    assert answer.code == Code.NOT_IMPLEMENTED
    assert answer.token == b"\x07"


async def test_server_without_csm():
    async def handler(reader, writer):
        await coap_session(reader, writer, lambda connection, request: None, send_csm=False)

    async with scripted_server(handler) as port:
        with pytest.raises(ChannelError, match="the server sent no CSM within 0.5 s"):
            await SecureChannel.connect(LOOPBACK, port, AF_FQDN, A_KID, K_AF, timeout=0.5)


async def test_non_msgin5g_answer_to_reg():
    def plain(connection: CoapTcpConnection, request: Message) -> None:
        response = Message(code=Code.NOT_FOUND, payload=b"nothing here")
        response.token = request.token
        connection.send_message(response)

    async def handler(reader, writer):
        await coap_session(reader, writer, plain)

    async with scripted_server(handler) as port:
        async with SecureChannel.open(LOOPBACK, port, AF_FQDN, A_KID, K_AF) as channel:
            with pytest.raises(ChannelError, match="4.04 Not Found without an MSGin5G-1 JSON body"):
                await channel.register("ue-svc-1")


async def test_server_without_alpn_refused():
    async def handler(reader, writer):
        await coap_session(reader, writer, lambda connection, request: None)

    async with scripted_server(handler, psk_server_context(alpn=False)) as port:
        with pytest.raises(ChannelError, match="did not select ALPN 'coap'"):
            await SecureChannel.connect(LOOPBACK, port, AF_FQDN, A_KID, K_AF)


async def test_certificate_server_refused(tmp_path):
    """A server that declines the PSK and authenticates with a certificate is not accepted."""

    async def handler(reader, writer):
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await reader.read()
        writer.close()

    async with scripted_server(handler, certificate_server_context(tmp_path, alpn=True)) as port:
        with pytest.raises(ChannelError, match="presented a certificate instead of accepting the AKMA PSK"):
            await SecureChannel.connect(LOOPBACK, port, AF_FQDN, A_KID, K_AF)
