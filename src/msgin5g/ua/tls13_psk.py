"""Sans-IO TLS 1.3 external-PSK engine for the AKMA AF (TS 33.535 B.1.3, TS 24.109 K.3.3).

The UE presents the PSK identity "3GPP-AKMA" immediately followed by its A-KID and
keys the handshake with K_AF. The AF learns K_AF only from the AAnF, which is a
network call, while OpenSSL requests the PSK in a synchronous callback. So the
server engine works in two steps:

1. `receive_data` collects the cleartext ClientHello, checks it and returns
   `KafNeeded(a_kid)`. Nothing has reached OpenSSL yet.
2. The adapter obtains K_AF (cache or AAnF) without blocking its event loop, stores
   it where `psk_lookup` finds it, and calls `resume()`. Only then do the buffered
   octets go into an `ssl.SSLObject` over memory BIOs, and OpenSSL's PSK callback
   reads K_AF through `psk_lookup`, which must not do I/O.

If the AAnF does not know the A-KID, the adapter calls `reject()`, which queues a
plaintext fatal alert. Every method returns events; `data_to_send()` returns the
octets to write to the peer.

The server context has no certificate, so a handshake that is not keyed by the
PSK cannot complete. The engine still checks after the handshake that OpenSSL took
K_AF from the callback, and rejects the session otherwise.

The key exchange mode is psk_dhe_ke. A server built with `allow_psk_ke=True` also
accepts a client that offers only psk_ke (no forward secrecy); OpenSSL then needs
SSL_OP_ALLOW_NO_DHE_KEX, which CPython does not name.

`PskServerEngine` holds what the TLS 1.3 engine and the TLS 1.2 engine
(`ua.tls12_psk`) share: the events, the states, application data and failures.
"""

import contextlib
import dataclasses
import enum
import ssl
from collections.abc import Callable, Iterator

from msgin5g.crypto.akma import UA_TLS13

from msgin5g.ua.alerts import CONTENT_TYPE_ALERT, AlertDescription, fatal_alert_record
from msgin5g.ua.clienthello import (
    DEFAULT_MAX_CLIENT_HELLO_SIZE,
    ClientHello,
    ClientHelloError,
    ClientHelloReader,
    PskKeyExchangeMode,
)

# TS 24.109 K.3.3 / TS 33.535 B.1.3: identity = "3GPP-AKMA" || A-KID, no separator.
AKMA_IDENTITY_PREFIX = b"3GPP-AKMA"

# OpenSSL 3.0 (ssl.h PSK_MAX_IDENTITY_LEN): a server does not call its PSK callback
# for a longer identity. CPython's client callback accepts one octet less, because
# it copies the identity with its terminating NUL into a buffer of this size.
MAX_SERVER_PSK_IDENTITY_OCTETS = 256
MAX_CLIENT_PSK_IDENTITY_OCTETS = MAX_SERVER_PSK_IDENTITY_OCTETS - 1

# OpenSSL 3.0 ties a PSK from the legacy callbacks to SHA-256. With a SHA-384 suite
# it drops the PSK and fails with "no suitable signature algorithm", so the engine
# requires one of these suites (RFC 8446 B.4 code points), the SHA-256 suites that
# OpenSSL 3.0 enables by default.
TLS_AES_128_GCM_SHA256 = 0x1301
TLS_CHACHA20_POLY1305_SHA256 = 0x1303
SHA256_TLS13_CIPHER_SUITES = frozenset({TLS_AES_128_GCM_SHA256, TLS_CHACHA20_POLY1305_SHA256})

# Octets a client may send while the AF waits for K_AF (early data, a second flight).
MAX_PENDING_OCTETS = 65536

READ_CHUNK = 65536

# RFC 8323 clause 8.2: the ALPN protocol ID of CoAP over TLS.
ALPN_COAP = "coap"

# OpenSSL 3.0 ssl.h: lets a TLS 1.3 server accept psk_ke (a PSK without (EC)DHE).
OP_ALLOW_NO_DHE_KEX = 0x400


class PskIdentityError(ValueError):
    """A PSK identity that is not "3GPP-AKMA" followed by a usable A-KID."""


