"""The UE side of MSGin5G-1: CoAP over TLS 1.3 keyed by K_AF.

    async with SecureChannel.open(host, port, af_fqdn, a_kid, k_af) as channel:
        result = await channel.register("ue-service-1")

The UE offers only the external PSK with identity "3GPP-AKMA" || A-KID and key
K_AF (TS 33.535 B.1.3), sends the AF FQDN as SNI and accepts no certificate, so
the channel exists only if the server obtained the same K_AF from the AAnF. A
TLS alert from the server becomes a `ChannelError` whose `cause` states what the
user can do. CoAP runs over the channel as RFC 8323 specifies, with ALPN "coap".
"""

import asyncio
import contextlib
import logging
import secrets
import ssl
from collections.abc import AsyncIterator
from typing import Any, Self

from aiocoap import Message
from aiocoap.numbers.codes import Code

from msgin5g.coap import tcp as coap
from msgin5g.crypto.akma import parse_a_kid
from msgin5g.service import messages
from msgin5g.service.messages import RegistrationResult
from msgin5g.ua.alerts import AlertDescription, alert_from_ssl_error
from msgin5g.ua.tls13_psk import akma_psk_identity, client_context

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 10.0
READ_SIZE = 65536
ALPN_COAP = "coap"
# RFC 8323 clause 8.2: without ALPN, coaps+tcp is implied only on port 5684.
COAPS_TCP_DEFAULT_PORT = 5684
TOKEN_OCTETS = 4

BINDER_CAUSE = "the PSK binder did not verify: K_AF differs (wrong AF FQDN or stale K_AKMA)"

ALERT_CAUSES = {
    AlertDescription.unknown_psk_identity: (
        "the server's AAnF does not know this A-KID (run primary authentication again, and check "
        "that the UE's home network MCC, MNC and routing indicator match the core's)"
    ),
    AlertDescription.decrypt_error: BINDER_CAUSE,
    # OpenSSL 3.0 servers send illegal_parameter, not decrypt_error, when a PSK
    # binder does not verify.
    AlertDescription.illegal_parameter: f"illegal_parameter: most likely {BINDER_CAUSE}",
    AlertDescription.internal_error: (
        "internal_error: the server could not obtain K_AF, for example because its AAnF "
        "is unreachable; retry later"
    ),
}


def cause_for_alert(alert: AlertDescription) -> str:
    """Return what a TLS alert from the server means for the user."""
    return ALERT_CAUSES.get(alert, alert.name)


class ChannelError(Exception):
    """The channel failed or closed; `cause` gives the reason and what to do.

    `alert` is the TLS alert received from the server, if one explains the failure.
    """

    def __init__(self, cause: str, *, alert: AlertDescription | None = None) -> None:
        super().__init__(cause)
        self.cause = cause
        self.alert = alert


def _error_from_ssl(error: ssl.SSLError, address: str | None = None) -> ChannelError:
    if isinstance(error, ssl.SSLCertVerificationError):
        return ChannelError(
            "the server presented a certificate instead of accepting the AKMA PSK, so the "
            "session would not be keyed by K_AF; check the server address"
        )
    alert = alert_from_ssl_error(error)
    if alert is not None:
        return ChannelError(cause_for_alert(alert), alert=alert)
    reason = f"TLS failed: {getattr(error, 'reason', None) or error}"
    if address is None:
        return ChannelError(reason)
    # A handshake error without an alert often means another service listens there.
    return ChannelError(f"{reason}; check that {address} is the MSGin5G Server's address")


