"""CoAP over TCP framing and signaling (RFC 8323)."""

import pytest
from aiocoap import Message
from aiocoap.numbers.codes import Code
from aiocoap.optiontypes import OpaqueOption, UintOption
from hypothesis import given, settings
from hypothesis import strategies as st

from msgin5g.coap.tcp import (
    AbortReceived,
    CoapFramingError,
    CoapTcpConnection,
    ConnectionAborted,
    MessageReceived,
    PongReceived,
    ReleaseReceived,
    SettingsReceived,
    decode_message,
    encode_message,
    frame_size,
)


def request(payload: bytes = b"", token: bytes = b"\x01") -> Message:
    message = Message(code=Code.POST, payload=payload, uri_path=("msgin5g", "v1", "registrations"))
    message.token = token
    return message


def connected_pair() -> tuple[CoapTcpConnection, CoapTcpConnection]:
    """Two connections that have exchanged their CSMs."""
    client, server = CoapTcpConnection(), CoapTcpConnection()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    return client, server


# Framing


def test_rfc8323_example_frame():
    """RFC 8323 clause 3.2: 2.03 with token 7f and nothing else is 01 43 7f."""
    message = Message(code=Code.VALID)
    message.token = b"\x7f"

    assert encode_message(message) == bytes.fromhex("01437f")


def test_rfc8323_ping_example():
    message = Message(code=Code.PING)
    message.token = b"\x42"

    assert encode_message(message) == bytes.fromhex("01e242")


@pytest.mark.parametrize(
    ("payload_octets", "length_nibble", "extended_octets"),
    [
        (0, 0, 0),
        (11, 12, 0),  # 1 marker + 11 payload = 12
        (12, 13, 1),  # 13: first value of the 8-bit extension
        (267, 13, 1),  # 268: last value of the 8-bit extension
        (268, 14, 2),  # 269: first value of the 16-bit extension
        (65803, 14, 2),  # 65804: last value of the 16-bit extension
        (65804, 15, 4),  # 65805: first value of the 32-bit extension
        (70000, 15, 4),
    ],
)
def test_extended_length_round_trip(payload_octets, length_nibble, extended_octets):
    message = Message(code=Code.CONTENT, payload=b"p" * payload_octets)
    message.token = b"\xaa\xbb"

    frame = encode_message(message)
    decoded = decode_message(frame)

    assert frame[0] >> 4 == length_nibble
    assert len(frame) == 1 + extended_octets + 1 + 2 + (payload_octets + 1 if payload_octets else 0)
    assert frame_size(frame) == len(frame)
    assert decoded.payload == message.payload
    assert decoded.token == b"\xaa\xbb"
    assert decoded.code == Code.CONTENT


def test_options_round_trip():
    message = request(b'{"messageType":"REG"}', token=b"\x01\x02\x03\x04")
    message.opt.content_format = 50

    decoded = decode_message(encode_message(message))

    assert decoded.opt.uri_path == ("msgin5g", "v1", "registrations")
    assert decoded.opt.content_format == 50
    assert decoded.payload == b'{"messageType":"REG"}'


def test_frame_size_needs_extended_length():
    assert frame_size(b"") is None
    assert frame_size(b"\xe0\x00") is None
    assert frame_size(b"\xe0\x00\x00") == 1 + 2 + 1 + 269


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (b"\x09\x45" + bytes(9), "token length 9 is reserved"),
        (b"\x10\x45\xff", "payload marker without payload"),
        (b"\x20\x45\xf0\x00", "option delta nibble 15"),
        (b"\x20\x45\x0f\x00", "option length nibble 15"),
        (b"\x10\x45\x03", "runs past the message end"),
        (b"\x10\x45\xd0", "option delta runs past"),
        (b"\x20\x45\xb1\xff", "invalid options"),
    ],
)
def test_malformed_frames_rejected(frame, message):
    with pytest.raises(CoapFramingError, match=message):
        decode_message(frame)


def test_encode_rejects_long_token():
    message = Message(code=Code.GET)
    message.token = bytes(9)

    with pytest.raises(ValueError, match="token has 9 octets"):
        encode_message(message)


@settings(max_examples=200, deadline=None)
@given(
    code=st.sampled_from([Code.GET, Code.POST, Code.CONTENT, Code.BAD_REQUEST, Code.CREATED]),
    token=st.binary(max_size=8),
    path=st.lists(st.text(min_size=0, max_size=300), max_size=4),
    payload=st.binary(max_size=70000),
)
def test_round_trip_property(code, token, path, payload):
    message = Message(code=code, payload=payload)
    message.token = token
    message.opt.uri_path = tuple(path)

    frame = encode_message(message)
    decoded = decode_message(frame)

    assert frame_size(frame) == len(frame)
    assert decoded.code == code
    assert decoded.token == token
    assert decoded.opt.uri_path == tuple(path)
    assert decoded.payload == payload


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_fuzzed_input_aborts_or_parses(data):
    """Any octets either parse or end in an Abort; nothing else is raised."""
    connection = CoapTcpConnection()
    connection.data_to_send()
    events = connection.receive_data(CoapTcpConnection().data_to_send() + data)

    aborted = [event for event in events if isinstance(event, ConnectionAborted)]
    if aborted:
        assert connection.closed
        assert decode_message(connection.data_to_send()).code == Code.ABORT


# Signaling


def test_csm_is_first_and_carries_max_message_size():
    connection = CoapTcpConnection(max_message_size=4096)

    csm = decode_message(connection.data_to_send())

    assert csm.code == Code.CSM
    assert int.from_bytes(csm.opt.get_option(2)[0].encode(), "big") == 4096


