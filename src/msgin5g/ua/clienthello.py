"""Sans-IO readers of cleartext TLS handshake messages (RFC 8446 clauses 4.1.2, 4.2 and 5.1).

The AF reads the PSK identity from the ClientHello before OpenSSL receives the octets,
because the K_AF lookup at the AAnF is a network call and OpenSSL's PSK callback is
synchronous. `ClientHelloReader` takes the raw octets from the TCP stream, collects
the handshake records, reassembles the ClientHello (it may span several records)
and returns a `ClientHello`. Every length is checked against the octets present,
and any violation raises `ClientHelloError`, which carries the alert to send.

TLS 1.2 needs two more cleartext messages: the ServerHello, which names the
negotiated cipher suite that AF_ID depends on, and the PSK ClientKeyExchange, which
carries the PSK identity (RFC 4279 clause 2, RFC 5489 clause 2). `HandshakeReader`
returns the first handshake message of a flight, and `parse_server_hello` and
`parse_psk_client_key_exchange` read those two.
"""

import dataclasses
import enum

from msgin5g.ua.alerts import AlertDescription

# RFC 8446 clause 5.1: a TLSPlaintext fragment contains at most 2^14 octets.
MAX_RECORD_FRAGMENT = 2**14
RECORD_HEADER_SIZE = 5
HANDSHAKE_HEADER_SIZE = 4

CONTENT_TYPE_HANDSHAKE = 22
HANDSHAKE_TYPE_CLIENT_HELLO = 1
HANDSHAKE_TYPE_SERVER_HELLO = 2
HANDSHAKE_TYPE_CLIENT_KEY_EXCHANGE = 16

# RFC 8446 clause 5.1: the first ClientHello may carry 0x0301 as legacy_record_version;
# every later record carries 0x0303. Older stacks send 0x0300 to 0x0303.
ACCEPTED_RECORD_VERSIONS = frozenset({0x0300, 0x0301, 0x0302, 0x0303})

# A ClientHello with a hybrid post-quantum key share and a PSK fits in a few kilobytes.
DEFAULT_MAX_CLIENT_HELLO_SIZE = 16384

# A peer may fragment the ClientHello into many tiny records; this bounds the work.
MAX_CLIENT_HELLO_RECORDS = 64

TLS_1_2 = 0x0303
TLS_1_3 = 0x0304


class ExtensionType(enum.IntEnum):
    """Extension code points used here (RFC 8446 clause 4.2, RFC 6066 clause 3)."""

    server_name = 0
    pre_shared_key = 41
    supported_versions = 43
    psk_key_exchange_modes = 45


class PskKeyExchangeMode(enum.IntEnum):
    """RFC 8446 clause 4.2.9."""

    psk_ke = 0
    psk_dhe_ke = 1


class ClientHelloError(ValueError):
    """The bytes are not a well-formed ClientHello; `alert` is the alert to send."""

    def __init__(self, alert: AlertDescription, message: str) -> None:
        super().__init__(message)
        self.alert = alert


@dataclasses.dataclass(frozen=True)
class PskIdentity:
    """One entry of OfferedPsks.identities (RFC 8446 clause 4.2.11)."""

    identity: bytes
    obfuscated_ticket_age: int


@dataclasses.dataclass(frozen=True)
class ClientHello:
    """The ClientHello fields the AF decides on.

    `psk_identities` and `psk_key_exchange_modes` are None when the extension is
    absent, and `supported_versions` is empty when the client offers no
    supported_versions extension (a TLS 1.2 or older client).
    """

    legacy_version: int
    cipher_suites: tuple[int, ...]
    extension_types: tuple[int, ...]
    server_name: str | None
    supported_versions: tuple[int, ...]
    psk_key_exchange_modes: tuple[int, ...] | None
    psk_identities: tuple[PskIdentity, ...] | None

    @property
    def offers_tls13(self) -> bool:
        return TLS_1_3 in self.supported_versions

    @property
    def offers_tls12(self) -> bool:
        """True when the client accepts TLS 1.2 (RFC 8446 clause 4.2.1, RFC 5246 clause 7.4.1.2)."""
        if self.supported_versions:
            return TLS_1_2 in self.supported_versions
        return self.legacy_version >= TLS_1_2


