"""Sans-IO TLS 1.2 PSK engines for the AKMA AF and the UE (TS 24.109 K.3.2, TS 33.535 B.1.3).

The UE keys a TLS 1.2 PSK cipher suite with K_AF. The server's ServerKeyExchange
carries the PSK identity hint "3GPP-AKMA", and the client's ClientKeyExchange
carries the identity "3GPP-AKMA" || A-KID. The Ua* security protocol identifier in
AF_ID = FQDN || 01 00 01 yy zz contains the negotiated cipher suite yy zz (TS 33.220
Annex H), so K_AF depends on the suite the server chose.

The server engine runs in three steps, so that the AAnF request does not block:

1. `receive_data` collects the cleartext ClientHello, checks it and feeds it to
   OpenSSL over memory BIOs. OpenSSL writes ServerHello, ServerKeyExchange and
   ServerHelloDone; the engine reads the chosen suite from that ServerHello.
2. It keeps back the client's second flight, reads the identity from the cleartext
   ClientKeyExchange and returns `KafNeeded(a_kid, server_name, ua_tls12(suite))`.
3. The adapter obtains K_AF, stores it where `psk_lookup` finds it, and calls
   `resume()`, which feeds the held octets to OpenSSL. OpenSSL's PSK callback only
   reads K_AF through `psk_lookup`.

`SSLObject.cipher()` of CPython 3.13 with OpenSSL 3.0 returns None until the
handshake is complete, both in the server after its ServerHello and in the client's
PSK callback, which is why both engines parse the ServerHello instead.

The client engine parses the server's ServerHello before OpenSSL sees it, so that
its PSK callback derives K_AF for the suite the server chose. It accepts only the
hint "3GPP-AKMA" and otherwise aborts the handshake with the reason in
`Tls12ClientError`.
"""

import dataclasses
import ssl
from collections.abc import Callable, Sequence

from msgin5g.crypto.akma import af_id, k_af, ua_tls12
from msgin5g.ua.alerts import CONTENT_TYPE_ALERT, AlertDescription, alert_from_ssl_error
from msgin5g.ua.clienthello import (
    DEFAULT_MAX_CLIENT_HELLO_SIZE,
    HANDSHAKE_TYPE_CLIENT_KEY_EXCHANGE,
    HANDSHAKE_TYPE_SERVER_HELLO,
    TLS_1_2,
    ClientHello,
    ClientHelloError,
    HandshakeReader,
    KeyExchange,
    parse_psk_client_key_exchange,
    parse_server_hello,
)
from msgin5g.ua.tls13_psk import (
    AKMA_IDENTITY_PREFIX,
    ALPN_COAP,
    MAX_PENDING_OCTETS,
    READ_CHUNK,
    ConnectionClosed,
    DataReceived,
    EngineStateError,
    Event,
    KafNeeded,
    PskIdentityError,
    PskServerEngine,
    State,
    a_kid_from_identity,
    akma_psk_identity,
    plaintext_alert_in,
)

# TS 24.109 K.3.2: the server's PSK identity hint.
AKMA_IDENTITY_HINT = "3GPP-AKMA"


@dataclasses.dataclass(frozen=True)
class CipherSuite:
    """A TLS 1.2 PSK cipher suite: IANA code point, OpenSSL name and key exchange."""

    code: int
    openssl_name: str
    key_exchange: KeyExchange


_PSK = KeyExchange.psk
_ECDHE_PSK = KeyExchange.ecdhe_psk

