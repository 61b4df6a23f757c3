"""The UE side of MSGin5G-1 over PSK-DTLS 1.2 (TS 33.535 Annex C): one CoAP exchange.

    result = await exchange_over_dtls12(host, port, af_fqdn, a_kid, k_akma, request)

The UE offers the PSK identity "3GPP-AKMA" || A-KID and derives K_AF for
AF_ID = FQDN || 01 00 01 yy zz once the ServerHello names the cipher suite. Lost
handshake datagrams are retransmitted on OpenSSL's timer; the CoAP request is a
CON, retransmitted as RFC 7252 clause 4.2 specifies.

A wrong K_AF brings no alert in DTLS: the server silently drops the records it
cannot authenticate. The client then gives up after `max_retransmissions` and
reports that the likely causes are a wrong K_AF or an A-KID the server does not know.
"""

import asyncio
import contextlib
import logging
import secrets

from aiocoap import Message

from msgin5g.coap import udp
from msgin5g.crypto.akma import af_id, k_af, parse_a_kid, ua_dtls12
from msgin5g.service import messages
from msgin5g.service.channel import ChannelError, cause_for_alert
from msgin5g.service.messages import RegistrationResult
from msgin5g.ua import dtls12_psk as dtls

logger = logging.getLogger(__name__)

DEFAULT_HANDSHAKE_TIMEOUT = 30.0
# OpenSSL's DTLS timer starts at 1 s and doubles: 6 retransmissions wait about 63 s
# in all, but the handshake timeout ends the attempt first.
DEFAULT_MAX_RETRANSMISSIONS = 6
TOKEN_OCTETS = 4

NO_ANSWER_CAUSE = (
    "the DTLS handshake got no answer after {count} retransmissions; the likely causes are "
    "a wrong K_AF (K_AKMA, or the AF FQDN {fqdn!r}, differs from what the server's AAnF "
    "uses) or an A-KID that the server's AAnF does not know (run primary authentication "
    "again)"
)
NO_SERVER_CAUSE = (
    "no DTLS answer from {address} after {count} retransmissions; check that the MSGin5G "
    "Server listens there for coaps://"
)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue(64)
        self.error: OSError | None = None
        self.error_event = asyncio.Event()

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self.inbox.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        if isinstance(exc, OSError):
            self.error = exc
            self.error_event.set()


