"""Sans-IO DTLS 1.2 PSK engines for the AKMA AF and the UE (TS 33.535 Annex C).

The UE sends the PSK identity "3GPP-AKMA" || A-KID in the ClientKeyExchange and
keys the handshake with K_AF, whose AF_ID ends with the Ua* protocol identifier
01 00 01 yy zz of the negotiated cipher suite (`crypto.akma.ua_dtls12`). Both
engines run a pyOpenSSL Connection (DTLS_METHOD) over memory BIOs: datagrams
in, events and datagrams out, timers asked for and reported by the adapter.

Server (`Dtls12PskServer`), one per peer, created only after the peer returned
a valid cookie (`CookieJar`, `inspect_client_hello`, RFC 6347 clause 4.2.1), so
that no per-peer state exists for a spoofed address:

1. It reassembles the ClientHello that carries the cookie and hands it to
   DTLSv1_listen, which sets OpenSSL's sequence numbers as after a
   HelloVerifyRequest, then continues the handshake.
2. It keeps back the flight that starts with the ClientKeyExchange, reads the PSK
   identity in the clear and returns `KafNeeded(a_kid, cipher_suite)`; the
   cipher suite comes from the ServerHello this engine sent.
3. The adapter obtains K_AF (cache or AAnF), then calls `resume()`: the held
   datagrams go to OpenSSL, whose PSK callback only reads the cache. Without a
   K_AF the callback declines and OpenSSL sends the fatal alert
   unknown_psk_identity.

Client (`Dtls12PskClient`): reads the cipher suite from the ServerHello before
OpenSSL sees it, so that its PSK callback derives K_AF for that suite.

OpenSSL writes each datagram to the memory BIO without boundaries; the engines
split its output into records and pack whole records into datagrams of at most
the MTU, which OpenSSL already respects per record (SSL_OP_NO_QUERY_MTU).
"""

import dataclasses
import enum
import hashlib
import hmac
import logging
import os
import re
import weakref
from collections.abc import Callable

from OpenSSL import SSL

from msgin5g.ua import openssl_psk
from msgin5g.ua.alerts import AlertDescription

logger = logging.getLogger(__name__)

# TS 24.109 K.3.2 / TS 33.535 B.1.3: identity = "3GPP-AKMA" || A-KID; the
# ServerKeyExchange hint is "3GPP-AKMA".
AKMA_IDENTITY_PREFIX = b"3GPP-AKMA"
AKMA_IDENTITY_HINT = b"3GPP-AKMA"

# RFC 6655 and RFC 5487 code points.
TLS_PSK_WITH_AES_128_CCM_8 = 0xC0A8
TLS_PSK_WITH_AES_128_GCM_SHA256 = 0x00A8
CIPHER_SUITES = {
    "PSK-AES128-CCM8": TLS_PSK_WITH_AES_128_CCM_8,
    "PSK-AES128-GCM-SHA256": TLS_PSK_WITH_AES_128_GCM_SHA256,
}
# The OpenSSL 4 bundled with cryptography 50 allows the 64-bit tag of CCM8 only at
# security level 0; the system OpenSSL 3.0 allows it at its default level. CCM8
# comes first: it is the CoAP default (RFC 7252 clause 9.1.3.1).
CIPHER_LIST = b"PSK-AES128-CCM8:PSK-AES128-GCM-SHA256:@SECLEVEL=0"

DTLS1_2_VERSION = 0xFEFD
DTLS1_0_VERSION = 0xFEFF

# RFC 6347 clause 4.1 and 4.2.2.
RECORD_HEADER_OCTETS = 13
HANDSHAKE_HEADER_OCTETS = 12
CONTENT_CHANGE_CIPHER_SPEC = 20
CONTENT_ALERT = 21
CONTENT_HANDSHAKE = 22
CONTENT_APPLICATION_DATA = 23
HANDSHAKE_CLIENT_HELLO = 1
HANDSHAKE_SERVER_HELLO = 2
HANDSHAKE_HELLO_VERIFY_REQUEST = 3
HANDSHAKE_CLIENT_KEY_EXCHANGE = 16

DEFAULT_MTU = 1200
MIN_MTU = 256  # OpenSSL refuses a smaller DTLS MTU
MAX_HANDSHAKE_MESSAGE_OCTETS = 4096  # ClientHello and ClientKeyExchange of a PSK handshake
MAX_HELD_DATAGRAMS = 32  # while the AF waits for K_AF
COOKIE_OCTETS = 32
READ_SIZE = 65536


