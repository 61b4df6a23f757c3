"""The gateway's local link: CoAP over DTLS 1.2 with a PSK per device (coaps://).

It replaces PC5 unicast security between a constrained UE and its
Gateway UE. The PSK identity is the device ID and the key is that device's
PSK from the gateway configuration; an identity that is not in the table
fails the handshake with the fatal alert unknown_psk_identity, and a wrong PSK
makes the Finished message fail to verify, so the handshake does not finish.

The DTLS engine is the project's pyOpenSSL engine (`ua.dtls12_psk`) with a
static PSK table instead of K_AF from the AAnF. The listener keeps its
stateless cookie exchange (RFC 6347 clause 4.2.1): only a ClientHello that
returns a valid cookie creates a session. Each CoAP request goes to
`GatewayService.handle` with the device ID that the handshake authenticated.
"""

import asyncio
import dataclasses
import hmac
import logging
import secrets

from aiocoap import Message
from aiocoap.numbers.codes import Code
from OpenSSL import SSL

from msgin5g.coap import udp
from msgin5g.gateway.service import GatewayService
from msgin5g.ua import dtls12_psk as dtls
from msgin5g.ua import openssl_psk

logger = logging.getLogger(__name__)

MAX_QUEUED_DATAGRAMS = 64
DEFAULT_HANDSHAKE_TIMEOUT = 10.0
DEFAULT_IDLE_TIMEOUT = 300.0
DEFAULT_MAX_SESSIONS = 1000
DEFAULT_MAX_HANDSHAKES = 100


@dataclasses.dataclass(frozen=True)
class LocalDtlsOptions:
    """Limits of the local DTLS listener; times in seconds, mtu in octets."""

    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    max_sessions: int = DEFAULT_MAX_SESSIONS
    max_handshakes: int = DEFAULT_MAX_HANDSHAKES
    mtu: int = dtls.DEFAULT_MTU


class DevicePskServer(dtls.Dtls12PskServer):
    """The server engine keyed by a static table: PSK identity (device ID) -> PSK.

    The AKMA engine keeps back the ClientKeyExchange until K_AF arrives from the
    AAnF. Here the PSK is known at once, so OpenSSL's callback reads it from
    the table and the flight goes to OpenSSL unchanged.
    """

    def __init__(self, peer: str, cookies: dtls.CookieJar, psks: dict[bytes, bytes], *, mtu: int) -> None:
        super().__init__(peer, cookies, lambda a_kid, suite: None, mtu=mtu)
        self._psks = psks
        self.identity: bytes | None = None

    def receive_datagram(self, datagram: bytes) -> list[dtls.Event]:
        if self.state in (dtls.State.CLOSED, dtls.State.FAILED):
            return []
        if self.state is dtls.State.READING_CLIENT_HELLO:
            return self._receive_client_hello(datagram)
        return self._feed(datagram)

    def _start_connection(self, record: dtls.Record, body: bytes) -> None:
        version, random, session_id, cookie = dtls.parse_client_hello_start(body)
        hello = dtls.ClientHelloStart(record, 1, len(body), True, version, random, session_id, cookie)

        context = dtls._base_context()
        context.set_cookie_generate_callback(lambda connection: self._cookies.cookie(self._peer, hello))
        context.set_cookie_verify_callback(
            lambda connection, offered: self._cookies.verify(self._peer, dataclasses.replace(hello, cookie=offered))
        )
        openssl_psk.set_psk_server_callback(context, self._psk_server_callback)

        self._connection = SSL.Connection(context, None)
        self._connection.set_accept_state()
        self._connection.set_ciphertext_mtu(self._mtu)

    def _psk_server_callback(self, identity: bytes) -> bytes | None:
        key = None
        for known, psk in self._psks.items():
            # Compare every entry, so the time taken does not depend on where a match sits.
            if hmac.compare_digest(known, identity):
                key = psk
        if key is not None:
            self.identity = identity
            self.psk_supplied = True
        return key


