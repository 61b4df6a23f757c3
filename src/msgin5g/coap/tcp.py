"""CoAP over TCP and TLS (RFC 8323 clauses 3 and 5) as a sans-IO connection.

Frames carry `aiocoap.Message` objects: this module encodes and decodes the
RFC 8323 header (Len, TKL, Extended Length, Code, Token) and leaves the options
to `aiocoap.options.Options`. It implements the signaling messages: each side
sends a CSM (7.01) first, responds to Ping (7.02) with Pong (7.03), and ends with
Release (7.04) or Abort (7.05). A malformed frame makes the connection send an
Abort and stop, as RFC 8323 clause 5.6 requires for reliable transports.

`CoapTcpConnection` takes octets from the TLS layer and returns events, and
`data_to_send()` returns the octets for the TLS layer.
"""

import dataclasses
import enum
import functools

from aiocoap import Message
from aiocoap.error import UnparsableMessage
from aiocoap.message import Direction
from aiocoap.numbers.codes import Code
from aiocoap.optiontypes import OpaqueOption, UintOption

# RFC 8323 clause 3.3: Len values 13, 14 and 15 announce an extended length of
# 1, 2 and 4 octets holding the length minus 13, 269 and 65805.
LEN_8BIT = 13
LEN_16BIT = 14
LEN_32BIT = 15
OFFSET_8BIT = 13
OFFSET_16BIT = 269
OFFSET_32BIT = 65805

MAX_TOKEN_LENGTH = 8  # RFC 7252 clause 3: TKL 9 to 15 are reserved.
PAYLOAD_MARKER = 0xFF

# RFC 8323 clause 5.3.1: the Max-Message-Size in force until a CSM sets another value.
BASE_MAX_MESSAGE_SIZE = 1152
# Large enough for a MSG with the maximum payload of 8192 characters even when
# JSON escapes every character as \uXXXX (6 octets each), with its envelope.
DEFAULT_MAX_MESSAGE_SIZE = 65536


class SignalingOption(enum.IntEnum):
    """Signaling option numbers of RFC 8323 clause 5; each number is scoped to its code."""

    MAX_MESSAGE_SIZE = 2  # CSM
    BLOCK_WISE_TRANSFER = 4  # CSM
    CUSTODY = 2  # Ping, Pong
    ALTERNATIVE_ADDRESS = 2  # Release
    HOLD_OFF = 4  # Release
    BAD_CSM_OPTION = 2  # Abort


# Option numbers each signaling code understands (RFC 8323 clauses 5.3 to 5.6).
_KNOWN_SIGNALING_OPTIONS = {
    Code.CSM: {2, 4},
    Code.PING: {2},
    Code.PONG: {2},
    Code.RELEASE: {2, 4},
    Code.ABORT: {2},
}


class MessageTooLarge(ValueError):
    """A message to send does not fit the peer's limit; `limit` is None when the peer did not say it."""

    def __init__(self, detail: str, size: int | None = None, limit: int | None = None) -> None:
        super().__init__(detail)
        self.size = size
        self.limit = limit


class CoapFramingError(ValueError):
    """A frame violates RFC 8323 or RFC 7252; the connection must be aborted."""

    def __init__(self, message: str, bad_csm_option: int | None = None) -> None:
        super().__init__(message)
        self.bad_csm_option = bad_csm_option


def is_signaling(code: int) -> bool:
    """Return True for codes 7.00 to 7.31 (RFC 8323 clause 5.1)."""
    return code >> 5 == 7


def encode_message(message: Message) -> bytes:
    """Encode one message as a CoAP-over-TCP frame (RFC 8323 clause 3.2)."""
    token = bytes(message.token or b"")
    if len(token) > MAX_TOKEN_LENGTH:
        raise ValueError(f"token has {len(token)} octets; CoAP allows at most {MAX_TOKEN_LENGTH}")
    if message.code is None:
        raise ValueError("message has no code; set a request method or response code")

    body = message.opt.encode()
    if message.payload:
        body += bytes([PAYLOAD_MARKER]) + bytes(message.payload)

    length_nibble, extended_length = _encode_length(len(body))
    first_octet = (length_nibble << 4) | len(token)
    return bytes([first_octet]) + extended_length + bytes([int(message.code)]) + token + body