def test_peer_csm_applies_settings():
    client, server = CoapTcpConnection(max_message_size=2000), CoapTcpConnection()

    events = server.receive_data(client.data_to_send())

    assert events == [SettingsReceived(max_message_size=2000, block_wise_transfer=False)]
    assert server.peer_max_message_size == 2000


def test_message_before_csm_aborts():
    server = CoapTcpConnection()
    server.data_to_send()

    events = server.receive_data(encode_message(request()))

    assert isinstance(events[0], ConnectionAborted)
    assert "expected CSM" in events[0].diagnostic
    abort = decode_message(server.data_to_send())
    assert abort.code == Code.ABORT
    assert b"expected CSM" in abort.payload


def test_request_after_csm_delivered():
    client, server = connected_pair()

    client.send_message(request(b"hello"))
    events = server.receive_data(client.data_to_send())

    assert len(events) == 1
    assert isinstance(events[0], MessageReceived)
    assert events[0].message.payload == b"hello"


def test_split_frames_reassembled():
    client, server = connected_pair()
    client.send_message(request(b"a" * 500))
    client.send_message(request(b"b" * 3, token=b"\x02"))
    data = client.data_to_send()

    events = []
    for i in range(0, len(data), 5):
        events += server.receive_data(data[i : i + 5])

    assert [event.message.payload for event in events] == [b"a" * 500, b"bbb"]


def test_ping_gets_pong():
    client, server = connected_pair()

    client.send_ping(b"\x42")
    assert server.receive_data(client.data_to_send()) == []
    events = client.receive_data(server.data_to_send())

    assert events == [PongReceived(b"\x42")]


def test_custody_ping_gets_custody_pong():
    client, server = connected_pair()
    ping = Message(code=Code.PING)
    ping.token = b"\x01"
    ping.opt.add_option(OpaqueOption(2, b""))

    server.receive_data(encode_message(ping))
    pong = decode_message(server.data_to_send())

    assert pong.code == Code.PONG
    assert pong.opt.get_option(2)


def test_empty_message_ignored():
    client, server = connected_pair()

    assert server.receive_data(b"\x00\x00") == []
    assert not server.closed


def test_release_received():
    client, server = connected_pair()

    client.send_release("K_AF expired")
    events = server.receive_data(client.data_to_send())

    assert events == [ReleaseReceived("K_AF expired")]
    assert server.closed and client.closed


def test_response_after_received_release_allowed():
    """RFC 8323 clause 5.5: requests sent before a Release still get responses."""
    client, server = connected_pair()
    client.send_message(request(b"last"))
    client.send_release("done")

    events = server.receive_data(client.data_to_send())
    response = Message(code=Code.CHANGED)
    response.token = events[0].message.token
    server.send_message(response)

    assert isinstance(events[0], MessageReceived)
    assert events[1] == ReleaseReceived("done")
    assert decode_message(server.data_to_send()).code == Code.CHANGED


def test_nothing_sent_after_received_abort():
    client, server = connected_pair()
    client.send_abort("broken")
    server.receive_data(client.data_to_send())

    with pytest.raises(ConnectionError):
        server.send_message(Message(code=Code.CHANGED))


def test_abort_received():
    client, server = connected_pair()

    client.send_abort("broken")
    events = server.receive_data(client.data_to_send())

    assert events == [AbortReceived("broken")]


def test_oversized_message_aborts():
    client, server = CoapTcpConnection(), CoapTcpConnection(max_message_size=2048)
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    client.peer_max_message_size = 100000  # A peer that ignores the server's CSM.

    client.send_message(request(b"x" * 5000))
    events = server.receive_data(client.data_to_send()[:10])

    assert isinstance(events[0], ConnectionAborted)
    assert "exceeds Max-Message-Size 2048" in events[0].diagnostic


def test_send_checks_peer_max_message_size():
    client, server = connected_pair()

    with pytest.raises(ValueError, match="exceeds the peer's Max-Message-Size of 65536"):
        client.send_message(request(b"x" * 70000))


def test_critical_csm_option_aborts():
    server = CoapTcpConnection()
    server.data_to_send()
    csm = Message(code=Code.CSM)
    csm.opt.add_option(UintOption(9, 1))

    events = server.receive_data(encode_message(csm))
    abort = decode_message(server.data_to_send())

    assert isinstance(events[0], ConnectionAborted)
    assert int.from_bytes(abort.opt.get_option(2)[0].encode(), "big") == 9


def test_unknown_elective_csm_option_ignored():
    server = CoapTcpConnection()
    csm = Message(code=Code.CSM)
    csm.opt.add_option(UintOption(10, 1))

    events = server.receive_data(encode_message(csm))

    assert events == [SettingsReceived(max_message_size=1152, block_wise_transfer=False)]


def test_unknown_signaling_code_aborts():
    client, server = connected_pair()

    events = server.receive_data(bytes([0x00, 0xE6]))

    assert isinstance(events[0], ConnectionAborted)
    assert "unknown signaling code" in events[0].diagnostic


def test_reserved_code_class_aborts():
    client, server = connected_pair()

    events = server.receive_data(bytes([0x00, 0x20]))

    assert isinstance(events[0], ConnectionAborted)


def test_nothing_processed_after_abort():
    client, server = connected_pair()
    server.receive_data(b"\x09\x45" + bytes(9))

    assert server.receive_data(encode_message(request())) == []


def test_send_after_close_raises():
    client, server = connected_pair()
    client.send_release()

    with pytest.raises(ConnectionError):
        client.send_message(request())


def test_signaling_via_send_message_refused():
    client, server = connected_pair()

    with pytest.raises(ValueError, match="signaling"):
        client.send_message(Message(code=Code.PING))


def test_max_message_size_below_base_refused():
    with pytest.raises(ValueError, match="at least 1152"):
        CoapTcpConnection(max_message_size=1000)