def akma_psk_identity(a_kid: str) -> bytes:
    """Build the PSK identity "3GPP-AKMA" || A-KID and check that OpenSSL can carry it."""
    if not isinstance(a_kid, str) or not a_kid:
        raise PskIdentityError(f"a_kid must be a non-empty string, got {a_kid!r}")
    if not a_kid.isascii() or not a_kid.isprintable():
        raise PskIdentityError(
            f"a_kid {a_kid!r} contains characters outside printable ASCII; an A-KID is an NAI"
        )

    identity = AKMA_IDENTITY_PREFIX + a_kid.encode("ascii")
    if len(identity) > MAX_CLIENT_PSK_IDENTITY_OCTETS:
        raise PskIdentityError(
            f"the PSK identity for this A-KID has {len(identity)} octets; OpenSSL carries at "
            f"most {MAX_CLIENT_PSK_IDENTITY_OCTETS} from a Python client, so the A-KID may "
            f"have at most {MAX_CLIENT_PSK_IDENTITY_OCTETS - len(AKMA_IDENTITY_PREFIX)} octets"
        )
    return identity


def a_kid_from_identity(identity: bytes) -> str:
    """Return the A-KID of an AKMA PSK identity, or raise PskIdentityError with the reason."""
    if not identity:
        raise PskIdentityError("empty PSK identity")
    if not identity.startswith(AKMA_IDENTITY_PREFIX):
        raise PskIdentityError("PSK identity lacks the 3GPP-AKMA prefix")
    if len(identity) > MAX_SERVER_PSK_IDENTITY_OCTETS:
        raise PskIdentityError(
            f"PSK identity of {len(identity)} octets exceeds OpenSSL's limit of "
            f"{MAX_SERVER_PSK_IDENTITY_OCTETS} octets"
        )

    a_kid = identity[len(AKMA_IDENTITY_PREFIX) :]
    if not a_kid:
        raise PskIdentityError("PSK identity has no A-KID after the 3GPP-AKMA prefix")
    if not a_kid.isascii() or not a_kid.decode("ascii").isprintable():
        raise PskIdentityError("A-KID in the PSK identity is not printable ASCII")
    return a_kid.decode("ascii")


# Events


@dataclasses.dataclass(frozen=True)
class KafNeeded:
    """The client names this A-KID: obtain K_AF, then call resume() or reject().

    K_AF is the one for AF_ID = FQDN || `ua_protocol_id` (for TLS 1.2 this
    identifier contains the cipher suite the server has chosen).
    """

    a_kid: str
    server_name: str | None
    ua_protocol_id: bytes = UA_TLS13


@dataclasses.dataclass(frozen=True)
class HandshakeComplete:
    a_kid: str
    cipher_suite: str


@dataclasses.dataclass(frozen=True)
class DataReceived:
    data: bytes


@dataclasses.dataclass(frozen=True)
class ConnectionFailed:
    """The handshake or the session failed; `alert` is the alert sent, if any.

    `key_mismatch` is True when the client's K_AF differs from the one the AAnF
    returned: a TLS 1.3 PSK binder that does not verify (then `binder_mismatch`
    is True too) or a TLS 1.2 Finished message that does not decrypt or verify.
    """

    reason: str
    alert: AlertDescription | None
    binder_mismatch: bool = False
    key_mismatch: bool = False


@dataclasses.dataclass(frozen=True)
class ConnectionClosed:
    """The peer sent close_notify."""


Event = KafNeeded | HandshakeComplete | DataReceived | ConnectionFailed | ConnectionClosed


class State(enum.Enum):
    READING_CLIENT_HELLO = "reading ClientHello"
    # TLS 1.2 only: the server's first flight is out, the client's second is awaited.
    READING_CLIENT_KEY_EXCHANGE = "reading ClientKeyExchange"
    AWAITING_KAF = "awaiting K_AF"
    HANDSHAKING = "handshaking"
    ESTABLISHED = "established"
    CLOSED = "closed"
    FAILED = "failed"