class DtlsParseError(ValueError):
    """A datagram that is not a sequence of DTLS records."""


class EngineStateError(RuntimeError):
    """A method was called in a state that does not allow it (a bug in the adapter)."""


# Records and handshake fragments


@dataclasses.dataclass(frozen=True)
class Record:
    content_type: int
    version: int
    epoch: int
    sequence: int
    fragment: bytes


@dataclasses.dataclass(frozen=True)
class HandshakeFragment:
    msg_type: int
    length: int
    message_seq: int
    offset: int
    body: bytes


def parse_records(datagram: bytes) -> list[Record]:
    """Split a datagram into DTLS records (RFC 6347 clause 4.1)."""
    records = []
    position = 0
    while position < len(datagram):
        header = datagram[position : position + RECORD_HEADER_OCTETS]
        if len(header) < RECORD_HEADER_OCTETS:
            raise DtlsParseError(f"truncated record header at octet {position}")
        length = int.from_bytes(header[11:13], "big")
        start = position + RECORD_HEADER_OCTETS
        if start + length > len(datagram):
            raise DtlsParseError(f"record at octet {position} runs past the datagram")
        records.append(
            Record(
                content_type=header[0],
                version=int.from_bytes(header[1:3], "big"),
                epoch=int.from_bytes(header[3:5], "big"),
                sequence=int.from_bytes(header[5:11], "big"),
                fragment=datagram[start : start + length],
            )
        )
        position = start + length
    return records


def parse_handshake_fragments(record: Record) -> list[HandshakeFragment]:
    """Return the handshake fragments of a cleartext (epoch 0) handshake record."""
    if record.content_type != CONTENT_HANDSHAKE or record.epoch != 0:
        return []
    fragments = []
    data = record.fragment
    position = 0
    while position < len(data):
        header = data[position : position + HANDSHAKE_HEADER_OCTETS]
        if len(header) < HANDSHAKE_HEADER_OCTETS:
            raise DtlsParseError("truncated handshake header")
        length = int.from_bytes(header[1:4], "big")
        offset = int.from_bytes(header[6:9], "big")
        fragment_length = int.from_bytes(header[9:12], "big")
        start = position + HANDSHAKE_HEADER_OCTETS
        if start + fragment_length > len(data) or offset + fragment_length > length:
            raise DtlsParseError("handshake fragment runs past its record or message")
        fragments.append(
            HandshakeFragment(
                msg_type=header[0],
                length=length,
                message_seq=int.from_bytes(header[4:6], "big"),
                offset=offset,
                body=data[start : start + fragment_length],
            )
        )
        position = start + fragment_length
    return fragments


def handshake_fragments(datagram: bytes) -> list[tuple[Record, HandshakeFragment]]:
    """Return every cleartext handshake fragment of a datagram with its record."""
    return [
        (record, fragment)
        for record in parse_records(datagram)
        for fragment in parse_handshake_fragments(record)
    ]


class MessageReassembler:
    """Collects the fragments of one handshake message type (RFC 6347 clause 4.2.3)."""

    def __init__(self, msg_type: int, max_octets: int = MAX_HANDSHAKE_MESSAGE_OCTETS) -> None:
        self.msg_type = msg_type
        self._max_octets = max_octets
        self._key: tuple[int, int] | None = None  # (message_seq, length)
        self._body = bytearray()
        self._received = bytearray()
        self.first_record: Record | None = None

    @property
    def started(self) -> bool:
        return self._key is not None

    def add(self, record: Record, fragment: HandshakeFragment) -> bytes | None:
        """Add one fragment; return the whole message body once every octet arrived."""
        if fragment.msg_type != self.msg_type:
            return None
        if fragment.length > self._max_octets:
            raise DtlsParseError(
                f"handshake message of {fragment.length} octets exceeds {self._max_octets}"
            )
        key = (fragment.message_seq, fragment.length)
        if self._key is None or key[0] > self._key[0]:
            self._key = key
            self._body = bytearray(fragment.length)
            self._received = bytearray(fragment.length)
            self.first_record = record
        if key != self._key:
            return None

        end = fragment.offset + len(fragment.body)
        self._body[fragment.offset : end] = fragment.body
        self._received[fragment.offset : end] = b"\x01" * len(fragment.body)
        if all(self._received):
            return bytes(self._body)
        return None

    @property
    def message_seq(self) -> int:
        return self._key[0] if self._key else 0


