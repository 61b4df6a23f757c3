"""The MSGin5G Server as AKMA AF: TLS keyed by K_AF, CoAP over TLS, MSGin5G-1 requests.

A listener serves one PSK-TLS profile: `psk-tls1.3` (`ua.tls13_psk`,
`start_tls13_listener`) or `psk-tls1.2` (`ua.tls12_psk`, `start_tls12_listener`).
Each TCP connection runs through three steps:

1. The TLS engine reads the cleartext handshake up to the PSK identity and names
   the A-KID and the Ua* protocol identifier of AF_ID. The server obtains K_AF
   from its cache or the AAnF while the event loop keeps serving other
   connections, then lets the handshake continue.
2. CoAP over TLS (RFC 8323) starts with both CSMs.
3. Every request goes to `Msgin5gRouter.handle` (service/router.py) with the
   UE ID that came with K_AF.

A connection is closed with a CoAP Release when its K_AF expires.
"""

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable

from aiocoap import Message
from aiocoap.numbers.codes import Code
from pydantic import Field, field_validator

from msgin5g.coap import tcp as coap
from msgin5g.crypto.akma import UA_TLS13, parse_a_kid
from msgin5g.nf.config import ConfigModel
from msgin5g.service.config import Limits
from msgin5g.service.kaf import AanfError, KafEntry, KafProvider
from msgin5g.service.router import CoapHandler, diagnostic_response
from msgin5g.ua import tls12_psk
from msgin5g.ua import tls13_psk as tls
from msgin5g.ua.alerts import AlertDescription

logger = logging.getLogger(__name__)

READ_SIZE = 65536



# K_AF from the AF's cache for (A-KID, Ua* protocol identifier), or None; never does I/O.
PskLookup = Callable[[str, bytes], bytes | None]
PskEngine = tls.Tls13PskServer | tls12_psk.Tls12PskServer
# Builds the TLS engine of one connection.
EngineFactory = Callable[[PskLookup, Limits], PskEngine]


class Tls13Options(ConfigModel):
    """Options of the `psk-tls1.3` profile."""

    # psk_ke gives no forward secrecy; TS 33.535 B.1.3 prefers psk_dhe_ke.
    allow_psk_ke: bool = False


