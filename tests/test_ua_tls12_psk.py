"""The sans-IO TLS 1.2 PSK engines of the AF and the UE against each other and plain OpenSSL."""

import ssl

import pytest

from af_helpers import AF_FQDN
from msgin5g.crypto.akma import af_id, k_af, ua_tls12
from msgin5g.ua.alerts import AlertDescription, fatal_alert_record
from msgin5g.ua.tls12_psk import (
    AKMA_IDENTITY_HINT,
    Tls12ClientError,
    Tls12PskClient,
    Tls12PskServer,
    parse_cipher_suites,
)
from msgin5g.ua.tls13_psk import ConnectionFailed, HandshakeComplete, KafNeeded, State

K_AKMA = bytes(range(32))
A_KID = "rid0.atidAAAA@5gc.mnc001.mcc001.3gppnetwork.org"


class KafTable:
    """The AF's K_AF cache for one UE: derives K_AF per AF_ID and records each lookup."""

    def __init__(self, k_akma: bytes | None = K_AKMA, a_kid: str = A_KID) -> None:
        self.k_akma = k_akma
        self.a_kid = a_kid
        self.lookups: list[bytes] = []

    def lookup(self, a_kid: str, ua_protocol_id: bytes) -> bytes | None:
        self.lookups.append(ua_protocol_id)
        if self.k_akma is None or a_kid != self.a_kid:
            return None
        return k_af(self.k_akma, af_id(AF_FQDN, ua_protocol_id))


def first_flights(server: Tls12PskServer, client: Tls12PskClient) -> list:
    """Run ClientHello, the server's first flight and the client's second; return its events."""
    client.start()
    assert server.receive_data(client.data_to_send()) == []
    client.receive_data(server.data_to_send())
    return server.receive_data(client.data_to_send())


def handshake(server: Tls12PskServer, client: Tls12PskClient) -> list:
    events = first_flights(server, client)
    events += server.resume()
    client.receive_data(server.data_to_send())
    return events


@pytest.mark.parametrize(
    "suite, code",
    [
        ("PSK-AES128-GCM-SHA256", 0x00A8),
        ("PSK-AES128-CCM8", 0xC0A8),
        ("PSK-AES256-GCM-SHA384", 0x00A9),
        ("ECDHE-PSK-AES128-CBC-SHA256", 0xC037),
        ("ECDHE-PSK-CHACHA20-POLY1305", 0xCCAC),
    ],
)
def test_handshake_keys_suite_specific_k_af(suite, code):
    table = KafTable()
    server = Tls12PskServer(table.lookup)
    client = Tls12PskClient(AF_FQDN, A_KID, K_AKMA, cipher_suites=(suite,))

    events = handshake(server, client)

    assert events[0] == KafNeeded(A_KID, AF_FQDN, ua_tls12(code))
    assert isinstance(events[1], HandshakeComplete)
    assert server.state is State.ESTABLISHED
    assert client.established
    assert server.cipher_suite == code
    assert client.keyed_suite == code
    assert table.lookups == [ua_tls12(code)]


def test_psk_lookup_only_after_resume():
    table = KafTable()
    server = Tls12PskServer(table.lookup)

    first_flights(server, Tls12PskClient(AF_FQDN, A_KID, K_AKMA))

    assert server.state is State.AWAITING_KAF
    assert table.lookups == []


def test_server_prefers_ecdhe():
    server = Tls12PskServer(KafTable().lookup)

    handshake(server, Tls12PskClient(AF_FQDN, A_KID, K_AKMA))

    assert server.cipher_suite == 0xCCAC


def test_application_data_both_ways():
    server = Tls12PskServer(KafTable().lookup)
    client = Tls12PskClient(AF_FQDN, A_KID, K_AKMA)
    handshake(server, client)

    client.send(b"csm")
    received = server.receive_data(client.data_to_send())
    server.send(b"answer")

    assert received[0].data == b"csm"
    assert client.receive_data(server.data_to_send()) == b"answer"


def test_wrong_k_af_fails_finished():
    server = Tls12PskServer(KafTable(bytes(32)).lookup)
    client = Tls12PskClient(AF_FQDN, A_KID, K_AKMA, cipher_suites=("PSK-AES128-GCM-SHA256",))

    first_flights(server, client)
    failure = server.resume()[0]

    assert isinstance(failure, ConnectionFailed)
    assert failure.key_mismatch
    assert failure.alert is AlertDescription.bad_record_mac


def test_wrong_k_af_alert_reaches_client():
    server = Tls12PskServer(KafTable(bytes(32)).lookup)
    client = Tls12PskClient(AF_FQDN, A_KID, K_AKMA, cipher_suites=("ECDHE-PSK-AES128-CBC-SHA256",))
    first_flights(server, client)
    server.resume()

    with pytest.raises(Tls12ClientError) as raised:
        client.receive_data(server.data_to_send())

    assert raised.value.alert in (AlertDescription.bad_record_mac, AlertDescription.decrypt_error)


