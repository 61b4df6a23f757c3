"""The gateway's local link WITHOUT security: CoAP over UDP on loopback, for tests only.

Nothing authenticates the device here, so each request names its device in
the query `?device=DEVICE_ID`. The configuration accepts this transport only
on a loopback address, and `start_local_coap_listener` checks that again.
"""

import asyncio
import ipaddress
import logging

from aiocoap import Message
from aiocoap.numbers.codes import Code

from msgin5g.coap import udp
from msgin5g.gateway.service import GatewayService

logger = logging.getLogger(__name__)

DEVICE_QUERY = "device="


def device_from_query(request: Message) -> str | None:
    """Return the device ID of the `device=` Uri-Query option, or None."""
    for item in request.opt.uri_query:
        if item.startswith(DEVICE_QUERY):
            return item[len(DEVICE_QUERY) :]
    return None


class LocalCoapListener(asyncio.DatagramProtocol):
    """CoAP over UDP: each CON or NON request gets a piggybacked or NON response."""

    def __init__(self, service: GatewayService) -> None:
        self._service = service
        self._ids = udp.MessageIds()
        self._duplicates: dict[tuple, udp.Deduplicator] = {}
        self._transport: asyncio.DatagramTransport | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.uri = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        host, port = transport.get_extra_info("sockname")[:2]
        uri_host = f"[{host}]" if ":" in host else host
        self.uri = f"coap://{uri_host}:{port}"

    def datagram_received(self, data: bytes, address: tuple) -> None:
        try:
            request = udp.decode(data)
        except udp.CoapUdpError as error:
            logger.info("datagram from %s ignored: %s", address[0], error)
            return
        if not request.code.is_request():
            return

        # Message IDs are per peer (RFC 7252 clause 4.5), so each address gets its own memory.
        duplicates = self._duplicates.setdefault(address, udp.Deduplicator(max_entries=256))
        earlier = duplicates.seen(request.mid)
        if earlier is not None:
            if earlier and self._transport is not None:
                self._transport.sendto(earlier, address)
            return
        duplicates.start(request.mid)
        task = asyncio.create_task(self._answer(request, address, duplicates))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, request: Message, address: tuple, duplicates: udp.Deduplicator) -> None:
        try:
            response = await self._service.handle(request, device_from_query(request))
        except Exception:
            logger.exception("request from %s failed", address[0])
            response = Message(code=Code.INTERNAL_SERVER_ERROR, payload=b"internal gateway error")

        datagram = udp.encode(udp.piggybacked_response(request, response, self._ids))
        duplicates.finish(request.mid, datagram)
        if self._transport is not None:
            self._transport.sendto(datagram, address)

    async def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def start_local_coap_listener(host: str, port: int, *, service: GatewayService) -> LocalCoapListener:
    """Listen for devices over unsecured CoAP over UDP on a loopback HOST:PORT."""
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"the unsecured CoAP listener must bind a loopback address, not {host}; use 127.0.0.1 or ::1")
    loop = asyncio.get_running_loop()
    _, listener = await loop.create_datagram_endpoint(lambda: LocalCoapListener(service), local_addr=(host, port))
    logger.warning("gateway listening on %s WITHOUT security: for tests only", listener.uri)
    return listener