# Calls allowed in each state. Octets that arrive in a final state are dropped.
_ALLOWED_CALLS = {
    "receive_data": {
        State.READING_CLIENT_HELLO,
        State.READING_CLIENT_KEY_EXCHANGE,
        State.AWAITING_KAF,
        State.HANDSHAKING,
        State.ESTABLISHED,
    },
    "resume": {State.AWAITING_KAF},
    "reject": {
        State.READING_CLIENT_HELLO,
        State.READING_CLIENT_KEY_EXCHANGE,
        State.AWAITING_KAF,
        State.HANDSHAKING,
    },
    "send": {State.ESTABLISHED},
    "close": {State.ESTABLISHED, State.HANDSHAKING},
}


class EngineStateError(RuntimeError):
    """A method was called in a state that does not allow it (a bug in the adapter)."""


def _check_client_hello(
    client_hello: ClientHello, allow_psk_ke: bool = False
) -> tuple[AlertDescription, str] | None:
    """Return (alert, reason) when the ClientHello cannot lead to an AKMA PSK session."""
    if not client_hello.offers_tls13:
        return AlertDescription.protocol_version, "client does not offer TLS 1.3"

    if not SHA256_TLS13_CIPHER_SUITES.intersection(client_hello.cipher_suites):
        return (
            AlertDescription.handshake_failure,
            "client offers no SHA-256 TLS 1.3 cipher suite (TLS_AES_128_GCM_SHA256 or "
            "TLS_CHACHA20_POLY1305_SHA256); the AKMA PSK is bound to SHA-256",
        )

    if client_hello.psk_identities is None:
        return AlertDescription.handshake_failure, "client offers no PSK"

    if client_hello.psk_key_exchange_modes is None:
        # RFC 8446 clause 4.2.9: pre_shared_key without psk_key_exchange_modes.
        return AlertDescription.missing_extension, "client sends no psk_key_exchange_modes"

    modes = client_hello.psk_key_exchange_modes
    if PskKeyExchangeMode.psk_dhe_ke in modes:
        return None
    if allow_psk_ke and PskKeyExchangeMode.psk_ke in modes:
        return None
    if PskKeyExchangeMode.psk_ke in modes:
        return (
            AlertDescription.handshake_failure,
            "client offers only psk_ke; this server requires psk_dhe_ke ((EC)DHE with the "
            "PSK) unless allow_psk_ke is configured",
        )
    return (
        AlertDescription.handshake_failure,
        "client does not offer psk_dhe_ke; this server requires (EC)DHE with the PSK",
    )


def _select_a_kid(client_hello: ClientHello) -> str:
    """Return the A-KID of the first AKMA identity, else raise for the first identity."""
    identities = client_hello.psk_identities or ()
    for offered in identities:
        if offered.identity.startswith(AKMA_IDENTITY_PREFIX):
            return a_kid_from_identity(offered.identity)
    return a_kid_from_identity(identities[0].identity if identities else b"")