class DtlsClientSession:
    """A DTLS 1.2 session from the UE to one server over a connected UDP socket."""

    def __init__(
        self,
        host: str,
        port: int,
        engine: dtls.Dtls12PskClient,
        *,
        af_fqdn: str = "",
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        max_retransmissions: int = DEFAULT_MAX_RETRANSMISSIONS,
    ) -> None:
        self.address = f"{host}:{port}"
        self._host = host
        self._port = port
        self._engine = engine
        self._af_fqdn = af_fqdn
        self._handshake_timeout = handshake_timeout
        self._max_retransmissions = max_retransmissions
        self._transport: asyncio.DatagramTransport | None = None
        self._protocol = _Protocol()
        self._ids = udp.MessageIds()

    async def __aenter__(self) -> "DtlsClientSession":
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    # Handshake

    async def connect(self) -> None:
        """Run the handshake; raise ChannelError with a cause the user can act on."""
        loop = asyncio.get_running_loop()
        try:
            self._transport, _ = await loop.create_datagram_endpoint(
                lambda: self._protocol, remote_addr=(self._host, self._port)
            )
        except OSError as error:
            raise ChannelError(f"cannot reach {self.address}: {error.strerror or error}") from error

        self._check(self._engine.start())
        self._flush()
        deadline = loop.time() + self._handshake_timeout
        while self._engine.state is dtls.State.HANDSHAKING:
            datagram = await self._next_datagram(deadline, self._engine.timeout())
            if datagram is not None:
                self._check(self._engine.receive_datagram(datagram))
            elif loop.time() >= deadline:
                raise ChannelError(
                    f"DTLS handshake with {self.address} did not finish within "
                    f"{self._handshake_timeout} s; " + self._no_answer_cause()
                )
            elif self._engine.retransmissions >= self._max_retransmissions:
                raise ChannelError(self._no_answer_cause())
            else:
                self._check(self._engine.handle_timeout())
            self._flush()
        logger.info("DTLS session with %s established", self.address)

    def _no_answer_cause(self) -> str:
        count = self._engine.retransmissions
        if self._engine.cipher_suite is None:
            return NO_SERVER_CAUSE.format(address=self.address, count=count)
        return NO_ANSWER_CAUSE.format(count=count, fqdn=self._af_fqdn)

    def _check(self, events: list[dtls.Event]) -> list[dtls.Event]:
        for event in events:
            if isinstance(event, dtls.ConnectionFailed):
                if event.alert is not None:
                    raise ChannelError(cause_for_alert(event.alert), alert=event.alert)
                raise ChannelError(f"DTLS failed with {self.address}: {event.reason}")
            if isinstance(event, dtls.ConnectionClosed):
                raise ChannelError(f"{self.address} closed the DTLS session")
        return events

    # CoAP

    async def request(
        self, message: Message, *, policy: udp.RetransmissionPolicy = udp.RetransmissionPolicy()
    ) -> Message:
        """Send `message` as a CON and return the response (piggybacked or separate)."""
        message.mtype = udp.CON
        message.mid = self._ids.next()
        message.token = secrets.token_bytes(TOKEN_OCTETS)
        octets = udp.encode(message)
        loop = asyncio.get_running_loop()

        acknowledged = False
        timeouts = policy.timeouts()
        for attempt, wait in enumerate(timeouts):
            if not acknowledged:
                self._engine.send(octets)
                self._flush()
            # After an empty ACK, wait for the separate response as long as all retries would.
            deadline = loop.time() + (sum(timeouts[attempt:]) if acknowledged else wait)
            response, acknowledged = await self._await_response(message, deadline, acknowledged)
            if response is not None:
                return response
        raise ChannelError(
            f"no CoAP response from {self.address} after {policy.max_retransmit} "
            "retransmissions of the request"
        )

    async def _await_response(
        self, request: Message, deadline: float, acknowledged: bool
    ) -> tuple[Message | None, bool]:
        while True:
            datagram = await self._next_datagram(deadline, None)
            if datagram is None:
                return None, acknowledged
            for event in self._check(self._engine.receive_datagram(datagram)):
                if not isinstance(event, dtls.DataReceived):
                    continue
                response, acknowledged = self._match(request, event.data, acknowledged)
                if response is not None:
                    return response, acknowledged
            self._flush()

    def _match(self, request: Message, data: bytes, acknowledged: bool) -> tuple[Message | None, bool]:
        try:
            reply = udp.decode(data)
        except udp.CoapUdpError as error:
            logger.info("datagram from %s ignored: %s", self.address, error)
            return None, acknowledged
        if reply.mtype == udp.RST and reply.mid == request.mid:
            raise ChannelError(f"{self.address} rejected the CoAP request with a Reset")
        if reply.mtype == udp.ACK and reply.mid == request.mid and not reply.code.is_response():
            return None, True  # Empty ACK: the response follows separately (clause 5.2.2).
        if bytes(reply.token) != bytes(request.token) or not reply.code.is_response():
            return None, acknowledged
        if reply.mtype == udp.CON:
            self._engine.send(udp.encode(udp.empty_ack(reply)))
            self._flush()
        return reply, True

    # Transport

    async def _next_datagram(self, deadline: float, timer: float | None) -> bytes | None:
        loop = asyncio.get_running_loop()
        wait = deadline - loop.time()
        if timer is not None:
            wait = min(wait, timer)
        if self._protocol.error is not None:
            raise ChannelError(f"cannot reach {self.address}: {self._protocol.error}")
        try:
            async with asyncio.timeout(max(0.0, wait)):
                return await self._protocol.inbox.get()
        except TimeoutError:
            return None

    def _flush(self) -> None:
        for datagram in self._engine.datagrams_to_send():
            if self._transport is not None and not self._transport.is_closing():
                self._transport.sendto(datagram)

    def close(self) -> None:
        """Send close_notify and close the socket."""
        self._engine.close()
        self._flush()
        if self._transport is not None:
            self._transport.close()


def akma_client_engine(
    af_fqdn: str, a_kid: str, k_akma: bytes, *, mtu: int = dtls.DEFAULT_MTU
) -> dtls.Dtls12PskClient:
    """Build the UE's engine: identity "3GPP-AKMA" || A-KID, K_AF per negotiated suite."""
    parse_a_kid(a_kid)
    af_id(af_fqdn, ua_dtls12(0))  # Checks the FQDN now rather than inside OpenSSL's callback.
    identity = dtls.akma_psk_identity(a_kid)

    def key_for_suite(cipher_suite: int) -> bytes:
        return k_af(k_akma, af_id(af_fqdn, ua_dtls12(cipher_suite)))

    return dtls.Dtls12PskClient(identity, key_for_suite, mtu=mtu)


async def exchange_over_dtls12(
    host: str,
    port: int,
    af_fqdn: str,
    a_kid: str,
    k_akma: bytes,
    request: messages.Request,
    *,
    mtu: int = dtls.DEFAULT_MTU,
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    max_retransmissions: int = DEFAULT_MAX_RETRANSMISSIONS,
    coap_policy: udp.RetransmissionPolicy = udp.RetransmissionPolicy(),
) -> RegistrationResult:
    """Run the handshake, send `request` as a CoAP CON and return the server's decision.

    Raises ValueError for an unusable A-KID, FQDN or K_AKMA and ChannelError when the
    server cannot be reached or refuses the session.
    """
    if not isinstance(k_akma, bytes) or len(k_akma) != 32:
        raise ValueError("k_akma must be 32 octets")
    engine = akma_client_engine(af_fqdn, a_kid, k_akma, mtu=mtu)
    session = DtlsClientSession(
        host,
        port,
        engine,
        af_fqdn=af_fqdn,
        handshake_timeout=handshake_timeout,
        max_retransmissions=max_retransmissions,
    )
    async with session:
        response = await session.request(messages.build_request(request), policy=coap_policy)
    try:
        return messages.parse_response(request.operation, response)
    except ValueError as error:
        raise ChannelError(str(error)) from None


__all__ = ["DtlsClientSession", "akma_client_engine", "exchange_over_dtls12"]