class Tls12Options(ConfigModel):
    """Options of the `psk-tls1.2` profile: the PSK cipher suites in OpenSSL's names."""

    cipher_suites: tuple[str, ...] = Field(default=tls12_psk.DEFAULT_CIPHER_SUITES, min_length=1)

    @field_validator("cipher_suites")
    @classmethod
    def check_cipher_suites(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        tls12_psk.parse_cipher_suites(value)  # Raises a ValueError that names the bad suite.
        return value


def tls13_engines(options: Tls13Options | None = None) -> EngineFactory:
    """Return the engine factory of the `psk-tls1.3` profile."""
    options = options or Tls13Options()
    shared_context = tls.SharedServerContext(allow_psk_ke=options.allow_psk_ke)

    def build(psk_lookup: PskLookup, limits: Limits) -> PskEngine:
        return tls.Tls13PskServer(
            lambda a_kid: psk_lookup(a_kid, UA_TLS13),
            max_client_hello_size=limits.max_client_hello_size,
            allow_psk_ke=options.allow_psk_ke,
            shared_context=shared_context,
        )

    return build


def tls12_engines(options: Tls12Options | None = None) -> EngineFactory:
    """Return the engine factory of the `psk-tls1.2` profile."""
    options = options or Tls12Options()

    def build(psk_lookup: PskLookup, limits: Limits) -> PskEngine:
        return tls12_psk.Tls12PskServer(
            psk_lookup,
            max_client_hello_size=limits.max_client_hello_size,
            cipher_suites=options.cipher_suites,
        )

    return build


def _new_connection_id() -> str:
    """Return a short random id for log lines. It reveals nothing about the UE or its keys."""
    return secrets.token_hex(4)


class ServerConnection:
    """One accepted TCP connection, from the ClientHello to the last CoAP message."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        kaf: KafProvider,
        service: CoapHandler,
        limits: Limits,
        engine_factory: EngineFactory | None = None,
    ) -> None:
        self.connection_id = _new_connection_id()
        self._reader = reader
        self._writer = writer
        self._kaf = kaf
        self._service = service
        self._limits = limits
        self._engine = (engine_factory or tls13_engines())(self._psk_lookup, limits)
        # Its CSM is queued now and leaves only once the TLS session is established.
        self._coap = coap.CoapTcpConnection(limits.max_message_size)
        self._early_data = bytearray()

    async def run(self) -> None:
        try:
            entry = await self._handshake_with_timeout()
            if entry is not None:
                await self._serve_coap(entry)
        except asyncio.CancelledError:
            await self._release_on_shutdown()
            raise
        except ConnectionError as error:
            logger.info("connection %s lost: %s", self.connection_id, error)
        except Exception:
            logger.exception("connection %s failed", self.connection_id)
        finally:
            await self._close_transport()

    # TLS

    def _psk_lookup(self, a_kid: str, ua_protocol_id: bytes) -> bytes | None:
        entry = self._kaf.lookup(a_kid, ua_protocol_id)
        return entry.k_af if entry is not None else None

    async def _handshake_with_timeout(self) -> KafEntry | None:
        try:
            async with asyncio.timeout(self._limits.handshake_timeout):
                return await self._handshake()
        except TimeoutError:
            self._reject_log(f"TLS handshake not complete after {self._limits.handshake_timeout} s")
            return None

    async def _handshake(self) -> KafEntry | None:
        entry: KafEntry | None = None
        while True:
            data = await self._reader.read(READ_SIZE)
            if not data:
                logger.info("connection %s closed by the peer during the handshake", self.connection_id)
                return None

            events = self._engine.receive_data(data)
            events, obtained = await self._supply_kaf(events)
            entry = obtained or entry
            await self._flush()

            for event in events:
                if isinstance(event, tls.ConnectionFailed):
                    self._reject_log(self._explain_failure(event))
                    return None
                if isinstance(event, tls.HandshakeComplete):
                    self._log_established(event, entry)
                if isinstance(event, tls.DataReceived):
                    self._early_data += event.data
            if self._engine.state is tls.State.ESTABLISHED:
                return entry

    async def _supply_kaf(
        self, events: list[tls.Event]
    ) -> tuple[list[tls.Event], KafEntry | None]:
        """Handle a KafNeeded event: resume the engine with K_AF, or reject the A-KID."""
        needed = [event for event in events if isinstance(event, tls.KafNeeded)]
        if not needed:
            return events, None
        others = [event for event in events if not isinstance(event, tls.KafNeeded)]
        a_kid = needed[0].a_kid
        logger.debug("connection %s presents A-KID %s", self.connection_id, a_kid)
        self._log_sni(needed[0].server_name)

        try:
            parse_a_kid(a_kid)
        except ValueError:
            return others + self._engine.reject(
                AlertDescription.unknown_psk_identity,
                "malformed A-KID (not in this deployment's A-KID layout)",
            ), None

        try:
            entry = await self._kaf.obtain(a_kid, needed[0].ua_protocol_id)
        except AanfError as error:
            return others + self._engine.reject(
                AlertDescription.internal_error, f"K_AF not available: {error}"
            ), None
        if entry is None:
            return others + self._engine.reject(
                AlertDescription.unknown_psk_identity, "unknown A-KID"
            ), None
        return others + self._engine.resume(), entry

    def _explain_failure(self, event: tls.ConnectionFailed) -> str:
        reason = event.reason
        client_hello = self._engine.client_hello
        if (
            (event.key_mismatch or event.binder_mismatch)
            and client_hello is not None
            and client_hello.server_name not in (None, self._kaf.fqdn)
        ):
            reason += (
                f"; the client sent SNI {client_hello.server_name!r} but this AF's FQDN is "
                f"{self._kaf.fqdn!r}"
            )
        if event.alert is not None:
            reason += f" (alert {event.alert.name})"
        return reason

    def _log_sni(self, server_name: str | None) -> None:
        if server_name is not None and server_name.lower() != self._kaf.fqdn.lower():
            logger.info(
                "connection %s: SNI %r differs from this AF's FQDN %r; the UE derives K_AF "
                "for the name it uses, so the handshake fails unless both agree",
                self.connection_id,
                server_name,
                self._kaf.fqdn,
            )

    def _reject_log(self, reason: str) -> None:
        logger.warning("connection %s rejected: %s", self.connection_id, reason)

    def _log_established(self, event: tls.HandshakeComplete, entry: KafEntry | None) -> None:
        logger.info(
            "connection %s established with an AKMA K_AF (%s)", self.connection_id, event.cipher_suite
        )
        if entry is not None:
            logger.debug(
                "connection %s: A-KID %s, UE ID %s", self.connection_id, event.a_kid, entry.ue_id
            )

    # CoAP

    async def _serve_coap(self, entry: KafEntry) -> None:
        await self._flush()

        try:
            async with asyncio.timeout_at(self._loop_deadline(entry)):
                await self._coap_loop(entry)
        except TimeoutError:
            logger.info("connection %s closed: its K_AF expired", self.connection_id)
            self._send_release(
                f"K_AF expired at {entry.expiry.isoformat()}; run primary authentication "
                "again, derive a new K_AF and reconnect"
            )
            await self._flush()

    @staticmethod
    def _loop_deadline(entry: KafEntry) -> float:
        loop = asyncio.get_running_loop()
        return loop.time() + max(0.0, entry.expiry.timestamp() - time.time())

    async def _coap_loop(self, entry: KafEntry) -> None:
        pending = bytes(self._early_data)
        self._early_data.clear()

        while not self._coap.closed:
            if pending:
                await self._process_application_data(pending, entry)
                await self._flush()
            if self._coap.closed or self._engine.state is not tls.State.ESTABLISHED:
                return

            data = await self._reader.read(READ_SIZE)
            if not data:
                logger.info("connection %s closed by the peer", self.connection_id)
                return
            pending = self._collect_application_data(self._engine.receive_data(data))

    def _collect_application_data(self, events: list[tls.Event]) -> bytes:
        data = bytearray()
        for event in events:
            if isinstance(event, tls.DataReceived):
                data += event.data
            elif isinstance(event, tls.ConnectionFailed):
                logger.warning("connection %s failed: %s", self.connection_id, event.reason)
            elif isinstance(event, tls.ConnectionClosed):
                logger.info("connection %s: peer sent close_notify", self.connection_id)
        return bytes(data)

    async def _process_application_data(self, data: bytes, entry: KafEntry) -> None:
        for event in self._coap.receive_data(data):
            if isinstance(event, coap.MessageReceived):
                await self._answer(event.message, entry)
            elif isinstance(event, coap.ConnectionAborted):
                logger.warning("connection %s aborted: %s", self.connection_id, event.diagnostic)
            elif isinstance(event, (coap.ReleaseReceived, coap.AbortReceived)):
                logger.info(
                    "connection %s: peer ended the CoAP session (%s)",
                    self.connection_id,
                    event.diagnostic or "no diagnostic",
                )

    async def _answer(self, message: Message, entry: KafEntry) -> None:
        if not message.code.is_request():
            return  # The server sends no requests, so a response matches nothing.

        try:
            response = await self._service.handle(message, entry.ue_id, self.connection_id)
        except Exception:
            logger.exception("connection %s: request failed", self.connection_id)
            response = diagnostic_response(Code.INTERNAL_SERVER_ERROR, "internal server error")

        response.token = bytes(message.token)
        try:
            self._coap.send_message(response)
        except (ValueError, ConnectionError) as error:
            logger.warning("connection %s: response not sent: %s", self.connection_id, error)

    def _send_release(self, diagnostic: str) -> None:
        if not self._coap.closed:
            self._coap.send_release(diagnostic)

    # Transport

    async def _flush(self) -> None:
        if self._engine.state is tls.State.ESTABLISHED:
            outgoing = self._coap.data_to_send()
            if outgoing:
                self._engine.send(outgoing)

        data = self._engine.data_to_send()
        if data:
            self._writer.write(data)
            await self._writer.drain()

    async def _release_on_shutdown(self) -> None:
        if self._engine.state is not tls.State.ESTABLISHED:
            return
        self._send_release("the MSGin5G Server is shutting down")
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            await self._flush()

    async def _close_transport(self) -> None:
        if self._engine.state is tls.State.ESTABLISHED:
            self._engine.close()
            with contextlib.suppress(ConnectionError):
                self._writer.write(self._engine.data_to_send())
        self._writer.close()
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            await self._writer.wait_closed()


class Msgin5gServer:
    """The listener: accepts connections and runs each one as its own task."""

    def __init__(
        self,
        *,
        kaf: KafProvider,
        service: CoapHandler,
        limits: Limits | None = None,
        engine_factory: EngineFactory | None = None,
        profile: str = "psk-tls1.3",
    ) -> None:
        self._kaf = kaf
        self._service = service
        self._limits = limits or Limits()
        self._engine_factory = engine_factory or tls13_engines()
        self.profile = profile
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.uri: str | None = None

    @property
    def active_connections(self) -> int:
        return len(self._connections)

    async def start(self, host: str, port: int) -> str:
        """Listen on host:port (port 0 picks a free port) and return the coaps+tcp URI."""
        self._server = await asyncio.start_server(self._accept, host, port)
        bound_host, bound_port = self._server.sockets[0].getsockname()[:2]
        shown_host = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.uri = f"coaps+tcp://{shown_host}:{bound_port}"
        logger.info(
            "MSGin5G Server for AF %s listening on %s (%s)", self._kaf.fqdn, self.uri, self.profile
        )
        return self.uri

    async def close(self) -> None:
        """Stop listening, end every connection with a CoAP Release, and wait for them."""
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        logger.info("%s listener on %s stopped", self.profile, self.uri)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._connections) >= self._limits.max_connections:
            logger.warning(
                "connection refused: the limit of %d connections is reached",
                self._limits.max_connections,
            )
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            return

        connection = ServerConnection(
            reader,
            writer,
            kaf=self._kaf,
            service=self._service,
            limits=self._limits,
            engine_factory=self._engine_factory,
        )
        # Each accepted connection runs in its own task (asyncio.start_server).
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            await connection.run()
        finally:
            self._connections.discard(task)


async def start_tls13_listener(
    host: str,
    port: int,
    *,
    kaf: KafProvider,
    service: CoapHandler,
    limits: Limits,
    **profile_options: object,
) -> Msgin5gServer:
    """Listen for CoAP over PSK-TLS 1.3 (`psk-tls1.3`); options as `Tls13Options`."""
    options = Tls13Options(**profile_options)
    server = Msgin5gServer(
        kaf=kaf, service=service, limits=limits, engine_factory=tls13_engines(options)
    )
    await server.start(host, port)
    return server


async def start_tls12_listener(
    host: str,
    port: int,
    *,
    kaf: KafProvider,
    service: CoapHandler,
    limits: Limits,
    **profile_options: object,
) -> Msgin5gServer:
    """Listen for CoAP over PSK-TLS 1.2 (`psk-tls1.2`); options as `Tls12Options`."""
    options = Tls12Options(**profile_options)
    server = Msgin5gServer(
        kaf=kaf,
        service=service,
        limits=limits,
        engine_factory=tls12_engines(options),
        profile="psk-tls1.2",
    )
    await server.start(host, port)
    return server