def handshake_record(record: Record, msg_type: int, message_seq: int, body: bytes) -> bytes:
    """Build one record carrying a whole handshake message, with `record`'s header fields."""
    length = len(body).to_bytes(3, "big")
    message = bytes([msg_type]) + length + message_seq.to_bytes(2, "big")
    message += (0).to_bytes(3, "big") + length + body
    return _record_header(CONTENT_HANDSHAKE, record.version, record.epoch, record.sequence, len(message)) + message


def _record_header(content_type: int, version: int, epoch: int, sequence: int, length: int) -> bytes:
    return (
        bytes([content_type])
        + version.to_bytes(2, "big")
        + epoch.to_bytes(2, "big")
        + sequence.to_bytes(6, "big")
        + length.to_bytes(2, "big")
    )


# ClientHello fields and the stateless cookie


@dataclasses.dataclass(frozen=True)
class ClientHelloStart:
    """The fields at the start of a ClientHello: all that the first fragment surely holds."""

    record: Record
    message_seq: int
    length: int
    whole: bool  # the first fragment is the whole message
    client_version: int
    random: bytes
    session_id: bytes
    cookie: bytes


def _read_vector(data: bytes, position: int, length_octets: int) -> tuple[bytes, int]:
    if position + length_octets > len(data):
        raise DtlsParseError("truncated length field")
    length = int.from_bytes(data[position : position + length_octets], "big")
    start = position + length_octets
    if start + length > len(data):
        raise DtlsParseError("vector runs past its message")
    return data[start : start + length], start + length


def parse_client_hello_start(body: bytes) -> tuple[int, bytes, bytes, bytes]:
    """Return (client_version, random, session_id, cookie) of a ClientHello body or first fragment."""
    if len(body) < 34:
        raise DtlsParseError("ClientHello fragment too short for version and random")
    session_id, position = _read_vector(body, 34, 1)
    cookie, _ = _read_vector(body, position, 1)
    return int.from_bytes(body[0:2], "big"), body[2:34], session_id, cookie


def inspect_client_hello(datagram: bytes) -> ClientHelloStart | None:
    """Return the start of the ClientHello in a datagram from an unknown peer, or None."""
    try:
        for record, fragment in handshake_fragments(datagram):
            if fragment.msg_type != HANDSHAKE_CLIENT_HELLO or fragment.offset != 0:
                continue
            version, random, session_id, cookie = parse_client_hello_start(fragment.body)
            return ClientHelloStart(
                record=record,
                message_seq=fragment.message_seq,
                length=fragment.length,
                whole=len(fragment.body) == fragment.length,
                client_version=version,
                random=random,
                session_id=session_id,
                cookie=cookie,
            )
    except DtlsParseError:
        return None
    return None


class CookieJar:
    """Stateless cookies: HMAC-SHA-256(secret, peer address, ClientHello fields).

    RFC 6347 clause 4.2.1 suggests Cookie = HMAC(Secret, Client-IP, Client-Parameters).
    The parameters here are the version, random and session ID, which sit in the
    first fragment of every ClientHello and which the client repeats with the cookie.
    NOTE: the secret is not rotated during the listener's lifetime.
    """

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret if secret is not None else os.urandom(32)

    def cookie(self, peer: str, hello: ClientHelloStart) -> bytes:
        message = b"|".join(
            [peer.encode(), hello.client_version.to_bytes(2, "big"), hello.random, hello.session_id]
        )
        return hmac.new(self._secret, message, hashlib.sha256).digest()[:COOKIE_OCTETS]

    def verify(self, peer: str, hello: ClientHelloStart) -> bool:
        return hmac.compare_digest(self.cookie(peer, hello), hello.cookie)

    def hello_verify_request(self, peer: str, hello: ClientHelloStart) -> bytes:
        """Build the HelloVerifyRequest datagram for this ClientHello.

        RFC 6347 clause 4.2.1: server_version DTLS 1.0, and the record sequence
        number of the ClientHello, so that the server keeps no state.
        """
        cookie = self.cookie(peer, hello)
        body = DTLS1_0_VERSION.to_bytes(2, "big") + bytes([len(cookie)]) + cookie
        record = Record(CONTENT_HANDSHAKE, DTLS1_0_VERSION, 0, hello.record.sequence, b"")
        return handshake_record(record, HANDSHAKE_HELLO_VERIFY_REQUEST, 0, body)


