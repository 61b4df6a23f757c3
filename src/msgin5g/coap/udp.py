"""CoAP messages over datagrams (RFC 7252): the UDP format, used here inside DTLS.

Sans-IO helpers on aiocoap's `Message`, whose encode() and decode() implement
the message format of RFC 7252 clause 3:

- `encode`/`decode` with a clear error for a datagram that is not CoAP;
- `MessageIds`: 16-bit message IDs, starting at a random value;
- `piggybacked_response`, `empty_ack`, `reset`: the replies of clause 4.2 and 5.2.1;
- `Deduplicator`: a server sends the response it already sent again when a
  CON is retransmitted, for EXCHANGE_LIFETIME (clause 4.5);
- `RetransmissionPolicy`: the CON timeouts of clause 4.2 and 4.8.
"""

import dataclasses
import random
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from aiocoap import ACK, CON, NON, RST, Message
from aiocoap.error import UnparsableMessage
from aiocoap.numbers.codes import Code

__all__ = [
    "ACK",
    "CON",
    "NON",
    "RST",
    "CoapUdpError",
    "Deduplicator",
    "MessageIds",
    "RetransmissionPolicy",
    "decode",
    "empty_ack",
    "encode",
    "piggybacked_response",
    "reset",
]

# RFC 7252 clause 4.8 transmission parameters and 4.8.2 derived time.
ACK_TIMEOUT = 2.0
ACK_RANDOM_FACTOR = 1.5
MAX_RETRANSMIT = 4
EXCHANGE_LIFETIME = 247.0

DEFAULT_MAX_REMEMBERED = 10_000


class CoapUdpError(ValueError):
    """A datagram that is not a CoAP message in the format of RFC 7252 clause 3."""


def encode(message: Message) -> bytes:
    """Encode a message that has its type, message ID and token set."""
    if message.mtype is None or message.mid is None:
        raise ValueError("set the message type and message ID before encoding a CoAP datagram")
    return message.encode()


def decode(datagram: bytes) -> Message:
    """Decode one datagram; raise CoapUdpError naming what is wrong."""
    try:
        return Message.decode(datagram)
    except (UnparsableMessage, ValueError) as error:
        raise CoapUdpError(f"not a CoAP message of RFC 7252 clause 3: {error}") from error


def _reply(mtype: object, mid: int, code: Code = Code.EMPTY) -> Message:
    message = Message(code=code)
    message.mtype = mtype
    message.mid = mid
    return message


def empty_ack(request: Message) -> Message:
    """Build an empty ACK for a CON (clause 4.2)."""
    return _reply(ACK, request.mid)


def reset(message: Message) -> Message:
    """Build an RST for a message this endpoint cannot process (clause 4.2, 4.3)."""
    return _reply(RST, message.mid)


def piggybacked_response(request: Message, response: Message, ids: "MessageIds") -> Message:
    """Make `response` the reply to `request` (clause 5.2.1 and 5.2.3).

    A CON request gets the response in its ACK; a NON request gets a NON response
    with a new message ID. The token is the request's.
    """
    response.token = bytes(request.token)
    if request.mtype == CON:
        response.mtype = ACK
        response.mid = request.mid
    else:
        response.mtype = NON
        response.mid = ids.next()
    return response


class MessageIds:
    """16-bit message IDs, from a random start (clause 4.4)."""

    def __init__(self, start: int | None = None) -> None:
        self._next = secrets.randbelow(0x10000) if start is None else start & 0xFFFF

    def next(self) -> int:
        value = self._next
        self._next = (self._next + 1) & 0xFFFF
        return value


class Deduplicator:
    """Remembers, per message ID, the response datagram sent for a CON (clause 4.5).

    `seen` returns None for a new message and b"" while the request is still being
    processed, so the duplicate is dropped. Other octets are the response to send again.
    """

    def __init__(
        self,
        lifetime: float = EXCHANGE_LIFETIME,
        max_entries: int = DEFAULT_MAX_REMEMBERED,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lifetime = lifetime
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[int, tuple[float, bytes]] = OrderedDict()

    def seen(self, mid: int) -> bytes | None:
        self._expire()
        entry = self._entries.get(mid)
        return entry[1] if entry is not None else None

    def start(self, mid: int) -> None:
        self._remember(mid, b"")

    def finish(self, mid: int, response: bytes) -> None:
        self._remember(mid, response)

    def _remember(self, mid: int, response: bytes) -> None:
        self._entries[mid] = (self._clock() + self._lifetime, response)
        self._entries.move_to_end(mid)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def _expire(self) -> None:
        now = self._clock()
        while self._entries:
            mid, (deadline, _) = next(iter(self._entries.items()))
            if deadline > now:
                break
            del self._entries[mid]


async def reply_to_datagram(
    datagram: bytes,
    respond: Callable[[Message], Awaitable[Message]],
    deduplicator: Deduplicator,
    ids: MessageIds,
) -> bytes | None:
    """Return the datagram that replies to `datagram` on a server that sends no CON, or None.

    A request gets `respond`'s response piggybacked (a repeated CON gets the
    remembered one again, clause 4.5), a non-request CON gets a Reset, and an
    ACK or RST gets nothing because no CON of this side waits for it. Raises
    CoapUdpError for a datagram that is not CoAP.
    """
    request = decode(datagram)
    if request.mtype in (ACK, RST):
        return None
    if not request.code.is_request():
        return encode(reset(request)) if request.mtype == CON else None

    if request.mtype == CON:
        remembered = deduplicator.seen(request.mid)
        if remembered is not None:
            return remembered or None  # b"": the first copy is still being processed.
        deduplicator.start(request.mid)

    octets = encode(piggybacked_response(request, await respond(request), ids))
    if request.mtype == CON:
        deduplicator.finish(request.mid, octets)
    return octets


@dataclasses.dataclass(frozen=True)
class RetransmissionPolicy:
    """When a CON is sent again: clause 4.2, with the parameters of clause 4.8."""

    ack_timeout: float = ACK_TIMEOUT
    ack_random_factor: float = ACK_RANDOM_FACTOR
    max_retransmit: int = MAX_RETRANSMIT

    def __post_init__(self) -> None:
        if self.ack_timeout <= 0:
            raise ValueError(f"ack_timeout must be positive, got {self.ack_timeout}")
        if self.ack_random_factor < 1:
            raise ValueError(f"ack_random_factor must be at least 1, got {self.ack_random_factor}")
        if self.max_retransmit < 0:
            raise ValueError(f"max_retransmit must be 0 or more, got {self.max_retransmit}")

    def timeouts(self, rng: random.Random | None = None) -> list[float]:
        """Return the waits after the first transmission and each retransmission."""
        draw = (rng or random).uniform(self.ack_timeout, self.ack_timeout * self.ack_random_factor)
        return [draw * 2**attempt for attempt in range(self.max_retransmit + 1)]