def _encode_length(length: int) -> tuple[int, bytes]:
    if length < OFFSET_8BIT:
        return length, b""
    if length < OFFSET_16BIT:
        return LEN_8BIT, (length - OFFSET_8BIT).to_bytes(1, "big")
    if length < OFFSET_32BIT:
        return LEN_16BIT, (length - OFFSET_16BIT).to_bytes(2, "big")
    if length - OFFSET_32BIT < 2**32:
        return LEN_32BIT, (length - OFFSET_32BIT).to_bytes(4, "big")
    raise ValueError(f"message body of {length} octets cannot be framed")


def frame_size(buffer: bytes | bytearray) -> int | None:
    """Return the size of the frame at the start of `buffer`, or None if its header is incomplete."""
    if not buffer:
        return None

    length_nibble = buffer[0] >> 4
    token_length = buffer[0] & 0x0F
    extended_size = {LEN_8BIT: 1, LEN_16BIT: 2, LEN_32BIT: 4}.get(length_nibble, 0)
    if len(buffer) < 1 + extended_size:
        return None

    extended = int.from_bytes(buffer[1 : 1 + extended_size], "big")
    body_length = {
        LEN_8BIT: extended + OFFSET_8BIT,
        LEN_16BIT: extended + OFFSET_16BIT,
        LEN_32BIT: extended + OFFSET_32BIT,
    }.get(length_nibble, length_nibble)
    # Header octet, extended length, code, token, then options and payload.
    return 1 + extended_size + 1 + token_length + body_length


def decode_message(frame: bytes) -> Message:
    """Decode exactly one frame as returned by `frame_size`."""
    size = frame_size(frame)
    if size is None or size != len(frame):
        raise CoapFramingError(f"frame of {len(frame)} octets does not match its length field")

    token_length = frame[0] & 0x0F
    if token_length > MAX_TOKEN_LENGTH:
        raise CoapFramingError(f"token length {token_length} is reserved (at most {MAX_TOKEN_LENGTH})")

    extended_size = {LEN_8BIT: 1, LEN_16BIT: 2, LEN_32BIT: 4}.get(frame[0] >> 4, 0)
    code_offset = 1 + extended_size
    token = frame[code_offset + 1 : code_offset + 1 + token_length]
    body = frame[code_offset + 1 + token_length :]

    message = Message(code=frame[code_offset])
    message.direction = Direction.INCOMING
    message.token = token
    message.payload = _decode_options(message, body)
    return message


def _decode_options(message: Message, body: bytes) -> bytes:
    options, payload = _split_options_and_payload(body)
    try:
        message.opt.decode(options)
    except (UnparsableMessage, ValueError) as error:
        raise CoapFramingError(f"invalid options: {error}") from error
    return payload


def _split_options_and_payload(body: bytes) -> tuple[bytes, bytes]:
    """Find the payload marker by walking the option headers (RFC 7252 clause 3.1)."""
    offset = 0
    while offset < len(body):
        if body[offset] == PAYLOAD_MARKER:
            payload = body[offset + 1 :]
            if not payload:
                # RFC 7252 clause 3: a marker followed by no payload is a format error.
                raise CoapFramingError("payload marker without payload")
            return body[:offset], payload

        delta_nibble, length_nibble = body[offset] >> 4, body[offset] & 0x0F
        offset += 1
        offset, _ = _read_option_field(body, offset, delta_nibble, "delta")
        offset, length = _read_option_field(body, offset, length_nibble, "length")
        if offset + length > len(body):
            raise CoapFramingError(f"option value of {length} octets runs past the message end")
        offset += length
    return body, b""


def _read_option_field(body: bytes, offset: int, nibble: int, name: str) -> tuple[int, int]:
    if nibble == 15:
        raise CoapFramingError(f"option {name} nibble 15 is reserved")
    extended_size = {13: 1, 14: 2}.get(nibble, 0)
    if offset + extended_size > len(body):
        raise CoapFramingError(f"option {name} runs past the message end")
    extended = int.from_bytes(body[offset : offset + extended_size], "big")
    value = {13: extended + 13, 14: extended + 269}.get(nibble, nibble)
    return offset + extended_size, value


# Events


@dataclasses.dataclass(frozen=True)
class MessageReceived:
    """A request or a response."""

    message: Message