def server_hello_cipher_suite(datagram: bytes) -> int | None:
    """Return the cipher suite of a ServerHello in the datagram, if its first fragment is there."""
    try:
        for _, fragment in handshake_fragments(datagram):
            if fragment.msg_type != HANDSHAKE_SERVER_HELLO or fragment.offset != 0:
                continue
            _, position = _read_vector(fragment.body, 34, 1)
            if position + 2 <= len(fragment.body):
                return int.from_bytes(fragment.body[position : position + 2], "big")
    except DtlsParseError:
        return None
    return None


def pack_datagrams(stream: bytes, mtu: int, epoch0_offset: int = 0) -> list[bytes]:
    """Pack the records of OpenSSL's output into datagrams of at most `mtu` octets.

    `epoch0_offset` is added to the sequence numbers of cleartext (epoch 0) records.
    """
    datagrams: list[bytes] = []
    current = b""
    for start, end in _record_bounds(stream):
        octets = stream[start:end]
        if epoch0_offset and octets[3:5] == b"\0\0":
            sequence = int.from_bytes(octets[5:11], "big") + epoch0_offset
            octets = octets[:5] + sequence.to_bytes(6, "big") + octets[11:]
        if current and len(current) + len(octets) > mtu:
            datagrams.append(current)
            current = b""
        current += octets
    if current:
        datagrams.append(current)
    return datagrams


def _record_bounds(stream: bytes) -> list[tuple[int, int]]:
    """Return the (start, end) octets of each DTLS record in `stream`, header included.

    `pack_datagrams` needs only the record boundaries, so it skips the fields
    that `parse_records` reads.
    """
    bounds = []
    position = 0
    while position < len(stream):
        if position + RECORD_HEADER_OCTETS > len(stream):
            raise DtlsParseError(f"truncated record header at octet {position}")
        end = position + RECORD_HEADER_OCTETS + int.from_bytes(stream[position + 11 : position + 13], "big")
        if end > len(stream):
            raise DtlsParseError(f"record at octet {position} runs past the datagram")
        bounds.append((position, end))
        position = end
    return bounds


# PSK identity


class PskIdentityError(ValueError):
    """A PSK identity that is not "3GPP-AKMA" followed by an A-KID."""


def akma_psk_identity(a_kid: str) -> bytes:
    """Build the PSK identity "3GPP-AKMA" || A-KID."""
    if not isinstance(a_kid, str) or not a_kid or not a_kid.isascii() or not a_kid.isprintable():
        raise PskIdentityError(
            f"a_kid must be a non-empty printable ASCII string (an NAI), got {a_kid!r}"
        )
    return AKMA_IDENTITY_PREFIX + a_kid.encode("ascii")


def a_kid_from_identity(identity: bytes) -> str:
    """Return the A-KID of an AKMA PSK identity, or raise PskIdentityError with the reason."""
    if not identity:
        raise PskIdentityError("empty PSK identity")
    if not identity.startswith(AKMA_IDENTITY_PREFIX):
        raise PskIdentityError("PSK identity lacks the 3GPP-AKMA prefix")
    a_kid = identity[len(AKMA_IDENTITY_PREFIX) :]
    if not a_kid:
        raise PskIdentityError("PSK identity has no A-KID after the 3GPP-AKMA prefix")
    if not a_kid.isascii() or not a_kid.decode("ascii").isprintable():
        raise PskIdentityError("A-KID in the PSK identity is not printable ASCII")
    return a_kid.decode("ascii")


def parse_psk_identity(client_key_exchange: bytes) -> bytes:
    """Return psk_identity<0..2^16-1> of a PSK ClientKeyExchange (RFC 4279 clause 2)."""
    identity, end = _read_vector(client_key_exchange, 0, 2)
    if end != len(client_key_exchange):
        raise DtlsParseError("ClientKeyExchange has octets after the PSK identity")
    return identity


# Events


