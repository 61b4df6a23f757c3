"""The MSGin5G Server over PSK-DTLS 1.2 (TS 33.535 Annex C): CoAP over DTLS, coaps://.

One UDP socket serves every peer. A datagram from an unknown address is answered
statelessly: a ClientHello without a valid cookie gets a HelloVerifyRequest
(RFC 6347 clause 4.2.1) and nothing is stored. Only a ClientHello that returns a
valid cookie creates a session, which runs as its own task:

1. The DTLS engine (`ua.dtls12_psk`) holds the ClientKeyExchange flight and names
   the A-KID and the negotiated cipher suite. The session obtains K_AF for
   AF_ID = FQDN || 01 00 01 yy zz while the event loop serves other peers, then
   lets the handshake continue. Without a K_AF, OpenSSL sends the fatal alert
   unknown_psk_identity.
2. CoAP requests (RFC 7252 message format) go to `Msgin5gRouter.handle`;
   a CON request gets its response piggybacked in the ACK, and a retransmitted
   CON gets the same response again.

A session ends after `idle_timeout` seconds without a datagram, when its K_AF
expires, on close_notify, or when the listener closes. It also ends when its
peer address starts a new handshake: a ClientHello in epoch 0 with a new client
random and a valid cookie. RFC 6347 clause 4.2.8 lets a server treat that as a
new connection, because the cookie exchange shows that the client is reachable
at the address. A UE that reconnects from the same port then gets a session
at once, without waiting for the old one to time out.
"""

import asyncio
import logging
import secrets
import time

from aiocoap import Message
from aiocoap.numbers.codes import Code
from pydantic import Field

from msgin5g.coap import udp
from msgin5g.crypto.akma import parse_a_kid, ua_dtls12
from msgin5g.nf.config import ConfigModel
from msgin5g.service.config import Limits
from msgin5g.service.kaf import AanfError, KafEntry, KafProvider
from msgin5g.service.router import CoapHandler
from msgin5g.ua import dtls12_psk as dtls

logger = logging.getLogger(__name__)

PROFILE = "psk-dtls1.2"
MAX_QUEUED_DATAGRAMS = 64


class DtlsOptions(ConfigModel):
    """Options of the psk-dtls1.2 profile."""

    # Sessions that passed the cookie exchange but have not finished the handshake.
    max_handshakes: int = Field(default=100, ge=1)
    # Seconds without a datagram after which an established session ends.
    idle_timeout: float = Field(default=300.0, gt=0)
    # Largest datagram this server sends, in octets (OpenSSL accepts 256 and more).
    mtu: int = Field(default=dtls.DEFAULT_MTU, ge=dtls.MIN_MTU, le=65507)


def _session_id() -> str:
    """Return a short random id for log lines. It reveals nothing about the UE or its keys."""
    return secrets.token_hex(4)


def _peer_label(address: tuple) -> str:
    return f"{address[0]}|{address[1]}"


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, listener: "DtlsListener") -> None:
        self._listener = listener

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self._listener._on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        logger.debug("UDP error on the DTLS listener: %s", exc)