def _peer_label(address: tuple) -> str:
    return f"{address[0]}|{address[1]}"


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, listener: "LocalDtlsListener") -> None:
        self._listener = listener

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self._listener._on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        logger.debug("UDP error on the gateway's DTLS listener: %s", exc)


class DeviceSession:
    """One device's DTLS session, from its ClientHello with a valid cookie to its end."""

    def __init__(self, listener: "LocalDtlsListener", address: tuple) -> None:
        self.session_id = secrets.token_hex(4)
        self.address = address
        self._listener = listener
        self._inbox: asyncio.Queue[bytes] = asyncio.Queue(MAX_QUEUED_DATAGRAMS)
        self._engine = DevicePskServer(
            _peer_label(address), listener.cookies, listener.psks, mtu=listener.options.mtu
        )
        self._ids = udp.MessageIds()
        self._deduplicator = udp.Deduplicator()
        self.device_id: str | None = None

    @property
    def handshaking(self) -> bool:
        return self._engine.state is not dtls.State.ESTABLISHED

    def deliver(self, datagram: bytes) -> None:
        try:
            self._inbox.put_nowait(datagram)
        except asyncio.QueueFull:
            logger.debug("device session %s: datagram dropped, the queue is full", self.session_id)

    async def run(self) -> None:
        try:
            if await self._handshake():
                await self._serve()
        except asyncio.CancelledError:
            self._close("the gateway is stopping")
            raise
        except Exception:
            logger.exception("device session %s failed", self.session_id)

    async def _handshake(self) -> bool:
        loop = asyncio.get_running_loop()
        timeout = self._listener.options.handshake_timeout
        deadline = loop.time() + timeout
        while self._engine.state is not dtls.State.ESTABLISHED:
            if loop.time() >= deadline:
                self._reject(f"handshake not complete after {timeout} s")
                return False
            datagram = await self._next_datagram(deadline)
            events = self._engine.handle_timeout() if datagram is None else self._engine.receive_datagram(datagram)
            self._flush()
            if not await self._handle_events(events):
                return False
        return True

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        idle_timeout = self._listener.options.idle_timeout
        while self._engine.state is dtls.State.ESTABLISHED:
            datagram = await self._next_datagram(loop.time() + idle_timeout)
            if datagram is None:
                self._close(f"no datagram for {idle_timeout} s")
                return
            events = self._engine.receive_datagram(datagram)
            self._flush()
            if not await self._handle_events(events):
                return

    async def _handle_events(self, events: list[dtls.Event]) -> bool:
        """Act on engine events; return False when the session has ended."""
        for event in events:
            if isinstance(event, dtls.ConnectionFailed):
                alert = f" (alert {event.alert.name})" if event.alert is not None else ""
                self._reject(f"{event.reason}{alert}")
                self._flush()
                return False
            if isinstance(event, dtls.ConnectionClosed):
                logger.info("device session %s: peer sent close_notify", self.session_id)
                return False
            if isinstance(event, dtls.HandshakeComplete):
                identity = self._engine.identity or b""
                self.device_id = identity.decode("ascii")
                logger.info(
                    "device session %s established for device %s (%s)",
                    self.session_id, self.device_id, event.cipher_name,
                )
            if isinstance(event, dtls.DataReceived):
                await self._answer(event.data)
                self._flush()
        return True

    async def _answer(self, datagram: bytes) -> None:
        try:
            reply = await udp.reply_to_datagram(datagram, self._respond, self._deduplicator, self._ids)
        except udp.CoapUdpError as error:
            logger.info("device session %s: datagram ignored: %s", self.session_id, error)
            return
        if reply is not None:
            self._engine.send(reply)

    async def _respond(self, request: Message) -> Message:
        if self.device_id is None:
            return Message(code=Code.UNAUTHORIZED)
        try:
            return await self._listener.service.handle(request, self.device_id)
        except Exception:
            logger.exception("device session %s: request failed", self.session_id)
            return Message(code=Code.INTERNAL_SERVER_ERROR, payload=b"internal gateway error")

    def _reject(self, reason: str) -> None:
        logger.warning("device DTLS session %s from %s rejected: %s", self.session_id, self.address[0], reason)

    async def _next_datagram(self, deadline: float) -> bytes | None:
        """Wait for a datagram until `deadline` or OpenSSL's timer, whichever comes first."""
        loop = asyncio.get_running_loop()
        wait = deadline - loop.time()
        timer = self._engine.timeout()
        if timer is not None:
            wait = min(wait, timer)
        try:
            async with asyncio.timeout(max(0.0, wait)):
                return await self._inbox.get()
        except TimeoutError:
            return None

    def _flush(self) -> None:
        for datagram in self._engine.datagrams_to_send():
            self._listener.send(datagram, self.address)

    def _close(self, reason: str) -> None:
        logger.info("device session %s closed: %s", self.session_id, reason)
        if self._engine.state is dtls.State.ESTABLISHED:
            self._engine.close()
            self._flush()