class _HandshakeRecords:
    """Collect the fragments of plaintext handshake records named `name`, with a record cap."""

    def __init__(self, name: str, max_size: int) -> None:
        if max_size < 1:
            raise ValueError(f"the size limit of the {name} must be at least 1 octet, got {max_size}")
        self._name = name
        self._max_size = max_size
        self._buffer = bytearray()
        self._handshake = bytearray()
        self._records = 0

    def _next_record_fragment(self) -> bytes | None:
        if len(self._buffer) < RECORD_HEADER_SIZE:
            return None

        content_type = self._buffer[0]
        version = int.from_bytes(self._buffer[1:3], "big")
        length = int.from_bytes(self._buffer[3:5], "big")
        _check_record_header(content_type, version, length, self._name)

        if len(self._buffer) < RECORD_HEADER_SIZE + length:
            return None

        self._records += 1
        if self._records > MAX_CLIENT_HELLO_RECORDS:
            raise ClientHelloError(
                AlertDescription.unexpected_message,
                f"{self._name} spread over more than {MAX_CLIENT_HELLO_RECORDS} records",
            )
        fragment = bytes(self._buffer[RECORD_HEADER_SIZE : RECORD_HEADER_SIZE + length])
        del self._buffer[: RECORD_HEADER_SIZE + length]
        return fragment

    def _check_body_length(self) -> int:
        """Return the end of the first handshake message, checking its length against the limit."""
        body_length = int.from_bytes(self._handshake[1:4], "big")
        if body_length > self._max_size:
            raise ClientHelloError(
                AlertDescription.illegal_parameter,
                f"{self._name} of {body_length} octets exceeds the limit of {self._max_size} octets",
            )
        return HANDSHAKE_HEADER_SIZE + body_length


class ClientHelloReader(_HandshakeRecords):
    """Collect handshake records until a whole ClientHello has arrived.

    Feed the octets received from the peer to `receive_data` until it returns the
    ClientHello. The reader only parses: the caller keeps the raw octets for the
    TLS engine, including any that follow the ClientHello.
    """

    def __init__(self, max_client_hello_size: int = DEFAULT_MAX_CLIENT_HELLO_SIZE) -> None:
        if max_client_hello_size < 1:
            raise ValueError(
                f"max_client_hello_size must be at least 1 octet, got {max_client_hello_size}"
            )
        super().__init__("ClientHello", max_client_hello_size)
        self._client_hello: ClientHello | None = None

    def receive_data(self, data: bytes) -> ClientHello | None:
        """Return the ClientHello once its last record is complete, else None."""
        if self._client_hello is not None:
            raise RuntimeError("the ClientHello was already returned; pass later octets to the TLS engine")

        self._buffer += data
        while self._client_hello is None:
            fragment = self._next_record_fragment()
            if fragment is None:
                return None
            self._handshake += fragment
            self._client_hello = self._client_hello_if_complete()
        return self._client_hello

    def _client_hello_if_complete(self) -> ClientHello | None:
        if len(self._handshake) < HANDSHAKE_HEADER_SIZE:
            return None

        handshake_type = self._handshake[0]
        if handshake_type != HANDSHAKE_TYPE_CLIENT_HELLO:
            raise ClientHelloError(
                AlertDescription.unexpected_message,
                f"first handshake message has type {handshake_type}, expected "
                f"client_hello ({HANDSHAKE_TYPE_CLIENT_HELLO})",
            )

        end = self._check_body_length()
        if len(self._handshake) < end:
            return None
        if len(self._handshake) > end:
            # RFC 8446 clause 4: the client sends nothing else in the clear before
            # the ServerHello, so the ClientHello ends at a record boundary.
            raise ClientHelloError(
                AlertDescription.unexpected_message,
                "extra octets after the ClientHello in its last record: "
                f"{len(self._handshake) - end}",
            )
        return parse_client_hello(bytes(self._handshake[HANDSHAKE_HEADER_SIZE:end]))


