"""ClientHello reader: record reassembly, extension parsing, strict bounds."""

import ssl

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from af_helpers import AF_FQDN, as_records, build_client_hello
from msgin5g.ua.alerts import AlertDescription
from msgin5g.ua.clienthello import (
    ClientHelloError,
    ClientHelloReader,
    PskKeyExchangeMode,
    parse_client_hello,
)


def python_client_hello(identity: str = "3GPP-AKMAabc") -> bytes:
    """The first flight of a real Python/OpenSSL TLS 1.3 PSK client, as TLS records."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_psk_client_callback(lambda hint: (identity, bytes(32)))
    outgoing = ssl.MemoryBIO()
    client = context.wrap_bio(ssl.MemoryBIO(), outgoing, server_hostname=AF_FQDN)
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    return outgoing.read()


def read(records: bytes, max_size: int = 16384):
    return ClientHelloReader(max_size).receive_data(records)


def test_python_client_hello_fields():
    client_hello = read(python_client_hello())

    assert client_hello.server_name == AF_FQDN
    assert client_hello.offers_tls13
    assert 0x1301 in client_hello.cipher_suites
    assert client_hello.psk_key_exchange_modes == (PskKeyExchangeMode.psk_dhe_ke,)
    assert [p.identity for p in client_hello.psk_identities] == [b"3GPP-AKMAabc"]
    assert client_hello.extension_types[-1] == 41


def test_client_hello_byte_by_byte():
    records = python_client_hello()
    reader = ClientHelloReader()

    results = [reader.receive_data(records[i : i + 1]) for i in range(len(records))]

    assert all(result is None for result in results[:-1])
    assert results[-1].server_name == AF_FQDN


def test_client_hello_spread_over_records():
    handshake = build_client_hello(identities=(b"3GPP-AKMA" + b"k" * 200,))

    client_hello = read(as_records(handshake, fragment_size=7))

    assert client_hello.psk_identities[0].identity == b"3GPP-AKMA" + b"k" * 200


def test_data_after_client_hello_record_is_not_parsed():
    records = as_records(build_client_hello()) + b"\x14\x03\x03\x00\x01\x01"

    assert read(records) is not None


def test_reader_refuses_reuse_after_result():
    reader = ClientHelloReader()
    reader.receive_data(as_records(build_client_hello()))

    with pytest.raises(RuntimeError):
        reader.receive_data(b"\x16")


def test_empty_identity_is_reported_not_rejected():
    client_hello = read(as_records(build_client_hello(identities=(b"",))))

    assert client_hello.psk_identities[0].identity == b""


def test_missing_extensions_are_none():
    handshake = build_client_hello(identities=None, psk_modes=None, versions=None, server_name=None)

    client_hello = read(as_records(handshake))

    assert client_hello.psk_identities is None
    assert client_hello.psk_key_exchange_modes is None
    assert client_hello.supported_versions == ()
    assert client_hello.server_name is None
    assert not client_hello.offers_tls13


@pytest.mark.parametrize(
    ("records", "alert", "message"),
    [
        (b"\x17\x03\x03\x00\x01\x00", AlertDescription.unexpected_message, "content type 23"),
        (b"GET / HTTP/1.1\r\n", AlertDescription.unexpected_message, "content type 71"),
        (b"\x16\x07\x07\x00\x01\x01", AlertDescription.decode_error, "record version"),
        (b"\x16\x03\x01\x00\x00", AlertDescription.decode_error, "zero-length"),
        (b"\x16\x03\x01\x40\x01", AlertDescription.record_overflow, "16385"),
        (b"\x16\x03\x01\x00\x04\x02\x00\x00\x00", AlertDescription.unexpected_message, "type 2"),
    ],
)
def test_bad_records_rejected(records, alert, message):
    with pytest.raises(ClientHelloError) as error:
        read(records)

    assert error.value.alert is alert
    assert message in str(error.value)


def test_oversized_client_hello_rejected_from_header():
    header_only = b"\x16\x03\x01\x00\x04\x01\x00\x40\x01"

    with pytest.raises(ClientHelloError, match="16385 octets exceeds the limit of 16384"):
        read(header_only)


def test_too_many_records_rejected():
    handshake = build_client_hello()

    with pytest.raises(ClientHelloError, match="more than 64 records"):
        read(as_records(handshake, fragment_size=1))


def test_trailing_handshake_octets_rejected():
    records = as_records(build_client_hello() + b"\x00")

    with pytest.raises(ClientHelloError, match="extra octets after the ClientHello in its last record: 1"):
        read(records)


def test_duplicate_extension_rejected():
    handshake = build_client_hello(extra_extensions=((43, b"\x02\x03\x04"),))

    with pytest.raises(ClientHelloError, match="extension 43 appears more than once") as error:
        read(as_records(handshake))
    assert error.value.alert is AlertDescription.illegal_parameter


def test_pre_shared_key_not_last_rejected():
    handshake = build_client_hello(extensions_after_psk=((0xFFAA, b""),))

    with pytest.raises(ClientHelloError, match="pre_shared_key is not the last") as error:
        read(as_records(handshake))
    assert error.value.alert is AlertDescription.illegal_parameter


def test_binder_count_mismatch_rejected():
    handshake = build_client_hello(binder_count=2)

    with pytest.raises(ClientHelloError, match="1 identities but 2 binders") as error:
        read(as_records(handshake))
    assert error.value.alert is AlertDescription.illegal_parameter


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "legacy_version needs 2 octets"),
        (b"\x03\x03" + bytes(31), "random needs 32 octets"),
        (b"\x03\x03" + bytes(32) + b"\x21", "legacy_session_id has 33 octets"),
        (b"\x03\x03" + bytes(32) + b"\x00\x00\x03\x13\x01\x13", "cipher_suites has an odd length"),
        (b"\x03\x03" + bytes(32) + b"\x00\x00\x02\x13\x01\x00", "legacy_compression_methods has 0"),
        (b"\x03\x03" + bytes(32) + b"\x00\x00\x02\x13\x01\x01\x00\x00", "length of extensions needs 2"),
        (b"\x03\x03" + bytes(32) + b"\x00\x00\x02\x13\x01\x01\x00\x00\x05\x00", "extensions needs 5"),
    ],
)
def test_truncated_fields_rejected(body, message):
    with pytest.raises(ClientHelloError, match=message) as error:
        parse_client_hello(body)

    assert error.value.alert is AlertDescription.decode_error


def test_invalid_max_size_argument():
    with pytest.raises(ValueError, match="max_client_hello_size must be at least 1"):
        ClientHelloReader(0)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_fuzzed_bodies_raise_only_client_hello_error(body):
    try:
        parse_client_hello(body)
    except ClientHelloError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.integers(min_value=1, max_value=64))
def test_fuzzed_records_raise_only_client_hello_error(data, chunk):
    reader = ClientHelloReader(2048)
    records = b"\x16\x03\x01" + len(data).to_bytes(2, "big") + data
    try:
        for start in range(0, len(records), chunk):
            if reader.receive_data(records[start : start + chunk]) is not None:
                break
    except ClientHelloError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_client_hello_fuzz(data):
    records = bytearray(as_records(build_client_hello()))
    for _ in range(data.draw(st.integers(min_value=1, max_value=8))):
        position = data.draw(st.integers(min_value=0, max_value=len(records) - 1))
        records[position] = data.draw(st.integers(min_value=0, max_value=255))
    try:
        ClientHelloReader().receive_data(bytes(records))
    except ClientHelloError:
        pass