@dataclasses.dataclass(frozen=True)
class KafNeeded:
    """The ClientKeyExchange names this A-KID: obtain K_AF for the suite, then resume()."""

    a_kid: str
    cipher_suite: int


@dataclasses.dataclass(frozen=True)
class HandshakeComplete:
    cipher_suite: int
    cipher_name: str


@dataclasses.dataclass(frozen=True)
class DataReceived:
    data: bytes


@dataclasses.dataclass(frozen=True)
class ConnectionFailed:
    """The handshake or session failed; `alert` is the alert received or sent, if known."""

    reason: str
    alert: AlertDescription | None = None


@dataclasses.dataclass(frozen=True)
class ConnectionClosed:
    """The peer sent close_notify."""


Event = KafNeeded | HandshakeComplete | DataReceived | ConnectionFailed | ConnectionClosed


class State(enum.Enum):
    READING_CLIENT_HELLO = "reading ClientHello"
    HANDSHAKING = "handshaking"
    AWAITING_KAF = "awaiting K_AF"
    ESTABLISHED = "established"
    CLOSED = "closed"
    FAILED = "failed"


_ALERT_PATTERN = re.compile(r"alert (?P<name>[a-z0-9 ]+)")


def _error_text(error: SSL.Error) -> str:
    parts = []
    for item in error.args[0] if error.args and isinstance(error.args[0], list) else []:
        if isinstance(item, tuple) and item:
            parts.append(str(item[-1]))
    return "; ".join(parts) or str(error) or type(error).__name__


# OpenSSL errors after which it sent this fatal alert itself.
_SENT_ALERTS = {
    "psk identity not found": AlertDescription.unknown_psk_identity,
}


def alert_in_error(text: str) -> AlertDescription | None:
    """Return the alert that an OpenSSL error text reports as received or sent, if any."""
    match = _ALERT_PATTERN.search(text)
    if match is None:
        return next((alert for key, alert in _SENT_ALERTS.items() if key in text), None)
    return AlertDescription.__members__.get(match["name"].strip().replace(" ", "_"))


def _base_context() -> SSL.Context:
    context = SSL.Context(SSL.DTLS_METHOD)
    context.set_min_proto_version(DTLS1_2_VERSION)
    context.set_max_proto_version(DTLS1_2_VERSION)
    context.set_cipher_list(CIPHER_LIST)
    context.set_options(openssl_psk.no_query_mtu_option() | SSL.OP_NO_TICKET)
    context.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    return context


def server_context() -> SSL.Context:
    """Build the server context that many `Dtls12PskServer` sessions can share.

    Its cookie and PSK callbacks find their session through the Connection's
    app data, so each callback uses only its own peer, cookie and A-KID.
    Sharing one context saves an SSL_CTX_new per session.
    """
    context = _base_context()
    context.set_cookie_generate_callback(_generate_cookie)
    context.set_cookie_verify_callback(_verify_cookie)
    openssl_psk.set_psk_server_connection_callback(context, _psk_for_connection)
    openssl_psk.use_psk_identity_hint(context, AKMA_IDENTITY_HINT)
    return context


def _server_of(connection: SSL.Connection) -> "Dtls12PskServer":
    reference = connection.get_app_data()
    server = reference() if isinstance(reference, weakref.ref) else None
    if not isinstance(server, Dtls12PskServer):
        raise EngineStateError("a connection of the shared DTLS server context has no live engine")
    return server


def _generate_cookie(connection: SSL.Connection) -> bytes:
    return _server_of(connection).generate_cookie()


def _verify_cookie(connection: SSL.Connection, offered: bytes) -> bool:
    try:
        server = _server_of(connection)
    except EngineStateError:
        return False
    return server.verify_cookie(offered)


def _psk_for_connection(connection: SSL.Connection, identity: bytes) -> bytes | None:
    try:
        server = _server_of(connection)
    except EngineStateError:
        return None
    return server._psk_server_callback(identity)