# The PSK suites without a certificate that OpenSSL 3.0 enables by default, in the
# server's order of preference (forward secrecy first). IANA code points from the
# TLS Cipher Suites registry (RFC 4279, RFC 5487, RFC 5489, RFC 6655, RFC 7905).
# NOTE: DHE_PSK suites are left out because the server loads no DH parameters, and
# RSA_PSK suites because it holds no certificate.
CIPHER_SUITES: tuple[CipherSuite, ...] = (
    CipherSuite(0xCCAC, "ECDHE-PSK-CHACHA20-POLY1305", _ECDHE_PSK),
    CipherSuite(0xC037, "ECDHE-PSK-AES128-CBC-SHA256", _ECDHE_PSK),
    CipherSuite(0xC038, "ECDHE-PSK-AES256-CBC-SHA384", _ECDHE_PSK),
    CipherSuite(0x00A8, "PSK-AES128-GCM-SHA256", _PSK),  # TLS_PSK_WITH_AES_128_GCM_SHA256
    CipherSuite(0x00A9, "PSK-AES256-GCM-SHA384", _PSK),
    CipherSuite(0xCCAB, "PSK-CHACHA20-POLY1305", _PSK),
    CipherSuite(0xC0A4, "PSK-AES128-CCM", _PSK),
    CipherSuite(0xC0A5, "PSK-AES256-CCM", _PSK),
    CipherSuite(0xC0A8, "PSK-AES128-CCM8", _PSK),  # TLS_PSK_WITH_AES_128_CCM_8
    CipherSuite(0x00AE, "PSK-AES128-CBC-SHA256", _PSK),
    CipherSuite(0x00AF, "PSK-AES256-CBC-SHA384", _PSK),
)
SUITES_BY_NAME = {suite.openssl_name: suite for suite in CIPHER_SUITES}
SUITES_BY_CODE = {suite.code: suite for suite in CIPHER_SUITES}
DEFAULT_CIPHER_SUITES = tuple(suite.openssl_name for suite in CIPHER_SUITES)

# OpenSSL 3.0 error reasons for a client Finished keyed with another K_AF: a record
# that does not decrypt or authenticate, or verify_data that does not match.
KEY_MISMATCH_REASONS = frozenset(
    {"DECRYPTION_FAILED_OR_BAD_RECORD_MAC", "BAD_RECORD_MAC", "DIGEST_CHECK_FAILED"}
)


def parse_cipher_suites(names: Sequence[str]) -> tuple[CipherSuite, ...]:
    """Return the suites named in OpenSSL's spelling; raise ValueError naming an unknown one."""
    if not names:
        raise ValueError("cipher_suites is empty; name at least one TLS 1.2 PSK cipher suite")
    suites = []
    for name in names:
        suite = SUITES_BY_NAME.get(name)
        if suite is None:
            raise ValueError(
                f"cipher suite {name!r} is not a supported TLS 1.2 PSK suite; choose from "
                f"{', '.join(DEFAULT_CIPHER_SUITES)}"
            )
        suites.append(suite)
    return tuple(suites)


def _cipher_string(suites: Sequence[CipherSuite]) -> str:
    return ":".join(suite.openssl_name for suite in suites)


def _check_client_hello(
    client_hello: ClientHello, offered: frozenset[int]
) -> tuple[AlertDescription, str] | None:
    """Return (alert, reason) when the ClientHello cannot lead to a TLS 1.2 AKMA PSK session."""
    if not client_hello.offers_tls12:
        return AlertDescription.protocol_version, "client does not offer TLS 1.2"
    if not offered.intersection(client_hello.cipher_suites):
        return (
            AlertDescription.handshake_failure,
            "client offers none of this server's TLS 1.2 PSK cipher suites",
        )
    return None