def test_k_af_gone_at_resume_fails():
    server = Tls12PskServer(KafTable(None).lookup)
    first_flights(server, Tls12PskClient(AF_FQDN, A_KID, K_AKMA))

    failure = server.resume()[0]

    assert isinstance(failure, ConnectionFailed)
    assert "no usable K_AF" in failure.reason
    assert failure.alert is AlertDescription.unknown_psk_identity


def test_reject_sends_plaintext_alert():
    server = Tls12PskServer(KafTable().lookup)
    first_flights(server, Tls12PskClient(AF_FQDN, A_KID, K_AKMA))

    server.reject(AlertDescription.unknown_psk_identity, "unknown A-KID")

    assert server.data_to_send() == fatal_alert_record(AlertDescription.unknown_psk_identity)
    assert server.state is State.FAILED


class PlainClient:
    """A plain OpenSSL TLS 1.2 PSK client on memory BIOs with any PSK callback."""

    def __init__(self, callback) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers("PSK")
        context.set_psk_client_callback(callback)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.ssl_object = context.wrap_bio(self.incoming, self.outgoing, server_hostname=AF_FQDN)

    def step(self, data: bytes = b"") -> bytes:
        self.incoming.write(data)
        try:
            self.ssl_object.do_handshake()
        except ssl.SSLWantReadError:
            pass
        return self.outgoing.read()


def plain_client(identity: str, key: bytes = bytes(32)) -> PlainClient:
    return PlainClient(lambda hint: (identity, key))


def key_exchange_events(server: Tls12PskServer, client: PlainClient) -> list:
    server.receive_data(client.step())
    return server.receive_data(client.step(server.data_to_send()))


@pytest.mark.parametrize(
    "identity, reason",
    [
        ("", "empty PSK identity"),
        (A_KID, "lacks the 3GPP-AKMA prefix"),
        ("3GPP-AKMA", "no A-KID after the 3GPP-AKMA prefix"),
    ],
)
def test_bad_identity_refused(identity, reason):
    server = Tls12PskServer(KafTable().lookup)

    events = key_exchange_events(server, plain_client(identity))

    assert isinstance(events[0], ConnectionFailed)
    assert reason in events[0].reason
    assert server.data_to_send() == fatal_alert_record(AlertDescription.unknown_psk_identity)


@pytest.mark.parametrize("a_kid_octets", [129, 200, 246])
def test_long_a_kid_handshake_works(a_kid_octets):
    a_kid = "a" * (a_kid_octets - len("@x")) + "@x"
    server = Tls12PskServer(KafTable(a_kid=a_kid).lookup)

    events = handshake(server, Tls12PskClient(AF_FQDN, a_kid, K_AKMA))

    assert events[0].a_kid == a_kid
    assert server.state is State.ESTABLISHED


def test_client_without_common_suite_refused():
    server = Tls12PskServer(KafTable().lookup, cipher_suites=("PSK-AES128-GCM-SHA256",))
    client = Tls12PskClient(AF_FQDN, A_KID, K_AKMA, cipher_suites=("PSK-AES128-CCM8",))
    client.start()

    events = server.receive_data(client.data_to_send())

    assert events[0].alert is AlertDescription.handshake_failure
    assert "none of this server's TLS 1.2 PSK cipher suites" in events[0].reason


class HintingServer:
    """A plain OpenSSL TLS 1.2 PSK server on memory BIOs that sends `hint`."""

    def __init__(self, hint: str | None) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers("PSK")
        context.set_psk_server_callback(lambda identity: bytes(32), identity_hint=hint)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.ssl_object = context.wrap_bio(self.incoming, self.outgoing, server_side=True)

    def step(self, data: bytes) -> bytes:
        self.incoming.write(data)
        try:
            self.ssl_object.do_handshake()
        except ssl.SSLWantReadError:
            pass
        return self.outgoing.read()


@pytest.mark.parametrize("hint", ["other-hint", None])
def test_client_refuses_other_hint(hint):
    server = HintingServer(hint)
    client = Tls12PskClient(AF_FQDN, A_KID, K_AKMA)
    client.start()
    first_flight = server.step(client.data_to_send())

    with pytest.raises(Tls12ClientError) as raised:
        client.receive_data(first_flight)

    assert raised.value.refused
    assert f"not {AKMA_IDENTITY_HINT!r}" in raised.value.reason
    assert client.keyed_suite is None


def test_unknown_suite_name_rejected():
    with pytest.raises(ValueError, match="'AES128-SHA' is not a supported TLS 1.2 PSK suite"):
        parse_cipher_suites(["AES128-SHA"])


def test_client_requires_32_octet_k_akma():
    with pytest.raises(ValueError, match="k_akma must be 32 octets"):
        Tls12PskClient(AF_FQDN, A_KID, bytes(16))


def test_client_repr_hides_keys():
    client = Tls12PskClient(AF_FQDN, A_KID, K_AKMA)

    assert K_AKMA.hex() not in repr(client)
    assert A_KID not in repr(client)