class LocalDtlsListener:
    """The gateway's coaps:// endpoint for devices; create it with `start_local_dtls_listener`."""

    def __init__(self, service: GatewayService, psks: dict[bytes, bytes], options: LocalDtlsOptions) -> None:
        self.service = service
        self.psks = psks
        self.options = options
        self.cookies = dtls.CookieJar()
        self.uri = ""
        self._transport: asyncio.DatagramTransport | None = None
        self._sessions: dict[tuple, DeviceSession] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    async def start(self, host: str, port: int) -> str:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self), local_addr=(host, port))
        self._transport = transport
        bound_host, bound_port = transport.get_extra_info("sockname")[:2]
        uri_host = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.uri = f"coaps://{uri_host}:{bound_port}"
        logger.info("gateway listening for %d devices on %s (DTLS 1.2 PSK)", len(self.psks), self.uri)
        return self.uri

    async def close(self) -> None:
        """End every session with close_notify, wait for them, and close the socket."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._transport is not None:
            self._transport.close()

    def send(self, datagram: bytes, address: tuple) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.sendto(datagram, address)

    def _on_datagram(self, datagram: bytes, address: tuple) -> None:
        session = self._sessions.get(address)
        if session is not None:
            session.deliver(datagram)
            return
        hello = dtls.inspect_client_hello(datagram)
        if hello is None:
            logger.debug("datagram from %s ignored: no ClientHello from an unknown peer", address[0])
            return
        peer = _peer_label(address)
        if not hello.cookie or not self.cookies.verify(peer, hello):
            self.send(self.cookies.hello_verify_request(peer, hello), address)
            return
        self._accept(datagram, address)

    def _accept(self, datagram: bytes, address: tuple) -> None:
        handshakes = sum(1 for session in self._sessions.values() if session.handshaking)
        if handshakes >= self.options.max_handshakes or len(self._sessions) >= self.options.max_sessions:
            logger.warning(
                "ClientHello from %s dropped: %d sessions, %d of them handshaking (limits %d, %d)",
                address[0], len(self._sessions), handshakes,
                self.options.max_sessions, self.options.max_handshakes,
            )
            return
        session = DeviceSession(self, address)
        self._sessions[address] = session
        session.deliver(datagram)
        task = asyncio.create_task(session.run(), name=f"device DTLS session {session.session_id}")
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._forget(address, session, done))

    def _forget(self, address: tuple, session: DeviceSession, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._sessions.get(address) is session:
            del self._sessions[address]


async def start_local_dtls_listener(
    host: str,
    port: int,
    *,
    service: GatewayService,
    psks: dict[bytes, bytes],
    options: LocalDtlsOptions | None = None,
) -> LocalDtlsListener:
    """Listen for devices over CoAP over DTLS 1.2 PSK on host:port (0 picks a free port)."""
    listener = LocalDtlsListener(service, psks, options or LocalDtlsOptions())
    await listener.start(host, port)
    return listener
