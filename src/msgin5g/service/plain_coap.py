"""A CoAP-over-TCP listener WITHOUT security, for interoperability tests only.

It handles REG and DEREG like the secured listeners, but nothing
authenticates the peer: every request is taken as coming from one UE ID
fixed by the caller. It exists so that an independent CoAP
implementation (aiocoap's client) can check this project's RFC 8323
framing and message handling, which TLS would otherwise hide. Only tests
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
from msgin5g.service.server import RegistrationService

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


async def start_plain_coap_listener(
    host: str, port: int, *, service: RegistrationService, ue_id: str, max_message_size: int = coap.DEFAULT_MAX_MESSAGE_SIZE
) -> PlainCoapListener:
    """Listen on a loopback HOST:PORT; every request is handled as coming from UE_ID."""
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(
            f"the unsecured CoAP test listener must bind a loopback address, not {host}; "
            "use 127.0.0.1 or ::1"
        )

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _serve_connection(reader, writer, service, ue_id, max_message_size)

    server = await asyncio.start_server(accept, host, port)
    bound_host, bound_port = server.sockets[0].getsockname()[:2]
    shown_host = f"[{bound_host}]" if ":" in bound_host else bound_host
    uri = f"coap+tcp://{shown_host}:{bound_port}"
    logger.warning("unsecured CoAP test listener on %s: for interoperability tests only", uri)
    return PlainCoapListener(server, uri)


async def _serve_connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    service: RegistrationService,
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
    service: RegistrationService,
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