def _check_record_header(content_type: int, version: int, length: int, name: str) -> None:
    if content_type != CONTENT_TYPE_HANDSHAKE:
        raise ClientHelloError(
            AlertDescription.unexpected_message,
            f"expected a handshake record (content type {CONTENT_TYPE_HANDSHAKE}) carrying "
            f"the {name}, got content type {content_type}",
        )
    if version not in ACCEPTED_RECORD_VERSIONS:
        raise ClientHelloError(
            AlertDescription.decode_error,
            f"record version 0x{version:04x} is not a TLS record version",
        )
    if length == 0:
        # RFC 8446 clause 5.1: zero-length handshake fragments are forbidden.
        raise ClientHelloError(AlertDescription.decode_error, "zero-length handshake record")
    if length > MAX_RECORD_FRAGMENT:
        raise ClientHelloError(
            AlertDescription.record_overflow,
            f"record of {length} octets exceeds the {MAX_RECORD_FRAGMENT}-octet limit",
        )


class _Reader:
    """Bounds-checked reading of TLS presentation-language fields.

    Field names are only formatted into a message when a check fails, because a
    server parses one ClientHello per handshake and the f-strings would show up
    in its profile.
    """

    def __init__(self, data: bytes, name: str) -> None:
        self._data = data
        self._offset = 0
        self._name = name

    @property
    def remaining(self) -> int:
        return len(self._data) - self._offset

    def uint(self, size: int, field: str, number: int | None = None) -> int:
        end = self._offset + size
        if end > len(self._data):
            raise self._too_short(size, field, number)
        value = int.from_bytes(self._data[self._offset : end], "big")
        self._offset = end
        return value

    def octets(self, size: int, field: str, number: int | None = None) -> bytes:
        end = self._offset + size
        if end > len(self._data):
            raise self._too_short(size, field, number)
        value = self._data[self._offset : end]
        self._offset = end
        return value

    def vector(
        self, length_size: int, field: str, minimum: int, maximum: int, number: int | None = None
    ) -> bytes:
        """Read a vector `<minimum..maximum>` whose length prefix has `length_size` octets.

        `number` completes the field's name in messages, as in "extension 41".
        """
        length = self.uint(length_size, "length of " + field, number)
        if not minimum <= length <= maximum:
            raise ClientHelloError(
                AlertDescription.decode_error,
                f"{self._name}: {_field_name(field, number)} has {length} octets, "
                f"allowed {minimum} to {maximum}",
            )
        return self.octets(length, field, number)

    def expect_end(self) -> None:
        if self.remaining:
            raise ClientHelloError(
                AlertDescription.decode_error,
                f"{self._name}: {self.remaining} unexpected octets at the end",
            )

    def _too_short(self, size: int, field: str, number: int | None) -> ClientHelloError:
        return ClientHelloError(
            AlertDescription.decode_error,
            f"{self._name}: {_field_name(field, number)} needs {size} octets but only "
            f"{self.remaining} remain",
        )


def _field_name(field: str, number: int | None) -> str:
    return field if number is None else f"{field} {number}"


def parse_client_hello(body: bytes) -> ClientHello:
    """Parse a ClientHello handshake body (RFC 8446 clause 4.1.2)."""
    reader = _Reader(body, "ClientHello")
    legacy_version = reader.uint(2, "legacy_version")
    reader.octets(32, "random")
    reader.vector(1, "legacy_session_id", 0, 32)
    suites = reader.vector(2, "cipher_suites", 2, 2**16 - 2)
    if len(suites) % 2:
        raise ClientHelloError(
            AlertDescription.decode_error,
            f"ClientHello: cipher_suites has an odd length of {len(suites)} octets",
        )
    cipher_suites = tuple(int.from_bytes(suites[i : i + 2], "big") for i in range(0, len(suites), 2))
    reader.vector(1, "legacy_compression_methods", 1, 2**8 - 1)

    # A pre-TLS 1.2 ClientHello may end here without an extensions block.
    extensions: dict[int, bytes] = {}
    extension_types: tuple[int, ...] = ()
    if reader.remaining:
        extensions, extension_types = _parse_extensions(
            reader.vector(2, "extensions", 0, 2**16 - 1)
        )
    reader.expect_end()

    return ClientHello(
        legacy_version=legacy_version,
        cipher_suites=cipher_suites,
        extension_types=extension_types,
        server_name=_parse_server_name(extensions.get(ExtensionType.server_name)),
        supported_versions=_parse_supported_versions(
            extensions.get(ExtensionType.supported_versions)
        ),
        psk_key_exchange_modes=_parse_psk_key_exchange_modes(
            extensions.get(ExtensionType.psk_key_exchange_modes)
        ),
        psk_identities=_parse_pre_shared_key(extensions.get(ExtensionType.pre_shared_key)),
    )