class Tls12PskServer(PskServerEngine):
    """The TLS 1.2 server side of one connection.

    `psk_lookup(a_kid, ua_protocol_id)` returns K_AF for AF_ID = FQDN ||
    `ua_protocol_id` from the AF's cache, or None. OpenSSL calls it during the
    handshake, so it must not block.
    """

    expected_version = "TLSv1.2"

    def __init__(
        self,
        psk_lookup: Callable[[str, bytes], bytes | None],
        *,
        max_client_hello_size: int = DEFAULT_MAX_CLIENT_HELLO_SIZE,
        cipher_suites: Sequence[str] = DEFAULT_CIPHER_SUITES,
    ) -> None:
        super().__init__(max_client_hello_size=max_client_hello_size)
        self._psk_lookup = psk_lookup
        self._suites = parse_cipher_suites(cipher_suites)
        self._max_handshake_size = max_client_hello_size
        self._client_key_exchange = HandshakeReader("ClientKeyExchange", max_client_hello_size)
        self._suite: CipherSuite | None = None

    @property
    def cipher_suite(self) -> int | None:
        """IANA code point of the suite this server chose, once its ServerHello is out."""
        return self._suite.code if self._suite is not None else None

    def resume(self) -> list[Event]:
        """Hand the held second flight to OpenSSL; K_AF must now be in the cache."""
        self._require("resume")
        self._state = State.HANDSHAKING
        self._incoming_bio.write(bytes(self._pending))
        self._pending.clear()
        return self._advance_handshake()

    # Step 1: ClientHello in, first server flight out

    def _check_client_hello(self, client_hello: ClientHello) -> tuple[AlertDescription, str] | None:
        offered = frozenset(suite.code for suite in self._suites)
        return _check_client_hello(client_hello, offered)

    def _client_hello_accepted(self, client_hello: ClientHello) -> list[Event]:
        return self._send_first_flight()

    def _send_first_flight(self) -> list[Event]:
        self._start_ssl_object()
        self._incoming_bio.write(bytes(self._pending))
        self._pending.clear()
        try:
            self._ssl.do_handshake()
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError as error:
            return self._fail_from_openssl(error)
        else:
            return self._fail(
                "OpenSSL completed a handshake without the client's key exchange",
                AlertDescription.internal_error,
            )

        flight = self._outgoing_bio.read()
        self._outgoing += flight
        try:
            suite = self._chosen_suite(flight)
        except ClientHelloError as error:
            return self._fail(
                f"cannot read OpenSSL's ServerHello: {error}", AlertDescription.internal_error
            )
        self._suite = suite
        self._state = State.READING_CLIENT_KEY_EXCHANGE
        return []

    def _chosen_suite(self, flight: bytes) -> CipherSuite:
        message = HandshakeReader("ServerHello").receive_data(flight)
        if message is None or message.msg_type != HANDSHAKE_TYPE_SERVER_HELLO:
            raise ClientHelloError(
                AlertDescription.internal_error, "no ServerHello in the first flight"
            )
        server_hello = parse_server_hello(message.body)
        if server_hello.version != TLS_1_2:
            raise ClientHelloError(
                AlertDescription.internal_error,
                f"OpenSSL chose version 0x{server_hello.version:04x}, not TLS 1.2",
            )
        suite = SUITES_BY_CODE.get(server_hello.cipher_suite)
        if suite is None:
            raise ClientHelloError(
                AlertDescription.internal_error,
                f"OpenSSL chose cipher suite 0x{server_hello.cipher_suite:04x}, not a PSK suite",
            )
        return suite

    def _start_ssl_object(self) -> None:
        # One context per connection: its PSK callback serves only this connection's identity.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.options |= ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_TICKET
        context.set_ciphers(_cipher_string(self._suites))
        context.set_alpn_protocols([ALPN_COAP])
        context.set_psk_server_callback(self._psk_server_callback, identity_hint=AKMA_IDENTITY_HINT)

        self._ssl_object = context.wrap_bio(
            self._incoming_bio, self._outgoing_bio, server_side=True
        )

    # Step 2: the client's second flight, held until K_AF is known

    def _receive_client_key_exchange_octets(self, data: bytes) -> list[Event]:
        if not self._pending and data[:1] == bytes([CONTENT_TYPE_ALERT]):
            # The client gave up after the server's first flight, for example on the hint.
            self._incoming_bio.write(data)
            return self._advance_handshake()

        self._pending += data
        if len(self._pending) > MAX_PENDING_OCTETS:
            return self._fail(
                f"client sent more than {MAX_PENDING_OCTETS} octets before its ClientKeyExchange",
                AlertDescription.unexpected_message,
            )
        try:
            message = self._client_key_exchange.receive_data(data)
        except ClientHelloError as error:
            return self._fail(f"malformed ClientKeyExchange: {error}", error.alert)
        if message is None:
            return []
        if message.msg_type != HANDSHAKE_TYPE_CLIENT_KEY_EXCHANGE:
            return self._fail(
                f"expected ClientKeyExchange, got handshake message type {message.msg_type}",
                AlertDescription.unexpected_message,
            )
        return self._name_a_kid(message.body)

    def _name_a_kid(self, body: bytes) -> list[Event]:
        suite = self._chosen()
        try:
            identity = parse_psk_client_key_exchange(body, suite.key_exchange)
            self._a_kid = a_kid_from_identity(identity)
        except ClientHelloError as error:
            return self._fail(f"malformed ClientKeyExchange: {error}", error.alert)
        except PskIdentityError as error:
            return self._fail(str(error), AlertDescription.unknown_psk_identity)

        self._state = State.AWAITING_KAF
        server_name = self._client_hello.server_name if self._client_hello else None
        return [KafNeeded(self._a_kid, server_name, ua_tls12(suite.code))]

    def _chosen(self) -> CipherSuite:
        if self._suite is None:
            raise EngineStateError("no cipher suite chosen yet")
        return self._suite

    # Step 3: OpenSSL asks for K_AF

    def _psk_server_callback(self, identity: str | None) -> bytes:
        # Called by OpenSSL during do_handshake(); an empty result declines the identity.
        if self._a_kid is None or identity != AKMA_IDENTITY_PREFIX.decode() + self._a_kid:
            return b""

        k_af_value = self._psk_lookup(self._a_kid, ua_tls12(self._chosen().code))
        if not k_af_value:
            return b""
        self._psk_supplied = True
        return k_af_value

    def _fail_from_openssl(self, error: ssl.SSLError) -> list[Event]:
        reason = getattr(error, "reason", None)
        received = alert_from_ssl_error(error)
        if received is not None and reason not in KEY_MISMATCH_REASONS:
            self._outgoing += self._outgoing_bio.read()
            return self._fail(f"client sent alert {received.name}", None, send_alert=False)
        if not (self._psk_supplied and reason in KEY_MISMATCH_REASONS):
            return super()._fail_from_openssl(error)

        self._outgoing += self._outgoing_bio.read()
        text = (
            f"client Finished failed ({reason}): the client's K_AF differs from the one the "
            "AAnF returned (wrong AF FQDN or cipher suite in AF_ID, or stale K_AKMA at the UE)"
        )
        failed = self._fail(text, plaintext_alert_in(self._outgoing), send_alert=False)
        return [dataclasses.replace(failed[0], key_mismatch=True)]


