"""CoAP messages over datagrams (RFC 7252): format, replies, deduplication, retransmission."""

import random

import pytest
from aiocoap import Message
from aiocoap.numbers.codes import Code

from msgin5g.coap import udp


def con_request(mid: int = 0x1234, token: bytes = b"tokn") -> Message:
    message = Message(code=Code.POST, payload=b"{}", uri_path=("msgin5g", "v1", "registrations"))
    message.mtype, message.mid, message.token = udp.CON, mid, token
    return message


def test_encode_header():
    # RFC 7252 clause 3: Ver 1, Type CON (0), TKL 4, Code 0.02, Message ID.
    assert udp.encode(con_request())[:4] == bytes([0x44, 0x02, 0x12, 0x34])


def test_decode_round_trip():
    decoded = udp.decode(udp.encode(con_request()))

    assert (decoded.mtype, decoded.mid, bytes(decoded.token)) == (udp.CON, 0x1234, b"tokn")


def test_decode_short_datagram():
    with pytest.raises(udp.CoapUdpError, match="not a CoAP message of RFC 7252 clause 3"):
        udp.decode(b"\x40")


def test_encode_needs_mid():
    message = Message(code=Code.POST)
    message.mtype = udp.CON

    with pytest.raises(ValueError, match="set the message type and message ID"):
        udp.encode(message)


def test_piggybacked_for_con():
    ids = udp.MessageIds(start=1)
    response = udp.piggybacked_response(con_request(), Message(code=Code.CREATED), ids)

    assert (response.mtype, response.mid, bytes(response.token)) == (udp.ACK, 0x1234, b"tokn")


def test_non_response_for_non():
    request = con_request()
    request.mtype = udp.NON
    response = udp.piggybacked_response(request, Message(code=Code.CREATED), udp.MessageIds(start=9))

    assert (response.mtype, response.mid) == (udp.NON, 9)


def test_empty_ack():
    assert udp.encode(udp.empty_ack(con_request())) == bytes([0x60, 0x00, 0x12, 0x34])


def test_reset():
    assert udp.encode(udp.reset(con_request())) == bytes([0x70, 0x00, 0x12, 0x34])


def test_message_ids_wrap():
    ids = udp.MessageIds(start=0xFFFF)

    assert [ids.next(), ids.next()] == [0xFFFF, 0]


def test_deduplicator_new():
    assert udp.Deduplicator().seen(5) is None


def test_deduplicator_in_progress():
    deduplicator = udp.Deduplicator()
    deduplicator.start(5)

    assert deduplicator.seen(5) == b""


def test_deduplicator_replays_response():
    deduplicator = udp.Deduplicator()
    deduplicator.start(5)
    deduplicator.finish(5, b"response")

    assert deduplicator.seen(5) == b"response"


def test_deduplicator_forgets_after_lifetime():
    now = [0.0]
    deduplicator = udp.Deduplicator(lifetime=10, clock=lambda: now[0])
    deduplicator.finish(5, b"response")
    now[0] = 10.0

    assert deduplicator.seen(5) is None


def test_deduplicator_bounded():
    deduplicator = udp.Deduplicator(max_entries=2)
    for mid in (1, 2, 3):
        deduplicator.finish(mid, b"r")

    assert deduplicator.seen(1) is None


def test_timeouts_double():
    timeouts = udp.RetransmissionPolicy().timeouts(random.Random(1))

    assert [t / timeouts[0] for t in timeouts] == [1, 2, 4, 8, 16]


def test_first_timeout_in_range():
    first = udp.RetransmissionPolicy().timeouts(random.Random(2))[0]

    assert udp.ACK_TIMEOUT <= first <= udp.ACK_TIMEOUT * udp.ACK_RANDOM_FACTOR


def test_policy_rejects_zero_timeout():
    with pytest.raises(ValueError, match="ack_timeout must be positive, got 0"):
        udp.RetransmissionPolicy(ack_timeout=0)


async def test_reply_repeats_response_for_repeated_con():
    calls = []

    async def respond(request: Message) -> Message:
        calls.append(request.mid)
        return Message(code=Code.CHANGED, payload=b"done")

    deduplicator, ids = udp.Deduplicator(), udp.MessageIds(start=7)
    datagram = udp.encode(con_request(mid=100))
    first = await udp.reply_to_datagram(datagram, respond, deduplicator, ids)
    again = await udp.reply_to_datagram(datagram, respond, deduplicator, ids)

    assert udp.decode(first).code == Code.CHANGED
    assert udp.decode(first).mtype == udp.ACK
    assert again == first
    assert calls == [100]


async def test_reply_resets_con_response_and_ignores_ack():
    async def respond(request: Message) -> Message:
        raise AssertionError("only requests reach respond")

    deduplicator, ids = udp.Deduplicator(), udp.MessageIds()
    stray_response, empty_ack = Message(code=Code.CONTENT), Message(code=Code.EMPTY)
    stray_response.mtype, stray_response.mid, stray_response.token = udp.CON, 5, b"t"
    empty_ack.mtype, empty_ack.mid = udp.ACK, 6
    stray, ack = udp.encode(stray_response), udp.encode(empty_ack)

    assert udp.decode(await udp.reply_to_datagram(stray, respond, deduplicator, ids)).mtype == udp.RST
    assert await udp.reply_to_datagram(ack, respond, deduplicator, ids) is None