class _DtlsEngine:
    """Base of both sides: the Connection, output packing, timers and application data."""

    def __init__(self, mtu: int) -> None:
        if not MIN_MTU <= mtu <= 65507:
            raise ValueError(f"mtu must be in {MIN_MTU}..65507 octets, got {mtu}")
        self._mtu = mtu
        self._connection: SSL.Connection | None = None
        self._outgoing: list[bytes] = []
        self._state = State.HANDSHAKING
        self.cipher_suite: int | None = None
        self.failure: ConnectionFailed | None = None
        self.retransmissions = 0
        self._epoch0_offset = 0

    @property
    def state(self) -> State:
        return self._state

    def datagrams_to_send(self) -> list[bytes]:
        """Return and clear the datagrams queued for the peer."""
        self._collect_output()
        datagrams, self._outgoing = self._outgoing, []
        return datagrams

    def timeout(self) -> float | None:
        """Seconds until OpenSSL's retransmission timer expires, or None when none runs."""
        if self._connection is None or self._state not in (State.HANDSHAKING, State.AWAITING_KAF):
            return None
        return self._connection.DTLSv1_get_timeout()

    def handle_timeout(self) -> list[Event]:
        """Let OpenSSL retransmit its last flight if its timer expired."""
        if self._connection is None or self._state not in (State.HANDSHAKING, State.AWAITING_KAF):
            return []
        try:
            if self._connection.DTLSv1_handle_timeout():
                self.retransmissions += 1
        except SSL.Error as error:
            return self._fail(f"DTLS retransmission failed: {_error_text(error)}")
        return []

    def send(self, data: bytes) -> None:
        """Encrypt one application datagram."""
        if self._state is not State.ESTABLISHED or self._connection is None:
            raise EngineStateError(f"send() is not allowed in state {self._state.value}")
        self._connection.send(data)

    def close(self) -> None:
        """Queue close_notify; the engine accepts no more data afterwards."""
        if self._state is State.ESTABLISHED and self._connection is not None:
            try:
                self._connection.shutdown()
            except SSL.Error:
                pass  # The session is going away either way.
        if self._state not in (State.FAILED,):
            self._state = State.CLOSED

    # Driving OpenSSL

    def _feed(self, datagram: bytes) -> list[Event]:
        assert self._connection is not None
        self._connection.bio_write(datagram)
        if self._state is State.ESTABLISHED:
            return self._read_application_data()
        return self._advance_handshake()

    def _advance_handshake(self) -> list[Event]:
        assert self._connection is not None
        try:
            self._connection.do_handshake()
        except SSL.WantReadError:
            return []
        except SSL.Error as error:
            return self._fail(_error_text(error))
        events = self._on_established()
        if self._state is State.ESTABLISHED:
            return events + self._read_application_data()
        return events

    def _on_established(self) -> list[Event]:
        assert self._connection is not None
        self._state = State.ESTABLISHED
        name = self._connection.get_cipher_name() or ""
        suite = CIPHER_SUITES.get(name, self.cipher_suite or 0)
        return [HandshakeComplete(cipher_suite=suite, cipher_name=name)]

    def _read_application_data(self) -> list[Event]:
        assert self._connection is not None
        events: list[Event] = []
        for _ in range(64):  # A datagram holds few records; the bound only guards the loop.
            try:
                data = self._connection.recv(READ_SIZE)
            except SSL.WantReadError:
                break
            except SSL.ZeroReturnError:
                self._state = State.CLOSED
                events.append(ConnectionClosed())
                break
            except SSL.Error as error:
                events += self._fail(_error_text(error))
                break
            if data:
                events.append(DataReceived(data))
        return events

    def _fail(self, reason: str, alert: AlertDescription | None = None) -> list[Event]:
        self._state = State.FAILED
        self.failure = ConnectionFailed(reason, alert if alert is not None else alert_in_error(reason))
        return [self.failure]

    def _collect_output(self) -> None:
        if self._connection is None:
            return
        stream = bytearray()
        while True:
            try:
                chunk = self._connection.bio_read(READ_SIZE)
            except SSL.WantReadError:
                break
            if not chunk:
                break
            stream += chunk
        if stream:
            for datagram in pack_datagrams(bytes(stream), self._mtu, self._epoch0_offset):
                self._on_outgoing(datagram)
                self._outgoing.append(datagram)

    def _on_outgoing(self, datagram: bytes) -> None:
        """Hook for the server: read the cipher suite from its own ServerHello."""