class PskServerEngine:
    """Base of the TLS 1.3 and TLS 1.2 AKMA PSK server engines: state, data, failures.

    A subclass reads the cleartext handshake up to the PSK identity, creates
    `self._ssl_object` over `self._incoming_bio` and `self._outgoing_bio`, and
    sets `self._psk_supplied` when its PSK callback returned K_AF.
    """

    # The protocol version that `SSLObject.version()` must report once established.
    expected_version = ""

    def __init__(self, *, max_client_hello_size: int = DEFAULT_MAX_CLIENT_HELLO_SIZE) -> None:
        self._reader = ClientHelloReader(max_client_hello_size)
        self._state = State.READING_CLIENT_HELLO
        self._pending = bytearray()
        self._outgoing = bytearray()
        self._client_hello: ClientHello | None = None
        self._a_kid: str | None = None
        self._psk_supplied = False
        self._incoming_bio = ssl.MemoryBIO()
        self._outgoing_bio = ssl.MemoryBIO()
        self._ssl_object: ssl.SSLObject | None = None

    @property
    def state(self) -> State:
        return self._state

    @property
    def _ssl(self) -> ssl.SSLObject:
        if self._ssl_object is None:
            raise EngineStateError("OpenSSL has not started yet: resume() must come first")
        return self._ssl_object

    @property
    def a_kid(self) -> str | None:
        return self._a_kid

    @property
    def client_hello(self) -> ClientHello | None:
        return self._client_hello

    def receive_data(self, data: bytes) -> list[Event]:
        """Take octets from the peer; return the events they caused."""
        if self._state in (State.CLOSED, State.FAILED):
            return []
        self._require("receive_data")

        if self._state is State.READING_CLIENT_HELLO:
            return self._receive_client_hello_octets(data)
        if self._state is State.READING_CLIENT_KEY_EXCHANGE:
            return self._receive_client_key_exchange_octets(data)
        if self._state is State.AWAITING_KAF:
            return self._buffer_while_awaiting_kaf(data)

        self._incoming_bio.write(data)
        if self._state is State.HANDSHAKING:
            return self._advance_handshake()
        return self._read_application_data()

    def _receive_client_hello_octets(self, data: bytes) -> list[Event]:
        """Hold the octets until the ClientHello is whole, then check it."""
        self._pending += data
        try:
            client_hello = self._reader.receive_data(data)
        except ClientHelloError as error:
            return self._fail(f"malformed ClientHello: {error}", error.alert)
        if client_hello is None:
            return []

        self._client_hello = client_hello
        rejection = self._check_client_hello(client_hello)
        if rejection is not None:
            alert, reason = rejection
            return self._fail(reason, alert)
        return self._client_hello_accepted(client_hello)

    def _check_client_hello(self, client_hello: ClientHello) -> tuple[AlertDescription, str] | None:
        """Return (alert, reason) when this engine cannot serve the ClientHello."""
        raise NotImplementedError

    def _client_hello_accepted(self, client_hello: ClientHello) -> list[Event]:
        """Continue the handshake after a ClientHello that passed the check."""
        raise NotImplementedError

    def _receive_client_key_exchange_octets(self, data: bytes) -> list[Event]:
        # Only TLS 1.2 reads a ClientKeyExchange before OpenSSL does; TLS 1.3
        # never enters READING_CLIENT_KEY_EXCHANGE.
        raise EngineStateError(f"{type(self).__name__} does not read a ClientKeyExchange")

    def data_to_send(self) -> bytes:
        """Return and clear the octets queued for the peer."""
        self._outgoing += self._outgoing_bio.read()
        data = bytes(self._outgoing)
        self._outgoing.clear()
        return data

    def reject(self, alert: AlertDescription, reason: str) -> list[Event]:
        """Send a fatal alert in the clear and fail the connection."""
        self._require("reject")
        return self._fail(reason, alert)

    def send(self, data: bytes) -> None:
        """Encrypt application data for the peer."""
        self._require("send")
        view = memoryview(data)
        while view:
            written = self._ssl.write(view)
            view = view[written:]

    def close(self) -> None:
        """Send close_notify; the engine accepts no more data afterwards."""
        self._require("close")
        try:
            self._ssl.unwrap()
        except ssl.SSLWantReadError:
            pass  # close_notify is queued; the peer's reply is not awaited.
        except ssl.SSLError:
            pass  # The session is going away either way.
        self._state = State.CLOSED

    # Steps

    def _require(self, call: str) -> None:
        if self._state not in _ALLOWED_CALLS[call]:
            raise EngineStateError(f"{call}() is not allowed in state {self._state.value}")

    def _buffer_while_awaiting_kaf(self, data: bytes) -> list[Event]:
        self._pending += data
        if len(self._pending) > MAX_PENDING_OCTETS:
            return self._fail(
                f"client sent more than {MAX_PENDING_OCTETS} octets before the handshake "
                "could continue",
                AlertDescription.unexpected_message,
            )
        return []

    def _advance_handshake(self) -> list[Event]:
        try:
            self._ssl.do_handshake()
        except ssl.SSLWantReadError:
            return []
        except ssl.SSLError as error:
            return self._fail_from_openssl(error)

        rejection = self._check_established_session()
        if rejection is not None:
            return self._fail(rejection, AlertDescription.handshake_failure)

        self._state = State.ESTABLISHED
        cipher = self._ssl.cipher()
        events: list[Event] = [
            HandshakeComplete(a_kid=self._a_kid or "", cipher_suite=cipher[0] if cipher else "")
        ]
        return events + self._read_application_data()

    def _check_established_session(self) -> str | None:
        version = self._ssl.version()
        if version != self.expected_version:
            return f"negotiated {version}, not {self.expected_version}"
        if not self._psk_supplied:
            return "session was not keyed by K_AF"
        return None

    def _read_application_data(self) -> list[Event]:
        chunks = []
        events: list[Event] = []
        while True:
            try:
                chunk = self._ssl.read(READ_CHUNK)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                chunk = b""
            except ssl.SSLError as error:
                return self._data_events(chunks) + self._fail_from_openssl(error)
            if not chunk:
                # CPython returns b"" (or raises SSLZeroReturnError) after close_notify.
                self._state = State.CLOSED
                events.append(ConnectionClosed())
                break
            chunks.append(chunk)
        return self._data_events(chunks) + events

    @staticmethod
    def _data_events(chunks: list[bytes]) -> list[Event]:
        return [DataReceived(b"".join(chunks))] if chunks else []

    def _fail_from_openssl(self, error: ssl.SSLError) -> list[Event]:
        # OpenSSL has already queued its own alert in the outgoing BIO.
        self._outgoing += self._outgoing_bio.read()
        alert = plaintext_alert_in(self._outgoing)
        reason = getattr(error, "reason", None)

        if not self._psk_supplied and self._state is State.HANDSHAKING:
            text = f"no usable K_AF for the PSK identity when OpenSSL asked ({reason})"
        else:
            text = f"TLS error: {reason or error}"
        return self._fail(text, alert, send_alert=False)

    def _fail(
        self, reason: str, alert: AlertDescription | None, *, send_alert: bool = True
    ) -> list[Event]:
        if send_alert and alert is not None:
            self._outgoing += fatal_alert_record(alert)
        self._state = State.FAILED
        self._pending.clear()
        return [ConnectionFailed(reason=reason, alert=alert)]


