"""The DTLS 1.2 PSK engines against each other through an in-memory datagram pipe.

The pipe can drop chosen datagrams. Retransmissions wait for OpenSSL's own timer
(1 s for the first one), because the binding offers no way to shorten it.
"""

import time
from collections.abc import Callable

from msgin5g.ua import dtls12_psk as dtls
from msgin5g.ua.alerts import AlertDescription

K_AF = bytes(range(32))
PEER = "127.0.0.1|40000"
IDENTITY = dtls.AKMA_IDENTITY_PREFIX + b"rid0.atidexample@5gc.mnc001.mcc001.3gppnetwork.org"


class Pipe:
    """A client engine, the listener's stateless cookie step, and a server engine."""

    def __init__(
        self,
        client: dtls.Dtls12PskClient,
        *,
        server_key: bytes | None = K_AF,
        server_mtu: int = dtls.DEFAULT_MTU,
    ) -> None:
        self.client = client
        self.cookies = dtls.CookieJar()
        self.server: dtls.Dtls12PskServer | None = None
        self.server_key = server_key
        self.server_mtu = server_mtu
        self.client_events: list[dtls.Event] = []
        self.server_events: list[dtls.Event] = []
        self.to_server: list[bytes] = []
        self.to_client: list[bytes] = []
        self.hello_verify_requests = 0

    def start(self) -> None:
        self.client_events += self.client.start()
        self.to_server += self.client.datagrams_to_send()

    def deliver_to_server(self, drop: Callable[[bytes], bool] = lambda datagram: False) -> None:
        datagrams, self.to_server = self.to_server, []
        for datagram in datagrams:
            if not drop(datagram):
                self._server_receive(datagram)

    def deliver_to_client(self, drop: Callable[[bytes], bool] = lambda datagram: False) -> None:
        datagrams, self.to_client = self.to_client, []
        for datagram in datagrams:
            if not drop(datagram):
                self.client_events += self.client.receive_datagram(datagram)
        self.to_server += self.client.datagrams_to_send()

    def run(self, rounds: int = 10) -> None:
        for _ in range(rounds):
            if not self.to_server and not self.to_client:
                return
            self.deliver_to_server()
            self.deliver_to_client()

    def wait_and_retransmit(self, engine: dtls._DtlsEngine) -> None:
        """Sleep until the engine's timer expires, then let it retransmit."""
        time.sleep((engine.timeout() or 0) + 0.05)
        engine.handle_timeout()
        if engine is self.client:
            self.to_server += self.client.datagrams_to_send()
        else:
            self.to_client += engine.datagrams_to_send()

    def _server_receive(self, datagram: bytes) -> None:
        if self.server is None:
            hello = dtls.inspect_client_hello(datagram)
            if hello is None:
                return
            if not hello.cookie or not self.cookies.verify(PEER, hello):
                self.hello_verify_requests += 1
                self.to_client.append(self.cookies.hello_verify_request(PEER, hello))
                return
            self.server = dtls.Dtls12PskServer(
                PEER, self.cookies, lambda a_kid, suite: self.server_key, mtu=self.server_mtu
            )
        events = self.server.receive_datagram(datagram)
        for event in events:
            if isinstance(event, dtls.KafNeeded):
                events += self.server.resume()
        self.server_events += events
        self.to_client += self.server.datagrams_to_send()


def client(**options) -> dtls.Dtls12PskClient:
    return dtls.Dtls12PskClient(IDENTITY, lambda suite: K_AF, **options)


def is_hello_verify_request(datagram: bytes) -> bool:
    return any(
        fragment.msg_type == dtls.HANDSHAKE_HELLO_VERIFY_REQUEST
        for _, fragment in dtls.handshake_fragments(datagram)
    )


def has_server_hello(datagram: bytes) -> bool:
    return dtls.server_hello_cipher_suite(datagram) is not None


def test_handshake_completes():
    pipe = Pipe(client())
    pipe.start()
    pipe.run()

    assert pipe.client.state is dtls.State.ESTABLISHED
    assert pipe.server.state is dtls.State.ESTABLISHED


def test_ccm8_preferred():
    pipe = Pipe(client())
    pipe.start()
    pipe.run()

    assert pipe.client.cipher_suite == dtls.TLS_PSK_WITH_AES_128_CCM_8