class Dtls12PskServer(_DtlsEngine):
    """The server side of one DTLS session, created after a valid cookie.

    `psk_lookup(a_kid, cipher_suite)` returns K_AF from the AF's cache, or None.
    OpenSSL calls it during the handshake, so it must not block. `context` is a
    `server_context()` shared by the listener's sessions. Without it, the
    session builds a context of its own.
    """

    def __init__(
        self,
        peer: str,
        cookies: CookieJar,
        psk_lookup: Callable[[str, int], bytes | None],
        *,
        mtu: int = DEFAULT_MTU,
        context: SSL.Context | None = None,
    ) -> None:
        super().__init__(mtu)
        self._peer = peer
        self._cookies = cookies
        self._psk_lookup = psk_lookup
        self._context = context
        self._hello: ClientHelloStart | None = None
        self._state = State.READING_CLIENT_HELLO
        self._client_hello = MessageReassembler(HANDSHAKE_CLIENT_HELLO)
        self._client_key_exchange = MessageReassembler(HANDSHAKE_CLIENT_KEY_EXCHANGE)
        self._pending_flight: list[bytes] = []
        self.a_kid: str | None = None
        self.identity_error: str | None = None
        self.psk_supplied = False

    def receive_datagram(self, datagram: bytes) -> list[Event]:
        if self._state in (State.CLOSED, State.FAILED):
            return []
        if self._state is State.READING_CLIENT_HELLO:
            return self._receive_client_hello(datagram)
        if self._state is State.AWAITING_KAF:
            return self._hold(datagram)
        if self._state is State.HANDSHAKING and self.a_kid is None and self.identity_error is None:
            return self._watch_for_client_key_exchange(datagram)
        return self._feed(datagram)

    def resume(self) -> list[Event]:
        """Hand the held flight to OpenSSL; K_AF is now in the cache, or it is unknown."""
        if self._state is not State.AWAITING_KAF:
            raise EngineStateError(f"resume() is not allowed in state {self._state.value}")
        self._state = State.HANDSHAKING
        return self._release_held()

    # ClientHello with cookie

    def _receive_client_hello(self, datagram: bytes) -> list[Event]:
        body = None
        try:
            for record, fragment in handshake_fragments(datagram):
                body = self._client_hello.add(record, fragment) or body
        except DtlsParseError as error:
            return self._fail(f"malformed ClientHello: {error}", AlertDescription.decode_error)
        if body is None:
            return []

        record = self._client_hello.first_record
        assert record is not None
        whole = handshake_record(record, HANDSHAKE_CLIENT_HELLO, self._client_hello.message_seq, body)
        # After DTLSv1_listen, OpenSSL numbers the ServerHello record 1, as if the
        # HelloVerifyRequest had been record 0. The HelloVerifyRequest copies the
        # ClientHello's record number (RFC 6347 clause 4.2.1), which is higher after a
        # retransmitted ClientHello, so the client would drop the ServerHello as a replay.
        # Shifting the cleartext records keeps them after the HelloVerifyRequest.
        self._epoch0_offset = max(0, record.sequence - 1)
        self._start_connection(record, body)
        assert self._connection is not None
        self._connection.bio_write(whole)
        try:
            self._connection.DTLSv1_listen()
        except SSL.WantReadError:
            return self._fail("the ClientHello cookie did not verify", AlertDescription.handshake_failure)
        except SSL.Error as error:
            return self._fail(f"DTLSv1_listen failed: {_error_text(error)}")
        self._state = State.HANDSHAKING
        return self._advance_handshake()

    def _start_connection(self, record: Record, body: bytes) -> None:
        version, random, session_id, cookie = parse_client_hello_start(body)
        self._hello = ClientHelloStart(record, 1, len(body), True, version, random, session_id, cookie)

        if self._context is None:
            self._context = server_context()
        self._connection = SSL.Connection(self._context, None)
        # A weak reference, so the Connection does not keep its engine alive.
        self._connection.set_app_data(weakref.ref(self))
        self._connection.set_accept_state()
        self._connection.set_ciphertext_mtu(self._mtu)

    def generate_cookie(self) -> bytes:
        """Return the cookie of this peer's ClientHello (OpenSSL's cookie generate callback)."""
        if self._hello is None:
            raise EngineStateError("no ClientHello was read, so there is no cookie to generate")
        return self._cookies.cookie(self._peer, self._hello)

    def verify_cookie(self, offered: bytes) -> bool:
        """Check `offered` against this peer's ClientHello (OpenSSL's cookie verify callback)."""
        if self._hello is None:
            return False
        return self._cookies.verify(self._peer, dataclasses.replace(self._hello, cookie=offered))

    def _on_outgoing(self, datagram: bytes) -> None:
        if self.cipher_suite is None:
            self.cipher_suite = server_hello_cipher_suite(datagram)

    # ClientKeyExchange

    def _watch_for_client_key_exchange(self, datagram: bytes) -> list[Event]:
        body = None
        try:
            for record, fragment in handshake_fragments(datagram):
                body = self._client_key_exchange.add(record, fragment) or body
        except DtlsParseError as error:
            return self._fail(f"malformed ClientKeyExchange: {error}", AlertDescription.decode_error)
        if not self._client_key_exchange.started:
            return self._feed(datagram)

        self._pending_flight.append(datagram)
        if body is None:
            return []

        try:
            self.a_kid = a_kid_from_identity(parse_psk_identity(body))
        except (PskIdentityError, DtlsParseError) as error:
            # OpenSSL's callback declines the identity and sends unknown_psk_identity.
            self.identity_error = str(error)
            return self._release_held()
        if self.cipher_suite is None:
            return self._fail("no ServerHello cipher suite seen before the ClientKeyExchange")
        self._state = State.AWAITING_KAF
        return [KafNeeded(a_kid=self.a_kid, cipher_suite=self.cipher_suite)]

    def _hold(self, datagram: bytes) -> list[Event]:
        if len(self._pending_flight) >= MAX_HELD_DATAGRAMS:
            return []  # Retransmissions of the held flight; the first copies are kept.
        self._pending_flight.append(datagram)
        return []

    def _release_held(self) -> list[Event]:
        flight, self._pending_flight = self._pending_flight, []
        events: list[Event] = []
        for datagram in flight:
            if self._state in (State.FAILED, State.CLOSED):
                break
            events += self._feed(datagram)
        if self._state is State.FAILED and self.failure is not None and self.identity_error:
            failure = ConnectionFailed(self.identity_error, self.failure.alert)
            self.failure = failure
            return [event for event in events if not isinstance(event, ConnectionFailed)] + [failure]
        return events

    def _psk_server_callback(self, identity: bytes) -> bytes | None:
        if self.a_kid is None or self.cipher_suite is None:
            return None
        if identity != AKMA_IDENTITY_PREFIX + self.a_kid.encode("ascii"):
            return None
        k_af = self._psk_lookup(self.a_kid, self.cipher_suite)
        if k_af:
            self.psk_supplied = True
        return k_af

    def _on_established(self) -> list[Event]:
        if not self.psk_supplied:
            return self._fail("session was not keyed by K_AF", AlertDescription.handshake_failure)
        return super()._on_established()