def _parse_extensions(data: bytes) -> tuple[dict[int, bytes], tuple[int, ...]]:
    reader = _Reader(data, "extensions")
    extensions: dict[int, bytes] = {}
    order: list[int] = []

    while reader.remaining:
        extension_type = reader.uint(2, "extension_type")
        extension_data = reader.vector(2, "extension", 0, 2**16 - 1, extension_type)
        if extension_type in extensions:
            # RFC 8446 clause 4.2: at most one extension of each type.
            raise ClientHelloError(
                AlertDescription.illegal_parameter,
                f"extension {extension_type} appears more than once",
            )
        extensions[extension_type] = extension_data
        order.append(extension_type)

    if ExtensionType.pre_shared_key in extensions and order[-1] != ExtensionType.pre_shared_key:
        # RFC 8446 clause 4.2.11: pre_shared_key must be the last extension.
        raise ClientHelloError(
            AlertDescription.illegal_parameter,
            "pre_shared_key is not the last extension of the ClientHello",
        )
    return extensions, tuple(order)


def _parse_server_name(data: bytes | None) -> str | None:
    """Return the host_name of a server_name extension (RFC 6066 clause 3)."""
    if data is None:
        return None

    reader = _Reader(data, "server_name")
    names = _Reader(reader.vector(2, "server_name_list", 1, 2**16 - 1), "server_name_list")
    reader.expect_end()

    host_name = None
    while names.remaining:
        name_type = names.uint(1, "name_type")
        name = names.vector(2, "host_name", 1, 2**16 - 1)
        if name_type != 0:
            continue
        if host_name is not None:
            raise ClientHelloError(
                AlertDescription.illegal_parameter, "server_name lists more than one host_name"
            )
        host_name = _decode_host_name(name)
    return host_name


def _decode_host_name(name: bytes) -> str:
    try:
        return name.decode("ascii")
    except UnicodeDecodeError:
        raise ClientHelloError(
            AlertDescription.decode_error,
            "server_name host_name is not ASCII (RFC 6066 requires the A-label form)",
        ) from None


def _parse_supported_versions(data: bytes | None) -> tuple[int, ...]:
    """RFC 8446 clause 4.2.1: `ProtocolVersion versions<2..254>` in a ClientHello."""
    if data is None:
        return ()

    reader = _Reader(data, "supported_versions")
    versions = reader.vector(1, "versions", 2, 254)
    reader.expect_end()
    if len(versions) % 2:
        raise ClientHelloError(
            AlertDescription.decode_error, "supported_versions has an odd length"
        )
    return tuple(int.from_bytes(versions[i : i + 2], "big") for i in range(0, len(versions), 2))


def _parse_psk_key_exchange_modes(data: bytes | None) -> tuple[int, ...] | None:
    """RFC 8446 clause 4.2.9: `PskKeyExchangeMode ke_modes<1..255>`."""
    if data is None:
        return None

    reader = _Reader(data, "psk_key_exchange_modes")
    modes = reader.vector(1, "ke_modes", 1, 255)
    reader.expect_end()
    return tuple(modes)


def _parse_pre_shared_key(data: bytes | None) -> tuple[PskIdentity, ...] | None:
    """Parse OfferedPsks (RFC 8446 clause 4.2.11) and return its identities.

    RFC 8446 gives identity the bounds <1..2^16-1> and identities <7..2^16-1>; a
    zero-length identity (so an identities vector of 6 octets) is still returned
    here, so that the AF can reject it with its own log reason.
    """
    if data is None:
        return None

    reader = _Reader(data, "pre_shared_key")
    identities = _parse_psk_identities(reader.vector(2, "identities", 6, 2**16 - 1))
    binder_count = _count_psk_binders(reader.vector(2, "binders", 33, 2**16 - 1))
    reader.expect_end()

    if binder_count != len(identities):
        raise ClientHelloError(
            AlertDescription.illegal_parameter,
            f"pre_shared_key offers {len(identities)} identities but {binder_count} binders",
        )
    return identities