class DtlsSession:
    """One peer from its ClientHello with a valid cookie to the end of its session."""

    def __init__(self, listener: "DtlsListener", address: tuple, client_random: bytes) -> None:
        self.session_id = _session_id()
        self.address = address
        # The random of the ClientHello that started this session: a ClientHello with
        # another random from the same address starts a new connection.
        self.client_random = client_random
        self.task: asyncio.Task[None] | None = None
        self._superseded = False
        self._listener = listener
        self._inbox: asyncio.Queue[bytes] = asyncio.Queue(MAX_QUEUED_DATAGRAMS)
        self._engine = dtls.Dtls12PskServer(
            _peer_label(address),
            listener.cookies,
            self._psk_lookup,
            mtu=listener.options.mtu,
            context=listener.ssl_context,
        )
        self._entry: KafEntry | None = None
        self._ids = udp.MessageIds()
        self._deduplicator = udp.Deduplicator()

    @property
    def handshaking(self) -> bool:
        return self._engine.state is not dtls.State.ESTABLISHED

    def deliver(self, datagram: bytes) -> None:
        try:
            self._inbox.put_nowait(datagram)
        except asyncio.QueueFull:
            logger.debug("session %s: datagram dropped, the queue is full", self.session_id)

    async def run(self) -> None:
        try:
            if await self._handshake():
                await self._serve()
        except asyncio.CancelledError:
            # A superseded session sends no close_notify: its peer has left this
            # association for its new handshake, and `_accept` logged why it ends.
            if not self._superseded:
                self._close("the MSGin5G Server is shutting down")
            raise
        except Exception:
            logger.exception("session %s failed", self.session_id)

    def supersede(self) -> None:
        """End this session because its peer address started a new handshake."""
        self._superseded = True
        if self.task is not None:
            self.task.cancel()

    # Handshake

    def _psk_lookup(self, a_kid: str, cipher_suite: int) -> bytes | None:
        entry = self._listener.kaf.lookup(a_kid, ua_dtls12(cipher_suite))
        return entry.k_af if entry is not None else None

    async def _handshake(self) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._listener.limits.handshake_timeout
        while self._engine.state is not dtls.State.ESTABLISHED:
            if loop.time() >= deadline:
                self._reject(f"handshake not complete after {self._listener.limits.handshake_timeout} s")
                return False
            datagram = await self._next_datagram(deadline)
            if datagram is None:
                events = self._engine.handle_timeout()
            else:
                events = self._engine.receive_datagram(datagram)
            events = await self._supply_kaf(events, deadline)
            self._flush()
            if not await self._handle_events(events):
                return False
        return True

    async def _supply_kaf(self, events: list[dtls.Event], deadline: float) -> list[dtls.Event]:
        needed = [event for event in events if isinstance(event, dtls.KafNeeded)]
        if not needed:
            return events
        others = [event for event in events if not isinstance(event, dtls.KafNeeded)]
        reason = await self._obtain(needed[0], deadline)
        resumed = self._engine.resume()
        if reason is not None:
            failure = [event for event in resumed if isinstance(event, dtls.ConnectionFailed)]
            alert = failure[0].alert if failure else None
            return others + [dtls.ConnectionFailed(reason, alert)]
        return others + resumed

    async def _obtain(self, event: dtls.KafNeeded, deadline: float) -> str | None:
        """Put K_AF for the A-KID and suite into the cache; return why not, if it failed."""
        logger.debug("session %s presents A-KID %s", self.session_id, event.a_kid)
        try:
            parse_a_kid(event.a_kid)
        except ValueError:
            return "malformed A-KID (not in this deployment's A-KID layout)"
        try:
            async with asyncio.timeout_at(deadline):
                entry = await self._listener.kaf.obtain(event.a_kid, ua_dtls12(event.cipher_suite))
        except TimeoutError:
            return "the AAnF did not return K_AF before the handshake timeout"
        except AanfError as error:
            # NOTE: OpenSSL sends unknown_psk_identity here too, although internal_error would be accurate.
            return f"K_AF not available: {error}"
        if entry is None:
            return "unknown A-KID"
        self._entry = entry
        return None

    async def _handle_events(self, events: list[dtls.Event]) -> bool:
        """Act on engine events; return False when the session has ended."""
        for event in events:
            if isinstance(event, dtls.ConnectionFailed):
                alert = f" (alert {event.alert.name})" if event.alert is not None else ""
                self._reject(f"{event.reason}{alert}")
                self._flush()
                return False
            if isinstance(event, dtls.ConnectionClosed):
                logger.info("session %s: peer sent close_notify", self.session_id)
                return False
            if isinstance(event, dtls.HandshakeComplete):
                self._log_established(event)
            if isinstance(event, dtls.DataReceived):
                await self._answer(event.data)
                self._flush()
        return True

    def _log_established(self, event: dtls.HandshakeComplete) -> None:
        logger.info(
            "session %s established with an AKMA K_AF (%s)", self.session_id, event.cipher_name
        )
        if self._entry is not None:
            logger.debug("session %s: UE ID %s", self.session_id, self._entry.ue_id)

    def _reject(self, reason: str) -> None:
        logger.warning("DTLS session %s from %s rejected: %s", self.session_id, self.address[0], reason)

    # CoAP

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        idle_timeout = self._listener.options.idle_timeout
        expiry = self._expiry_deadline()
        while self._engine.state is dtls.State.ESTABLISHED:
            deadline = min(loop.time() + idle_timeout, expiry)
            datagram = await self._next_datagram(deadline)
            if datagram is None:
                if loop.time() >= expiry:
                    self._close("its K_AF expired")
                else:
                    self._close(f"no datagram for {idle_timeout} s")
                return
            events = self._engine.receive_datagram(datagram)
            self._flush()
            if not await self._handle_events(events):
                return

    def _expiry_deadline(self) -> float:
        loop = asyncio.get_running_loop()
        if self._entry is None:
            return loop.time()
        return loop.time() + max(0.0, self._entry.expiry.timestamp() - time.time())

    async def _answer(self, datagram: bytes) -> None:
        try:
            reply = await udp.reply_to_datagram(datagram, self._respond, self._deduplicator, self._ids)
        except udp.CoapUdpError as error:
            logger.info("session %s: datagram ignored: %s", self.session_id, error)
            return
        if reply is not None:
            self._engine.send(reply)

    async def _respond(self, request: Message) -> Message:
        if self._entry is None:
            return Message(code=Code.UNAUTHORIZED)
        try:
            return await self._listener.service.handle(request, self._entry.ue_id, self.session_id)
        except Exception:
            logger.exception("session %s: request failed", self.session_id)
            return Message(code=Code.INTERNAL_SERVER_ERROR, payload=b"internal server error")

    # Transport

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
        logger.info("session %s closed: %s", self.session_id, reason)
        if self._engine.state is dtls.State.ESTABLISHED:
            self._engine.close()
            self._flush()