class Dtls12PskClient(_DtlsEngine):
    """The UE side: offers the AKMA PSK identity and K_AF for the suite the server chose.

    `key_for_suite(cipher_suite)` returns K_AF for AF_ID = FQDN || 01 00 01 yy zz.
    """

    def __init__(
        self,
        identity: bytes,
        key_for_suite: Callable[[int], bytes],
        *,
        mtu: int = DEFAULT_MTU,
        cipher_list: bytes = CIPHER_LIST,
    ) -> None:
        super().__init__(mtu)
        self._identity = identity
        self._key_for_suite = key_for_suite
        context = _base_context()
        context.set_cipher_list(cipher_list)
        openssl_psk.set_psk_client_callback(context, self._psk_client_callback)
        self._context = context
        self._connection = SSL.Connection(context, None)
        self._connection.set_connect_state()
        self._connection.set_ciphertext_mtu(mtu)
        self.hint: bytes | None = None

    def start(self) -> list[Event]:
        """Queue the first ClientHello."""
        return self._advance_handshake()

    def receive_datagram(self, datagram: bytes) -> list[Event]:
        if self._state in (State.CLOSED, State.FAILED):
            return []
        if self.cipher_suite is None:
            self.cipher_suite = server_hello_cipher_suite(datagram)
        return self._feed(datagram)

    def _psk_client_callback(self, hint: bytes | None) -> tuple[bytes, bytes] | None:
        self.hint = hint
        if self.cipher_suite is None:
            logger.error("OpenSSL asked for the PSK before a ServerHello was seen")
            return None
        return self._identity, self._key_for_suite(self.cipher_suite)