def _parse_psk_identities(data: bytes) -> tuple[PskIdentity, ...]:
    reader = _Reader(data, "identities")
    identities = []
    while reader.remaining:
        identity = reader.vector(2, "identity", 0, 2**16 - 1)
        ticket_age = reader.uint(4, "obfuscated_ticket_age")
        identities.append(PskIdentity(identity=identity, obfuscated_ticket_age=ticket_age))
    return tuple(identities)


def _count_psk_binders(data: bytes) -> int:
    reader = _Reader(data, "binders")
    count = 0
    while reader.remaining:
        reader.vector(1, "binder", 32, 255)
        count += 1
    return count


# TLS 1.2 messages


@dataclasses.dataclass(frozen=True)
class HandshakeMessage:
    msg_type: int
    body: bytes


class HandshakeReader(_HandshakeRecords):
    """Return the first handshake message of a flight of plaintext records.

    Unlike `ClientHelloReader`, more handshake messages may follow in the same
    record (a TLS 1.2 server sends ServerHello, ServerKeyExchange and
    ServerHelloDone together); they are left to the TLS engine.
    """

    def __init__(self, name: str, max_size: int = DEFAULT_MAX_CLIENT_HELLO_SIZE) -> None:
        super().__init__(name, max_size)
        self._message: HandshakeMessage | None = None

    def receive_data(self, data: bytes) -> HandshakeMessage | None:
        """Return the first handshake message once it is complete, else None."""
        if self._message is not None:
            raise RuntimeError(f"the {self._name} was already returned")

        self._buffer += data
        while self._message is None:
            fragment = self._next_record_fragment()
            if fragment is None:
                return None
            self._handshake += fragment
            self._message = self._message_if_complete()
        return self._message

    def _message_if_complete(self) -> HandshakeMessage | None:
        if len(self._handshake) < HANDSHAKE_HEADER_SIZE:
            return None

        end = self._check_body_length()
        if len(self._handshake) < end:
            return None
        return HandshakeMessage(self._handshake[0], bytes(self._handshake[HANDSHAKE_HEADER_SIZE:end]))


@dataclasses.dataclass(frozen=True)
class ServerHello:
    """The ServerHello fields the AKMA client decides on."""

    legacy_version: int
    cipher_suite: int
    selected_version: int | None

    @property
    def version(self) -> int:
        return self.selected_version or self.legacy_version


def parse_server_hello(body: bytes) -> ServerHello:
    """Parse a ServerHello handshake body (RFC 5246 clause 7.4.1.3, RFC 8446 clause 4.1.3)."""
    reader = _Reader(body, "ServerHello")
    legacy_version = reader.uint(2, "server_version")
    reader.octets(32, "random")
    reader.vector(1, "session_id", 0, 32)
    cipher_suite = reader.uint(2, "cipher_suite")
    reader.uint(1, "compression_method")

    extensions: dict[int, bytes] = {}
    if reader.remaining:
        extensions, _ = _parse_extensions(reader.vector(2, "extensions", 0, 2**16 - 1))
    reader.expect_end()

    selected_version = None
    supported_versions = extensions.get(ExtensionType.supported_versions)
    if supported_versions is not None:
        selected = _Reader(supported_versions, "supported_versions")
        selected_version = selected.uint(2, "selected_version")
        selected.expect_end()
    return ServerHello(legacy_version, cipher_suite, selected_version)


class KeyExchange(enum.Enum):
    """Key exchange of a TLS 1.2 PSK cipher suite, as it shapes the ClientKeyExchange."""

    psk = "PSK"  # RFC 4279 clause 2
    ecdhe_psk = "ECDHE_PSK"  # RFC 5489 clause 2


def parse_psk_client_key_exchange(body: bytes, key_exchange: KeyExchange) -> bytes:
    """Return the psk_identity of a TLS 1.2 PSK or ECDHE_PSK ClientKeyExchange body.

    RFC 4279 clause 2: `opaque psk_identity<0..2^16-1>`, alone for PSK; RFC 5489
    clause 2 follows it with the client's ECDH point, `opaque point<1..2^8-1>`. An
    empty identity is returned, so that the AF rejects it with its own reason.
    """
    reader = _Reader(body, "ClientKeyExchange")
    identity = reader.vector(2, "psk_identity", 0, 2**16 - 1)
    if key_exchange is KeyExchange.ecdhe_psk:
        reader.vector(1, "ECDH public point", 1, 2**8 - 1)
    reader.expect_end()
    return identity