class Tls13PskServer(PskServerEngine):
    """The TLS 1.3 server side of one connection.

    `psk_lookup(a_kid)` returns K_AF from the AF's cache, or None when the cache
    has no live entry. OpenSSL calls it during the handshake, so it must not block.
    With `allow_psk_ke` the server also accepts a client that offers only psk_ke.
    """

    expected_version = "TLSv1.3"

    def __init__(
        self,
        psk_lookup: Callable[[str], bytes | None],
        *,
        max_client_hello_size: int = DEFAULT_MAX_CLIENT_HELLO_SIZE,
        allow_psk_ke: bool = False,
        shared_context: "SharedServerContext | None" = None,
    ) -> None:
        super().__init__(max_client_hello_size=max_client_hello_size)
        self._psk_lookup = psk_lookup
        self._allow_psk_ke = allow_psk_ke
        if shared_context is not None and shared_context.allow_psk_ke != allow_psk_ke:
            raise ValueError("the shared context's allow_psk_ke differs from the engine's")
        self._shared_context = shared_context

    def resume(self) -> list[Event]:
        """Hand the buffered octets to OpenSSL; K_AF must now be in the cache."""
        self._require("resume")
        self._state = State.HANDSHAKING
        self._start_ssl_object()

        self._incoming_bio.write(bytes(self._pending))
        self._pending.clear()
        return self._advance_handshake()

    def _check_client_hello(self, client_hello: ClientHello) -> tuple[AlertDescription, str] | None:
        return _check_client_hello(client_hello, self._allow_psk_ke)

    def _client_hello_accepted(self, client_hello: ClientHello) -> list[Event]:
        try:
            self._a_kid = _select_a_kid(client_hello)
        except PskIdentityError as error:
            return self._fail(str(error), AlertDescription.unknown_psk_identity)

        self._state = State.AWAITING_KAF
        return [KafNeeded(a_kid=self._a_kid, server_name=client_hello.server_name)]

    def _start_ssl_object(self) -> None:
        # Either way the PSK callback reaches this engine only, so it returns K_AF only for
        # the identity of this connection's ClientHello and records that K_AF keyed the session.
        if self._shared_context is not None:
            context = self._shared_context.context
        else:
            context = _server_context(self._allow_psk_ke)
            context.set_psk_server_callback(self._psk_server_callback)

        self._ssl_object = context.wrap_bio(
            self._incoming_bio, self._outgoing_bio, server_side=True
        )

    def _advance_handshake(self) -> list[Event]:
        if self._shared_context is None:
            return super()._advance_handshake()
        with self._shared_context.serving(self):
            return super()._advance_handshake()

    def _psk_server_callback(self, identity: str | None) -> bytes:
        # Called by OpenSSL during do_handshake(); an empty result declines the identity.
        if self._a_kid is None or identity != AKMA_IDENTITY_PREFIX.decode() + self._a_kid:
            return b""

        k_af = self._psk_lookup(self._a_kid)
        if not k_af:
            return b""
        self._psk_supplied = True
        return k_af

    def _fail_from_openssl(self, error: ssl.SSLError) -> list[Event]:
        if getattr(error, "reason", None) != "BINDER_DOES_NOT_VERIFY":
            return super()._fail_from_openssl(error)

        self._outgoing += self._outgoing_bio.read()
        text = (
            "PSK binder did not verify: the client's K_AF differs from the one the "
            "AAnF returned (wrong AF FQDN in AF_ID or stale K_AKMA at the UE)"
        )
        failed = self._fail(text, plaintext_alert_in(self._outgoing), send_alert=False)
        return [dataclasses.replace(failed[0], binder_mismatch=True, key_mismatch=True)]


