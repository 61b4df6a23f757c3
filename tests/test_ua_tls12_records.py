"""Parsing of the TLS 1.2 handshake messages the AF and the UE read in the clear."""

import pytest

from msgin5g.ua.alerts import AlertDescription
from msgin5g.ua.clienthello import (
    ClientHelloError,
    HandshakeReader,
    KeyExchange,
    parse_psk_client_key_exchange,
    parse_server_hello,
)


def server_hello(suite: int, extensions: bytes | None = None) -> bytes:
    body = b"\x03\x03" + bytes(32) + b"\x00" + suite.to_bytes(2, "big") + b"\x00"
    if extensions is not None:
        body += len(extensions).to_bytes(2, "big") + extensions
    return body


def record(handshake: bytes) -> bytes:
    return b"\x16\x03\x03" + len(handshake).to_bytes(2, "big") + handshake


def message(msg_type: int, body: bytes) -> bytes:
    return bytes([msg_type]) + len(body).to_bytes(3, "big") + body


def test_server_hello_suite():
    assert parse_server_hello(server_hello(0x00A8)).cipher_suite == 0x00A8


def test_server_hello_selected_version():
    extension = b"\x00\x2b\x00\x02\x03\x04"
    assert parse_server_hello(server_hello(0x1301, extension)).version == 0x0304


def test_server_hello_truncated_rejected():
    with pytest.raises(ClientHelloError, match="cipher_suite needs 2 octets"):
        parse_server_hello(server_hello(0x00A8)[:36])


def test_reader_returns_first_of_several_messages():
    flight = record(message(2, server_hello(0xCCAC)) + message(14, b""))

    first = HandshakeReader("ServerHello").receive_data(flight)

    assert first.msg_type == 2
    assert parse_server_hello(first.body).cipher_suite == 0xCCAC


def test_reader_across_records():
    handshake = message(16, b"\x00\x03abc")
    reader = HandshakeReader("ClientKeyExchange")

    assert reader.receive_data(record(handshake[:3])) is None
    assert reader.receive_data(record(handshake[3:])).body == b"\x00\x03abc"


def test_reader_rejects_alert_record():
    with pytest.raises(ClientHelloError) as raised:
        HandshakeReader("ClientKeyExchange").receive_data(b"\x15\x03\x03\x00\x02\x02\x28")

    assert raised.value.alert is AlertDescription.unexpected_message


def test_psk_identity():
    assert parse_psk_client_key_exchange(b"\x00\x03abc", KeyExchange.psk) == b"abc"


def test_empty_psk_identity_returned():
    assert parse_psk_client_key_exchange(b"\x00\x00", KeyExchange.psk) == b""


def test_ecdhe_psk_identity_then_point():
    body = b"\x00\x03abc" + b"\x20" + bytes(32)
    assert parse_psk_client_key_exchange(body, KeyExchange.ecdhe_psk) == b"abc"


def test_ecdhe_psk_without_point_rejected():
    with pytest.raises(ClientHelloError, match="ECDH public point"):
        parse_psk_client_key_exchange(b"\x00\x03abc", KeyExchange.ecdhe_psk)


def test_psk_trailing_octets_rejected():
    with pytest.raises(ClientHelloError, match="unexpected octets"):
        parse_psk_client_key_exchange(b"\x00\x03abcX", KeyExchange.psk)
