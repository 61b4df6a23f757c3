"""The UE side of MSGin5G-1: CoAP over TLS 1.3 or TLS 1.2 keyed by K_AF.

    async with SecureChannel.open(host, port, af_fqdn, a_kid, k_af) as channel:
        result = await channel.register("ue-service-1")

`SecureChannel.connect_tls12` opens the PSK-TLS 1.2 profile (TS 24.109 K.3.2)
instead. It takes K_AKMA, not K_AF, because K_AF depends on the cipher suite the
server chooses; it runs `ua.tls12_psk.Tls12PskClient` over memory BIOs, which
reads that suite from the ServerHello. `exchange_over_tls13` and
`exchange_over_tls12` send one MSGin5G-1 request over a fresh channel.

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
from msgin5g.crypto.akma import UA_TLS13, af_id, k_af, parse_a_kid
from msgin5g.service import messages
from msgin5g.service.messages import RegistrationResult
from msgin5g.ua.alerts import AlertDescription, alert_from_ssl_error
from msgin5g.ua.tls12_psk import DEFAULT_CIPHER_SUITES, Tls12ClientError, Tls12PskClient
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


FINISHED_CAUSE = (
    "the server could not verify this UE's Finished message: K_AF differs (wrong AF FQDN, "
    "or stale K_AKMA)"
)

# OpenSSL 3.0 servers send bad_record_mac (AEAD suites) or decrypt_error when the
# TLS 1.2 Finished message was keyed with another K_AF.
TLS12_ALERT_CAUSES = ALERT_CAUSES | {
    AlertDescription.bad_record_mac: FINISHED_CAUSE,
    AlertDescription.decrypt_error: FINISHED_CAUSE,
    AlertDescription.handshake_failure: (
        "handshake_failure: the server accepts none of the TLS 1.2 PSK cipher suites offered"
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
        reader: "asyncio.StreamReader | Tls12Stream",
        writer: "asyncio.StreamWriter | Tls12Stream",
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
        # IANA code point of the TLS 1.2 suite; None over TLS 1.3.
        self.tls_cipher_suite: int | None = None
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

    @classmethod
    async def connect_tls12(
        cls,
        host: str,
        port: int,
        af_fqdn: str,
        a_kid: str,
        k_akma: bytes,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        max_message_size: int = coap.DEFAULT_MAX_MESSAGE_SIZE,
        cipher_suites: tuple[str, ...] = DEFAULT_CIPHER_SUITES,
    ) -> Self:
        """Open TCP, run the TLS 1.2 PSK handshake and exchange CSMs.

        K_AF is derived inside the handshake for the suite the server chooses;
        `tls_cipher_suite` then holds that suite's IANA code point.
        """
        parse_a_kid(a_kid)
        stream = await open_tls12(
            host, port, af_fqdn, a_kid, k_akma, timeout=timeout, cipher_suites=cipher_suites
        )
        try:
            _check_alpn(stream, port)
            channel = cls(stream, stream, coap.CoapTcpConnection(max_message_size))
        except BaseException:
            stream.close()
            raise
        channel.tls_cipher_suite = stream.engine.cipher_suite
        await channel._start(timeout)
        return channel

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

    async def send(self, request: messages.Request) -> RegistrationResult:
        """Send any MSGin5G-1 request (MSG, INBOX, ...); return the server's parsed response."""
        return await self._exchange(request)

    async def _exchange(self, request: messages.Request) -> RegistrationResult:
        response = await self.request(messages.build_request(request))
        try:
            return messages.parse_response(request.operation, response)
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
        except Tls12ClientError as error:
            self._finish(_error_from_tls12(error).cause)
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
        except (ConnectionError, ssl.SSLError, Tls12ClientError) as error:
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


def _check_alpn(writer: "asyncio.StreamWriter | Tls12Stream", port: int) -> None:
    ssl_object = writer.get_extra_info("ssl_object")
    selected = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
    if selected != ALPN_COAP and port != COAPS_TCP_DEFAULT_PORT:
        raise ChannelError(
            f"the server did not select ALPN {ALPN_COAP!r}; RFC 8323 requires it for CoAP over "
            f"TLS on ports other than {COAPS_TCP_DEFAULT_PORT}"
        )


# PSK-TLS 1.2 over memory BIOs