def _server_context(allow_psk_ke: bool) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.maximum_version = ssl.TLSVersion.TLSv1_3
    context.num_tickets = 0
    if allow_psk_ke:
        context.options |= OP_ALLOW_NO_DHE_KEX
    context.set_alpn_protocols([ALPN_COAP])
    return context


class SharedServerContext:
    """One SSLContext for every connection of a listener, which saves building one per handshake.

    Python's PSK server callback receives only the identity, not the connection,
    so the context routes it to the engine whose `do_handshake()` is running.
    That is safe because the engines run on one event-loop thread and
    `do_handshake()` is synchronous: no other engine's handshake step can run
    in between. Outside `serving()` the callback declines every identity.
    """

    def __init__(self, *, allow_psk_ke: bool = False) -> None:
        self.allow_psk_ke = allow_psk_ke
        self.context = _server_context(allow_psk_ke)
        self.context.set_psk_server_callback(self._psk_server_callback)
        self._current: Tls13PskServer | None = None

    @contextlib.contextmanager
    def serving(self, engine: "Tls13PskServer") -> Iterator[None]:
        """Route the PSK callback to `engine` while the block runs."""
        if self._current is not None:
            raise EngineStateError("a TLS 1.3 handshake step is already running on this context")
        self._current = engine
        try:
            yield
        finally:
            self._current = None

    def _psk_server_callback(self, identity: str | None) -> bytes:
        engine = self._current
        if engine is None:
            return b""
        return engine._psk_server_callback(identity)


def plaintext_alert_in(data: bytes) -> AlertDescription | None:
    """Return the description of the first plaintext alert record in `data`, if any.

    After the ServerHello the alerts are encrypted and this returns None.
    """
    offset = 0
    while offset + 5 <= len(data):
        content_type = data[offset]
        length = int.from_bytes(data[offset + 3 : offset + 5], "big")
        fragment = data[offset + 5 : offset + 5 + length]
        if content_type == CONTENT_TYPE_ALERT and len(fragment) == 2:
            try:
                return AlertDescription(fragment[1])
            except ValueError:
                return None
        offset += 5 + length
    return None


def client_context(identity: bytes, k_af: bytes) -> ssl.SSLContext:
    """Build the UE's TLS 1.3 context that offers only the AKMA external PSK.

    `server_hostname` (the AF FQDN) is passed when the connection is wrapped and is
    sent as SNI. The context requires certificate verification but trusts no
    certificate authority: a PSK handshake involves no certificate and succeeds,
    while a server that declines the PSK and presents a certificate is refused. So
    the UE accepts only a session keyed by K_AF.
    """
    if len(k_af) != 32:
        raise ValueError(f"k_af must be 32 octets, got {len(k_af)}")
    identity_text = identity.decode("ascii")

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.maximum_version = ssl.TLSVersion.TLSv1_3
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = True
    context.set_psk_client_callback(lambda hint: (identity_text, k_af))
    return context