@dataclasses.dataclass(frozen=True)
class SettingsReceived:
    """The peer's CSM; the values are those in force after it."""

    max_message_size: int
    block_wise_transfer: bool


@dataclasses.dataclass(frozen=True)
class PongReceived:
    token: bytes


@dataclasses.dataclass(frozen=True)
class ReleaseReceived:
    diagnostic: str


@dataclasses.dataclass(frozen=True)
class AbortReceived:
    diagnostic: str


@dataclasses.dataclass(frozen=True)
class ConnectionAborted:
    """This side sent an Abort because the peer broke the protocol."""

    diagnostic: str


Event = (
    MessageReceived
    | SettingsReceived
    | PongReceived
    | ReleaseReceived
    | AbortReceived
    | ConnectionAborted
)


class CoapTcpConnection:
    """One CoAP-over-TLS connection, from either side.

    The CSM is queued at construction, because RFC 8323 clause 3.3 requires it as
    the first message of each side and forbids the initiator to wait for the
    peer's CSM first.
    """

    def __init__(
        self, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE, *, block_wise_transfer: bool = False
    ) -> None:
        if max_message_size < BASE_MAX_MESSAGE_SIZE:
            raise ValueError(
                f"max_message_size must be at least {BASE_MAX_MESSAGE_SIZE} octets "
                f"(the RFC 8323 base value), got {max_message_size}"
            )
        self.max_message_size = max_message_size
        self.peer_max_message_size = BASE_MAX_MESSAGE_SIZE
        self.peer_settings_received = False
        # After a received Release this side still responds to the requests that came
        # before it (RFC 8323 clause 5.5). After an Abort nothing more is sent.
        self.closed = False
        self.can_send = True
        self._buffer = bytearray()
        self._outgoing = bytearray()
        self._queue_csm(block_wise_transfer)

    def data_to_send(self) -> bytes:
        """Return and clear the octets queued for the peer."""
        data = bytes(self._outgoing)
        self._outgoing.clear()
        return data

    def send_message(self, message: Message) -> None:
        """Queue a request or response; it must fit the peer's Max-Message-Size."""
        if not self.can_send:
            raise ConnectionError("the CoAP connection is closed")
        if is_signaling(int(message.code)):
            raise ValueError("use send_ping, send_release or send_abort for signaling messages")

        frame = encode_message(message)
        if len(frame) > self.peer_max_message_size:
            raise MessageTooLarge(
                f"message of {len(frame)} octets exceeds the peer's Max-Message-Size of "
                f"{self.peer_max_message_size} octets",
                size=len(frame),
                limit=self.peer_max_message_size,
            )
        self._outgoing += frame

    def send_ping(self, token: bytes = b"") -> None:
        self._queue_signal(Code.PING, token)

    def send_release(self, diagnostic: str = "") -> None:
        """Announce an orderly shutdown (RFC 8323 clause 5.5)."""
        self._queue_signal(Code.RELEASE, b"", diagnostic)
        self.closed = True
        self.can_send = False

    def send_abort(self, diagnostic: str, bad_csm_option: int | None = None) -> None:
        """Abort the connection (RFC 8323 clause 5.6); nothing is processed afterwards."""
        message = Message(code=Code.ABORT, payload=diagnostic.encode("utf-8"))
        if bad_csm_option is not None:
            message.opt.add_option(UintOption(SignalingOption.BAD_CSM_OPTION, bad_csm_option))
        self._outgoing += encode_message(message)
        self.closed = True
        self.can_send = False

    def receive_data(self, data: bytes) -> list[Event]:
        if self.closed:
            return []

        self._buffer += data
        events: list[Event] = []
        while not self.closed:
            try:
                frame = self._next_frame()
                if frame is None:
                    break
                events.extend(self._handle_message(decode_message(frame)))
            except CoapFramingError as error:
                events.append(self._abort(str(error), error.bad_csm_option))
        return events

    # Steps

    def _queue_csm(self, block_wise_transfer: bool) -> None:
        self._outgoing += _encoded_csm(self.max_message_size, block_wise_transfer)

    def _queue_signal(self, code: Code, token: bytes, diagnostic: str = "") -> None:
        message = Message(code=code, payload=diagnostic.encode("utf-8"))
        message.token = token
        self._outgoing += encode_message(message)

    def _next_frame(self) -> bytes | None:
        size = frame_size(self._buffer)
        if size is None:
            return None
        if size > self.max_message_size:
            raise CoapFramingError(
                f"message of {size} octets exceeds Max-Message-Size {self.max_message_size}"
            )
        if len(self._buffer) < size:
            return None

        frame = bytes(self._buffer[:size])
        del self._buffer[:size]
        return frame

    def _abort(self, diagnostic: str, bad_csm_option: int | None = None) -> ConnectionAborted:
        self.send_abort(diagnostic, bad_csm_option)
        self._buffer.clear()
        return ConnectionAborted(diagnostic)

    def _handle_message(self, message: Message) -> list[Event]:
        code = int(message.code)
        if not self.peer_settings_received and code != Code.CSM:
            # RFC 8323 clause 3.3: a missing CSM is a connection error.
            raise CoapFramingError(f"expected CSM (7.01) as the first message, got {Code(code)}")

        if code == Code.EMPTY:
            return []  # RFC 8323 clause 3.4: Empty messages are ignored.
        if is_signaling(code):
            return self._handle_signal(message)
        if code >> 5 in (1, 6):
            raise CoapFramingError(f"code {code >> 5}.{code & 0x1F:02d} is from a reserved class")
        return [MessageReceived(message)]

    def _handle_signal(self, message: Message) -> list[Event]:
        code = Code(int(message.code))
        known = _KNOWN_SIGNALING_OPTIONS.get(code)
        if known is None:
            raise CoapFramingError(f"unknown signaling code {code}")
        _check_signaling_options(message, code, known)

        if code == Code.CSM:
            return [self._apply_csm(message)]
        if code == Code.PING:
            self._answer_ping(message)
            return []
        if code == Code.PONG:
            return [PongReceived(bytes(message.token))]

        diagnostic = _diagnostic(message)
        self.closed = True
        if code == Code.RELEASE:
            return [ReleaseReceived(diagnostic)]
        self.can_send = False
        return [AbortReceived(diagnostic)]

    def _apply_csm(self, message: Message) -> SettingsReceived:
        for option in message.opt.get_option(SignalingOption.MAX_MESSAGE_SIZE):
            value = option.encode()
            if len(value) > 4:
                raise CoapFramingError(
                    f"Max-Message-Size of {len(value)} octets; RFC 8323 allows at most 4",
                    bad_csm_option=SignalingOption.MAX_MESSAGE_SIZE,
                )
            self.peer_max_message_size = int.from_bytes(value, "big")

        block_wise = bool(message.opt.get_option(SignalingOption.BLOCK_WISE_TRANSFER))
        self.peer_settings_received = True
        return SettingsReceived(self.peer_max_message_size, block_wise)

    def _answer_ping(self, ping: Message) -> None:
        pong = Message(code=Code.PONG)
        pong.token = bytes(ping.token)
        if ping.opt.get_option(SignalingOption.CUSTODY):
            # Messages are handled in arrival order, so all earlier ones are processed.
            pong.opt.add_option(OpaqueOption(SignalingOption.CUSTODY, b""))
        self._outgoing += encode_message(pong)


@functools.lru_cache(maxsize=16)
def _encoded_csm(max_message_size: int, block_wise_transfer: bool) -> bytes:
    """Return the CSM frame; cached, because every connection sends the same one."""
    csm = Message(code=Code.CSM)
    csm.opt.add_option(UintOption(SignalingOption.MAX_MESSAGE_SIZE, max_message_size))
    if block_wise_transfer:
        csm.opt.add_option(OpaqueOption(SignalingOption.BLOCK_WISE_TRANSFER, b""))
    return encode_message(csm)


def _check_signaling_options(message: Message, code: Code, known: set[int]) -> None:
    # RFC 8323 clause 5.2: an unknown critical (odd-numbered) signaling option aborts.
    for option in message.opt.option_list():
        number = int(option.number)
        if number not in known and number & 1:
            raise CoapFramingError(
                f"unknown critical option {number} in {code}",
                bad_csm_option=number if code == Code.CSM else None,
            )


def _diagnostic(message: Message) -> str:
    return bytes(message.payload).decode("utf-8", errors="replace")