class Tls12Stream:
    """The reader and writer of `SecureChannel` over a `Tls12PskClient` and a TCP stream."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, engine: Tls12PskClient
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.engine = engine
        # Application data that arrived with the server's Finished message.
        self._early_data = b""

    async def handshake(self) -> None:
        """Run the handshake; raise Tls12ClientError or ConnectionError when it fails."""
        self.engine.start()
        self._flush()
        while not self.engine.established:
            data = await self._reader.read(READ_SIZE)
            if not data:
                raise ConnectionResetError("the server closed the connection")
            try:
                self._early_data += self.engine.receive_data(data)
            finally:
                self._flush()
        await self._writer.drain()

    async def read(self, size: int = READ_SIZE) -> bytes:
        """Return decrypted application data; b"" once the server has closed."""
        if self._early_data:
            data, self._early_data = self._early_data, b""
            return data
        while not self.engine.closed:
            data = await self._reader.read(size)
            if not data:
                return b""
            plaintext = self.engine.receive_data(data)
            self._flush()
            if plaintext:
                return plaintext
        return b""

    def write(self, data: bytes) -> None:
        self.engine.send(data)
        self._flush()

    async def drain(self) -> None:
        await self._writer.drain()

    def is_closing(self) -> bool:
        return self._writer.is_closing()

    def close(self) -> None:
        if not self._writer.is_closing():
            self.engine.close()
            self._flush()
        self._writer.close()

    async def wait_closed(self) -> None:
        await self._writer.wait_closed()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "ssl_object":
            return self.engine.ssl_object
        return self._writer.get_extra_info(name, default)

    def _flush(self) -> None:
        data = self.engine.data_to_send()
        if data and not self._writer.is_closing():
            self._writer.write(data)


def _error_from_tls12(error: Tls12ClientError, address: str | None = None) -> ChannelError:
    if error.refused:
        return ChannelError(error.reason)
    if error.alert is not None:
        return ChannelError(
            TLS12_ALERT_CAUSES.get(error.alert, error.alert.name), alert=error.alert
        )
    if address is None:
        return ChannelError(error.reason)
    return ChannelError(f"{error.reason}; check that {address} is the MSGin5G Server's address")


async def open_tls12(
    host: str,
    port: int,
    af_fqdn: str,
    a_kid: str,
    k_akma: bytes,
    *,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    cipher_suites: tuple[str, ...] = DEFAULT_CIPHER_SUITES,
) -> Tls12Stream:
    """Connect and run the TLS 1.2 AKMA PSK handshake; return the established stream.

    Raises ValueError for an unusable A-KID, K_AKMA or AF FQDN and ChannelError
    when the server cannot be reached or the handshake fails.
    """
    engine = Tls12PskClient(af_fqdn, a_kid, k_akma, cipher_suites=cipher_suites)
    address = f"{host}:{port}"
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        raise ChannelError(f"cannot connect to {address} within {timeout} s") from None
    except OSError as error:
        raise ChannelError(f"cannot connect to {address}: {error.strerror or error}") from error

    stream = Tls12Stream(reader, writer, engine)
    try:
        async with asyncio.timeout(timeout):
            await stream.handshake()
    except BaseException as error:
        writer.close()
        if isinstance(error, Tls12ClientError):
            raise _error_from_tls12(error, address) from error
        if isinstance(error, TimeoutError):
            raise ChannelError(
                f"TLS handshake with {address} did not finish within {timeout} s"
            ) from None
        if isinstance(error, ConnectionError):
            raise ChannelError(
                f"{address} closed the connection during the TLS handshake without an alert"
            ) from error
        raise
    return stream


# One exchange per profile (the seam of the demo and the UE tool)


async def exchange_over_tls13(
    host: str,
    port: int,
    af_fqdn: str,
    a_kid: str,
    k_akma: bytes,
    request: messages.Request,
    **options: Any,
) -> RegistrationResult:
    """Send one MSGin5G-1 request over PSK-TLS 1.3 with K_AF for AF_ID = `af_fqdn` || 01 00 00 00 07."""
    k_af_value = k_af(k_akma, af_id(af_fqdn, UA_TLS13))
    async with SecureChannel.open(host, port, af_fqdn, a_kid, k_af_value, **options) as channel:
        return await channel._exchange(request)


async def exchange_over_tls12(
    host: str,
    port: int,
    af_fqdn: str,
    a_kid: str,
    k_akma: bytes,
    request: messages.Request,
    **options: Any,
) -> RegistrationResult:
    """Send one MSGin5G-1 request over PSK-TLS 1.2; K_AF is for the suite the server chose."""
    channel = await SecureChannel.connect_tls12(host, port, af_fqdn, a_kid, k_akma, **options)
    try:
        return await channel._exchange(request)
    finally:
        await channel.close()