# UE side


class Tls12ClientError(Exception):
    """The TLS 1.2 handshake or session failed at the UE.

    `alert` is the alert received from the server, if one explains the failure;
    `refused` is True when this UE aborted the handshake itself (an unexpected hint).
    """

    def __init__(self, reason: str, *, alert: AlertDescription | None = None, refused: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.alert = alert
        self.refused = refused


class Tls12PskClient:
    """The UE side of one TLS 1.2 AKMA PSK connection over memory BIOs.

    Call `start()`, send `data_to_send()` to the server and pass every octet
    received to `receive_data`, which returns the decrypted application data.
    K_AKMA stays inside the engine; the PSK callback derives K_AF for AF_ID =
    `af_fqdn` || 01 00 01 yy zz once the ServerHello has named the suite yy zz.
    """

    def __init__(
        self,
        af_fqdn: str,
        a_kid: str,
        k_akma: bytes,
        *,
        cipher_suites: Sequence[str] = DEFAULT_CIPHER_SUITES,
    ) -> None:
        if not isinstance(k_akma, bytes) or len(k_akma) != 32:
            raise ValueError("k_akma must be 32 octets")
        af_id(af_fqdn, ua_tls12(0))  # Raises a ValueError that names a malformed FQDN.
        self._identity = akma_psk_identity(a_kid).decode("ascii")
        self._af_fqdn = af_fqdn
        self._k_akma = k_akma
        self._suites = parse_cipher_suites(cipher_suites)

        self._incoming_bio = ssl.MemoryBIO()
        self._outgoing_bio = ssl.MemoryBIO()
        self._server_hello = HandshakeReader("ServerHello")
        self._suite: CipherSuite | None = None
        self._reading_server_hello = True
        self._keyed_suite: int | None = None
        self._refusal: str | None = None
        self._established = False
        self.closed = False
        self.ssl_object = self._client_context().wrap_bio(
            self._incoming_bio, self._outgoing_bio, server_hostname=af_fqdn
        )

    def __repr__(self) -> str:
        return f"Tls12PskClient(af_fqdn={self._af_fqdn!r}, established={self._established})"

    @property
    def established(self) -> bool:
        return self._established

    @property
    def cipher_suite(self) -> int | None:
        """IANA code point of the suite the server chose, once its ServerHello arrived."""
        return self._suite.code if self._suite is not None else None

    @property
    def keyed_suite(self) -> int | None:
        """The suite whose AF_ID the PSK callback derived K_AF for."""
        return self._keyed_suite

    def start(self) -> None:
        """Queue the ClientHello."""
        self._handshake()

    def data_to_send(self) -> bytes:
        return self._outgoing_bio.read()

    def receive_data(self, data: bytes) -> bytes:
        """Process octets from the server; return decrypted application data.

        Raises Tls12ClientError when the handshake or the session fails.
        """
        if self._reading_server_hello:
            self._read_server_hello(data)
        self._incoming_bio.write(data)
        if not self._established:
            self._handshake()
            if not self._established:
                return b""
        return self._read_application_data()

    def send(self, data: bytes) -> None:
        if not self._established:
            raise EngineStateError("send() before the TLS handshake is complete")
        view = memoryview(data)
        while view:
            view = view[self.ssl_object.write(view) :]

    def close(self) -> None:
        """Queue close_notify."""
        if not self._established:
            return
        try:
            self.ssl_object.unwrap()
        except ssl.SSLError:
            pass  # close_notify is queued; the peer's reply is not awaited.

    def _client_context(self) -> ssl.SSLContext:
        # Certificate verification with no trusted authority: a server that answers
        # with a certificate suite instead of PSK is refused.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.verify_mode = ssl.CERT_REQUIRED
        context.check_hostname = True
        context.options |= ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_TICKET
        context.set_ciphers(_cipher_string(self._suites))
        context.set_alpn_protocols([ALPN_COAP])
        context.set_psk_client_callback(self._psk_client_callback)
        return context

    def _read_server_hello(self, data: bytes) -> None:
        # Anything unexpected here (an alert, a malformed message) is left to OpenSSL,
        # which reports it; the PSK callback then finds no suite and aborts.
        try:
            message = self._server_hello.receive_data(data)
            if message is None:
                return
            self._reading_server_hello = False
            if message.msg_type == HANDSHAKE_TYPE_SERVER_HELLO:
                code = parse_server_hello(message.body).cipher_suite
                self._suite = SUITES_BY_CODE.get(code)
        except ClientHelloError:
            self._reading_server_hello = False

    def _psk_client_callback(self, hint: str | None) -> tuple[str, bytes]:
        # Returning an empty key makes OpenSSL abort with handshake_failure.
        if hint != AKMA_IDENTITY_HINT:
            self._refusal = (
                f"the server sent PSK identity hint {hint!r}, not {AKMA_IDENTITY_HINT!r}, so it "
                "is not an AKMA AF on this port; check the server address"
            )
            return "", b""
        if self._suite is None:
            self._refusal = "the server's ServerHello named no cipher suite that this UE offered"
            return "", b""

        self._keyed_suite = self._suite.code
        return self._identity, k_af(self._k_akma, af_id(self._af_fqdn, ua_tls12(self._suite.code)))

    def _handshake(self) -> None:
        try:
            self.ssl_object.do_handshake()
        except ssl.SSLWantReadError:
            return
        except ssl.SSLError as error:
            raise self._error(error) from None
        self._established = True

    def _error(self, error: ssl.SSLError) -> Tls12ClientError:
        if self._refusal is not None:
            return Tls12ClientError(self._refusal, refused=True)
        if isinstance(error, ssl.SSLCertVerificationError):
            return Tls12ClientError(
                "the server presented a certificate instead of accepting the AKMA PSK"
            )
        alert = alert_from_ssl_error(error)
        reason = getattr(error, "reason", None) or str(error)
        return Tls12ClientError(f"TLS failed: {reason}", alert=alert)

    def _read_application_data(self) -> bytes:
        chunks = []
        while True:
            try:
                chunk = self.ssl_object.read(READ_CHUNK)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                chunk = b""
            except ssl.SSLError as error:
                raise self._error(error) from None
            if not chunk:
                self.closed = True
                break
            chunks.append(chunk)
        return b"".join(chunks)


__all__ = [
    "AKMA_IDENTITY_HINT",
    "CIPHER_SUITES",
    "DEFAULT_CIPHER_SUITES",
    "CipherSuite",
    "ConnectionClosed",
    "DataReceived",
    "Tls12ClientError",
    "Tls12PskClient",
    "Tls12PskServer",
    "parse_cipher_suites",
]