class DtlsListener:
    """The coaps:// endpoint; create it with `start_dtls12_listener`."""

    def __init__(
        self, *, kaf: KafProvider, service: CoapHandler, limits: Limits, options: DtlsOptions
    ) -> None:
        self.kaf = kaf
        self.service = service
        self.limits = limits
        self.options = options
        self.cookies = dtls.CookieJar()
        # One OpenSSL context for every session: its callbacks find the session's engine.
        self.ssl_context = dtls.server_context()
        self.uri = ""
        self._transport: asyncio.DatagramTransport | None = None
        self._sessions: dict[tuple, DtlsSession] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def session_count(self) -> int:
        """Per-peer sessions that exist now (none before a valid cookie)."""
        return len(self._sessions)

    async def start(self, host: str, port: int) -> str:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=(host, port)
        )
        self._transport = transport
        bound_host, bound_port = transport.get_extra_info("sockname")[:2]
        uri_host = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.uri = f"coaps://{uri_host}:{bound_port}"
        logger.info("MSGin5G Server (%s) for AF %s listening on %s", PROFILE, self.kaf.fqdn, self.uri)
        return self.uri

    async def close(self) -> None:
        """End every session with close_notify, wait for them, and close the socket."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._transport is not None:
            self._transport.close()
        logger.info("MSGin5G Server (%s) stopped", PROFILE)

    def send(self, datagram: bytes, address: tuple) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.sendto(datagram, address)

    def _on_datagram(self, datagram: bytes, address: tuple) -> None:
        session = self._sessions.get(address)
        if session is not None and not _starts_with_client_hello(datagram):
            session.deliver(datagram)
            return

        hello = dtls.inspect_client_hello(datagram)
        if session is not None and (hello is None or hello.random == session.client_random):
            # The session's own ClientHello again (a retransmission), or not a ClientHello.
            session.deliver(datagram)
            return
        if hello is None:
            logger.debug("datagram from %s ignored: no ClientHello from an unknown peer", address[0])
            return

        # A new peer, or a new handshake from the address of an existing session. Either
        # way, the cookie exchange runs without touching any session.
        peer = _peer_label(address)
        if not hello.cookie or not self.cookies.verify(peer, hello):
            self.send(self.cookies.hello_verify_request(peer, hello), address)
            return
        self._accept(datagram, address, hello.random, replacing=session)

    def _accept(
        self, datagram: bytes, address: tuple, client_random: bytes, replacing: DtlsSession | None
    ) -> None:
        others = [session for session in self._sessions.values() if session is not replacing]
        handshakes = sum(1 for session in others if session.handshaking)
        if handshakes >= self.options.max_handshakes:
            logger.warning(
                "ClientHello from %s dropped: %d handshakes are in progress (max_handshakes)",
                address[0],
                handshakes,
            )
            return
        if len(others) >= self.limits.max_connections:
            logger.warning(
                "ClientHello from %s dropped: the limit of %d sessions is reached",
                address[0],
                self.limits.max_connections,
            )
            return

        if replacing is not None:
            logger.info(
                "session %s closed: its peer address started a new handshake with a valid cookie",
                replacing.session_id,
            )
            replacing.supersede()

        session = DtlsSession(self, address, client_random)
        self._sessions[address] = session
        session.deliver(datagram)
        task = asyncio.create_task(session.run(), name=f"DTLS session {session.session_id}")
        session.task = task
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._forget(address, session, done))

    def _forget(self, address: tuple, session: DtlsSession, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._sessions.get(address) is session:
            del self._sessions[address]


def _starts_with_client_hello(datagram: bytes) -> bool:
    """Return whether the first record is a cleartext (epoch 0) handshake record with a ClientHello.

    A cheap test on the record and handshake headers (RFC 6347 clause 4.1), so
    that the datagrams of a running session skip `inspect_client_hello`. A new
    flight starts a datagram, so a new ClientHello is always in the first record.
    """
    return (
        len(datagram) > dtls.RECORD_HEADER_OCTETS
        and datagram[0] == dtls.CONTENT_HANDSHAKE
        and datagram[3:5] == b"\0\0"
        and datagram[dtls.RECORD_HEADER_OCTETS] == dtls.HANDSHAKE_CLIENT_HELLO
    )


async def start_dtls12_listener(
    host: str,
    port: int,
    *,
    kaf: KafProvider,
    service: CoapHandler,
    limits: Limits,
    options: DtlsOptions | None = None,
    **profile_options: object,
) -> DtlsListener:
    """Listen for CoAP over DTLS 1.2 keyed by K_AF on host:port (0 picks a free port).

    `options` or keyword arguments (`max_handshakes`, `idle_timeout`, `mtu`) configure
    the profile.
    """
    if options is None:
        options = DtlsOptions(**profile_options)
    elif profile_options:
        raise TypeError("pass either options= or the option keywords, not both")
    listener = DtlsListener(kaf=kaf, service=service, limits=limits, options=options)
    await listener.start(host, port)
    return listener


__all__ = ["PROFILE", "DtlsListener", "DtlsOptions", "DtlsSession", "start_dtls12_listener"]