class SecureChannel:
    """An open CoAP-over-TLS session with the MSGin5G Server; create it with `connect` or `open`."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        connection: coap.CoapTcpConnection,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._coap = connection
        self._pending: dict[bytes, asyncio.Future[Message]] = {}
        self._pongs: dict[bytes, asyncio.Future[None]] = {}
        self._settings = asyncio.Event()
        self._closed = asyncio.Event()
        self.close_reason: str | None = None
        self._read_task = asyncio.create_task(self._read_loop(), name="MSGin5G-1 channel reader")

    # Opening

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        af_fqdn: str,
        a_kid: str,
        k_af: bytes,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        max_message_size: int = coap.DEFAULT_MAX_MESSAGE_SIZE,
    ) -> Self:
        """Open TCP, run the TLS 1.3 PSK handshake and exchange CSMs.

        Raises ValueError for an unusable A-KID or K_AF and ChannelError when the
        server cannot be reached or refuses the session.
        """
        parse_a_kid(a_kid)
        identity = akma_psk_identity(a_kid)
        context = client_context(identity, k_af)
        context.set_alpn_protocols([ALPN_COAP])

        reader, writer = await _open_tls(host, port, af_fqdn, context, timeout)
        try:
            _check_alpn(writer, port)
            channel = cls(reader, writer, coap.CoapTcpConnection(max_message_size))
        except BaseException:
            writer.close()
            raise
        await channel._start(timeout)
        return channel

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, host: str, port: int, af_fqdn: str, a_kid: str, k_af: bytes, **options: Any
    ) -> AsyncIterator[Self]:
        """Connect as `connect` does, and close the channel when the block ends."""
        channel = await cls.connect(host, port, af_fqdn, a_kid, k_af, **options)
        try:
            yield channel
        finally:
            await channel.close()

    async def _start(self, timeout: float) -> None:
        self._send_queued()
        settings = asyncio.ensure_future(self._settings.wait())
        closed = asyncio.ensure_future(self._closed.wait())
        try:
            await asyncio.wait({settings, closed}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            settings.cancel()
            closed.cancel()

        if not self._settings.is_set():
            reason = self.close_reason or f"the server sent no CSM within {timeout} s"
            await self.close()
            raise ChannelError(reason)

    # Requests

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def wait_closed(self) -> str:
        """Wait until the channel closes; return why it closed."""
        await self._closed.wait()
        return self.close_reason or "closed"

    async def request(self, message: Message, *, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> Message:
        """Send a CoAP request and return the server's response."""
        self._check_open()
        token = self._new_token(self._pending)
        message.token = token
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._pending[token] = future

        try:
            self._coap.send_message(message)
            await self._send_and_drain()
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise ChannelError(f"the server did not respond within {timeout} s") from None
        finally:
            self._pending.pop(token, None)

    async def ping(self, *, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        """Send a CoAP Ping (7.02) and wait for the Pong."""
        self._check_open()
        token = self._new_token(self._pongs)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pongs[token] = future
        try:
            self._coap.send_ping(token)
            await self._send_and_drain()
            async with asyncio.timeout(timeout):
                await future
        except TimeoutError:
            raise ChannelError(f"no Pong within {timeout} s") from None
        finally:
            self._pongs.pop(token, None)

    async def register(
        self, ue_service_id: str, client_profile: dict[str, Any] | None = None
    ) -> RegistrationResult:
        """Send REG for `ue_service_id`; return the server's decision."""
        request = messages.RegistrationRequest(ue_service_id, client_profile)
        return await self._exchange(request)

    async def deregister(self, ue_service_id: str) -> RegistrationResult:
        """Send DEREG for `ue_service_id`; return the server's decision."""
        return await self._exchange(messages.DeregistrationRequest(ue_service_id))

    async def _exchange(self, request: messages.Request) -> RegistrationResult:
        response = await self.request(messages.build_request(request))
        try:
            return messages.parse_response(request.message_type, response)
        except ValueError as error:
            raise ChannelError(str(error)) from None

    async def close(self) -> None:
        """Send a CoAP Release, close TLS and TCP, and fail any request still waiting."""
        if not self.closed and not self._coap.closed:
            self._coap.send_release()
            self._send_queued()
        self._finish("the channel was closed by this UE")
        self._read_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._read_task

        self._writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError, asyncio.CancelledError):
            await self._writer.wait_closed()

    # Reading

    async def _read_loop(self) -> None:
        try:
            while not self._coap.closed:
                data = await self._reader.read(READ_SIZE)
                if not data:
                    self._finish("the server closed the connection")
                    return
                for event in self._coap.receive_data(data):
                    self._dispatch(event)
                self._send_queued()
        except ssl.SSLError as error:
            self._finish(_error_from_ssl(error).cause)
        except ConnectionError as error:
            self._finish(f"the connection to the server was lost: {error}")
        self._finish("the CoAP session ended")

    def _dispatch(self, event: coap.Event) -> None:
        if isinstance(event, coap.MessageReceived):
            self._dispatch_message(event.message)
        elif isinstance(event, coap.SettingsReceived):
            self._settings.set()
        elif isinstance(event, coap.PongReceived):
            _resolve(self._pongs.get(event.token), None)
        elif isinstance(event, coap.ReleaseReceived):
            self._finish(f"the server released the connection: {event.diagnostic or 'no reason given'}")
        elif isinstance(event, coap.AbortReceived):
            self._finish(f"the server aborted the connection: {event.diagnostic or 'no reason given'}")
        elif isinstance(event, coap.ConnectionAborted):
            self._finish(f"the server broke the CoAP protocol: {event.diagnostic}")

    def _dispatch_message(self, message: Message) -> None:
        if message.code.is_request():
            # RFC 8323 clause 3.3: a side without a CoAP server responds with 5.01.
            response = Message(code=Code.NOT_IMPLEMENTED)
            response.token = bytes(message.token)
            self._coap.send_message(response)
            return
        _resolve(self._pending.get(bytes(message.token)), message)

    def _finish(self, reason: str) -> None:
        if self.closed:
            return
        self.close_reason = reason
        logger.info("MSGin5G-1 channel closed: %s", reason)
        for future in [*self._pending.values(), *self._pongs.values()]:
            if not future.done():
                future.set_exception(ChannelError(reason))
        self._closed.set()

    # Writing

    def _check_open(self) -> None:
        if self.closed or self._coap.closed:
            raise ChannelError(self.close_reason or "the channel is closed")

    def _new_token(self, in_use: dict[bytes, Any]) -> bytes:
        while True:
            token = secrets.token_bytes(TOKEN_OCTETS)
            if token not in in_use:
                return token

    def _send_queued(self) -> None:
        data = self._coap.data_to_send()
        if data and not self._writer.is_closing():
            self._writer.write(data)

    async def _send_and_drain(self) -> None:
        self._send_queued()
        try:
            await self._writer.drain()
        except (ConnectionError, ssl.SSLError) as error:
            self._finish(f"the connection to the server was lost: {error}")
            raise ChannelError(self.close_reason or str(error)) from None


