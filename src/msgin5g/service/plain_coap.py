"""CoAP listeners (over TCP and over UDP) WITHOUT security, for interoperability tests only.

It handles MSGin5G-1 requests like the secured listeners, but nothing
authenticates the peer: every request is taken as coming from one UE ID
fixed by the caller. It exists so that an independent CoAP
implementation (aiocoap's client) can check this project's RFC 8323 and
RFC 7252 framing and message handling, which TLS and DTLS would otherwise hide. Only tests
start it (no service configuration does), and it listens only on loopback
addresses.
"""

import asyncio
import contextlib
import ipaddress
import logging
import secrets

from aiocoap import Message
from aiocoap.numbers.codes import Code

from msgin5g.coap import tcp as coap
from msgin5g.coap import udp
from msgin5g.service.router import CoapHandler

logger = logging.getLogger(__name__)

READ_SIZE = 65536


class PlainCoapListener:
    """The running listener; `uri` is its coap+tcp:// URI."""

    def __init__(self, server: asyncio.Server, uri: str) -> None:
        self._server = server
        self.uri = uri

    async def close(self) -> None:
        self._server.close()
        await self._server.wait_closed()


def _require_loopback(host: str) -> None:
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(
            f"the unsecured CoAP test listener must bind a loopback address, not {host}; "
            "use 127.0.0.1 or ::1"
        )


def _uri(scheme: str, address: tuple) -> str:
    host, port = address[:2]
    shown_host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown_host}:{port}"


async def start_plain_coap_listener(
    host: str, port: int, *, service: CoapHandler, ue_id: str, max_message_size: int = coap.DEFAULT_MAX_MESSAGE_SIZE
) -> PlainCoapListener:
    """Listen for CoAP over TCP on a loopback HOST:PORT; every request comes from UE_ID."""
    _require_loopback(host)

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _serve_connection(reader, writer, service, ue_id, max_message_size)

    server = await asyncio.start_server(accept, host, port)
    uri = _uri("coap+tcp", server.sockets[0].getsockname())
    logger.warning("unsecured CoAP test listener on %s: for interoperability tests only", uri)
    return PlainCoapListener(server, uri)


async def _serve_connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    service: CoapHandler,
    ue_id: str,
    max_message_size: int,
) -> None:
    connection_id = secrets.token_hex(4)
    connection = coap.CoapTcpConnection(max_message_size)
    try:
        writer.write(connection.data_to_send())
        while not connection.closed:
            data = await reader.read(READ_SIZE)
            if not data:
                return
            for event in connection.receive_data(data):
                if isinstance(event, coap.MessageReceived) and event.message.code.is_request():
                    await _answer(connection, service, event.message, ue_id, connection_id)
            writer.write(connection.data_to_send())
            await writer.drain()
    except ConnectionError as error:
        logger.info("test connection %s lost: %s", connection_id, error)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def _answer(
    connection: coap.CoapTcpConnection,
    service: CoapHandler,
    request: Message,
    ue_id: str,
    connection_id: str,
) -> None:
    try:
        response = await service.handle(request, ue_id, connection_id)
    except Exception:
        logger.exception("test connection %s: request failed", connection_id)
        response = Message(code=Code.INTERNAL_SERVER_ERROR, payload=b"internal server error")
    response.token = bytes(request.token)
    connection.send_message(response)


class PlainCoapUdpListener(asyncio.DatagramProtocol):
    """CoAP over UDP: each CON or NON request gets a piggybacked or NON response."""

    def __init__(self, service: CoapHandler, ue_id: str) -> None:
        self._service = service
        self._ue_id = ue_id
        self._ids = udp.MessageIds()
        self._duplicates = udp.Deduplicator()
        self._transport: asyncio.DatagramTransport | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.uri = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self.uri = _uri("coap", transport.get_extra_info("sockname"))

    def datagram_received(self, data: bytes, address: tuple) -> None:
        try:
            request = udp.decode(data)
        except udp.CoapUdpError as error:
            logger.info("test datagram from %s ignored: %s", address, error)
            return
        if not request.code.is_request():
            return

        earlier = self._duplicates.seen(request.mid)
        if earlier is not None:
            if earlier and self._transport is not None:
                self._transport.sendto(earlier, address)
            return
        self._duplicates.start(request.mid)
        task = asyncio.create_task(self._answer(request, address))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, request: Message, address: tuple) -> None:
        try:
            response = await self._service.handle(request, self._ue_id, "udp-test")
        except Exception:
            logger.exception("test request from %s failed", address)
            response = Message(code=Code.INTERNAL_SERVER_ERROR, payload=b"internal server error")

        datagram = udp.encode(udp.piggybacked_response(request, response, self._ids))
        self._duplicates.finish(request.mid, datagram)
        if self._transport is not None:
            self._transport.sendto(datagram, address)

    async def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def start_plain_coap_udp_listener(
    host: str, port: int, *, service: CoapHandler, ue_id: str
) -> PlainCoapUdpListener:
    """Listen for CoAP over UDP on a loopback HOST:PORT; every request comes from UE_ID."""
    _require_loopback(host)
    loop = asyncio.get_running_loop()
    _, listener = await loop.create_datagram_endpoint(
        lambda: PlainCoapUdpListener(service, ue_id), local_addr=(host, port)
    )
    logger.warning("unsecured CoAP test listener on %s: for interoperability tests only", listener.uri)
    return listener