def test_gcm_suite_named():
    pipe = Pipe(client(cipher_list=b"PSK-AES128-GCM-SHA256"))
    pipe.start()
    pipe.run()

    assert [e.cipher_suite for e in pipe.server_events if isinstance(e, dtls.KafNeeded)] == [
        dtls.TLS_PSK_WITH_AES_128_GCM_SHA256
    ]


def test_identity_read_in_clear():
    pipe = Pipe(client())
    pipe.start()
    pipe.run()

    assert pipe.server.a_kid == IDENTITY[len(dtls.AKMA_IDENTITY_PREFIX) :].decode()


def test_application_data_both_ways():
    pipe = Pipe(client())
    pipe.start()
    pipe.run()
    pipe.client.send(b"ping")
    pipe.to_server += pipe.client.datagrams_to_send()
    pipe.deliver_to_server()

    assert dtls.DataReceived(b"ping") in pipe.server_events


def test_client_hello_fragmented():
    # Many offered suites make the ClientHello larger than the 256-octet MTU.
    pipe = Pipe(client(mtu=256, cipher_list=b"PSK-AES128-CCM8:ALL:@SECLEVEL=0"), server_mtu=256)
    pipe.start()
    first_flight = len(pipe.to_server)
    pipe.run(rounds=20)

    assert first_flight > 1
    assert pipe.server.state is dtls.State.ESTABLISHED


def test_datagrams_within_mtu():
    pipe = Pipe(client(mtu=256, cipher_list=b"PSK-AES128-CCM8:ALL:@SECLEVEL=0"), server_mtu=256)
    pipe.start()
    sizes = [len(datagram) for datagram in pipe.to_server]

    assert max(sizes) <= 256


def test_hello_verify_request_lost():
    pipe = Pipe(client())
    pipe.start()
    pipe.deliver_to_server()
    pipe.deliver_to_client(drop=is_hello_verify_request)
    pipe.wait_and_retransmit(pipe.client)
    pipe.run()

    assert (pipe.hello_verify_requests, pipe.client.state) == (2, dtls.State.ESTABLISHED)


def test_server_flight_lost():
    pipe = Pipe(client())
    pipe.start()
    pipe.deliver_to_server()
    pipe.deliver_to_client()
    pipe.deliver_to_server()  # ClientHello with cookie: the server sends its flight
    pipe.deliver_to_client(drop=has_server_hello)
    pipe.wait_and_retransmit(pipe.server)
    pipe.wait_and_retransmit(pipe.client)
    pipe.run()

    assert pipe.server.retransmissions + pipe.client.retransmissions == 2
    assert pipe.client.state is dtls.State.ESTABLISHED


def test_no_server_before_cookie():
    pipe = Pipe(client())
    pipe.start()
    pipe.deliver_to_server()

    assert pipe.server is None


def test_wrong_key_no_alert():
    pipe = Pipe(client(), server_key=bytes(32))
    pipe.start()
    pipe.run()

    assert pipe.server.state is dtls.State.HANDSHAKING
    assert pipe.client.state is dtls.State.HANDSHAKING


def test_unknown_identity_alert():
    pipe = Pipe(client(), server_key=None)
    pipe.start()
    pipe.run()

    failures = [e for e in pipe.client_events if isinstance(e, dtls.ConnectionFailed)]
    assert [f.alert for f in failures] == [AlertDescription.unknown_psk_identity]


def test_empty_identity_reason():
    pipe = Pipe(dtls.Dtls12PskClient(b"", lambda suite: K_AF))
    pipe.start()
    pipe.run()

    assert pipe.server.failure.reason == "empty PSK identity"


def test_cookie_bound_to_peer():
    pipe = Pipe(client())
    pipe.start()
    pipe.deliver_to_server()
    pipe.deliver_to_client()
    hello = dtls.inspect_client_hello(pipe.to_server[0])

    assert not pipe.cookies.verify("127.0.0.1|40001", hello)


def test_parse_records_truncated():
    try:
        dtls.parse_records(b"\x16\xfe\xfd\x00")
    except dtls.DtlsParseError as error:
        message = str(error)
    assert message == "truncated record header at octet 0"


def test_pack_datagrams_keeps_records_whole():
    record = dtls.handshake_record(dtls.Record(22, 0xFEFD, 0, 1, b""), 1, 0, b"x" * 100)

    assert dtls.pack_datagrams(record * 3, 256) == [record * 2, record]