def _resolve[T](future: asyncio.Future[T] | None, value: T) -> None:
    if future is not None and not future.done():
        future.set_result(value)


async def _open_tls(
    host: str, port: int, af_fqdn: str, context: ssl.SSLContext, timeout: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        async with asyncio.timeout(timeout):
            return await asyncio.open_connection(
                host, port, ssl=context, server_hostname=af_fqdn, ssl_handshake_timeout=timeout
            )
    except ssl.SSLError as error:
        raise _error_from_ssl(error, f"{host}:{port}") from error
    except TimeoutError:
        raise ChannelError(f"TLS handshake with {host}:{port} did not finish within {timeout} s") from None
    except ConnectionResetError as error:
        raise ChannelError(
            f"{host}:{port} closed the connection during the TLS handshake without an alert"
        ) from error
    except OSError as error:
        raise ChannelError(f"cannot connect to {host}:{port}: {error.strerror or error}") from error


def _check_alpn(writer: asyncio.StreamWriter, port: int) -> None:
    ssl_object = writer.get_extra_info("ssl_object")
    selected = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
    if selected != ALPN_COAP and port != COAPS_TCP_DEFAULT_PORT:
        raise ChannelError(
            f"the server did not select ALPN {ALPN_COAP!r}; RFC 8323 requires it for CoAP over "
            f"TLS on ports other than {COAPS_TCP_DEFAULT_PORT}"
        )
