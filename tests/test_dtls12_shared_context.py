"""Two DTLS 1.2 PSK server sessions on one shared OpenSSL context, handshakes interleaved.

The shared context's callbacks find each session's engine through the
Connection's app data. These tests check that each session gets only the
K_AF of its own A-KID, also when the other session's handshake runs in between.
"""

from msgin5g.ua import dtls12_psk as dtls

A_KIDS = {
    "first": "rid0.atidfirst@5gc.mnc001.mcc001.3gppnetwork.org",
    "second": "rid0.atidsecond@5gc.mnc001.mcc001.3gppnetwork.org",
}
K_AFS = {"first": bytes(range(32)), "second": bytes(range(32, 64))}


class Session:
    """A client engine and its server engine on the shared context, with the datagrams between them."""

    def __init__(self, name: str, port: int, context, cookies: dtls.CookieJar, lookups: list) -> None:
        identity = dtls.akma_psk_identity(A_KIDS[name])
        self.peer = f"127.0.0.1|{port}"
        self.cookies = cookies
        self.client = dtls.Dtls12PskClient(identity, lambda suite: K_AFS[name])
        self.server = dtls.Dtls12PskServer(
            self.peer, cookies, self._lookup, context=context
        )
        self.lookups = lookups
        self.server_events: list[dtls.Event] = []
        self.client_events: list[dtls.Event] = []
        self._to_server: list[bytes] = []

    def _lookup(self, a_kid: str, suite: int) -> bytes | None:
        self.lookups.append((self.peer, a_kid))
        name = next((key for key, value in A_KIDS.items() if value == a_kid), None)
        return K_AFS[name] if name is not None else None

    def start(self) -> None:
        """Run the cookie exchange, as the listener does, and queue the ClientHello with the cookie."""
        self.client_events += self.client.start()
        hello = dtls.inspect_client_hello(self.client.datagrams_to_send()[0])
        self.client_events += self.client.receive_datagram(self.cookies.hello_verify_request(self.peer, hello))
        self._to_server += self.client.datagrams_to_send()

    def exchange(self) -> None:
        """Deliver the queued datagrams both ways once, without resuming a held flight."""
        datagrams, self._to_server = self._to_server, []
        for datagram in datagrams:
            self.server_events += self.server.receive_datagram(datagram)
        for datagram in self.server.datagrams_to_send():
            self.client_events += self.client.receive_datagram(datagram)
        self._to_server += self.client.datagrams_to_send()

    def resume(self) -> None:
        self.server_events += self.server.resume()
        for datagram in self.server.datagrams_to_send():
            self.client_events += self.client.receive_datagram(datagram)

    def kaf_needed(self) -> bool:
        return any(isinstance(event, dtls.KafNeeded) for event in self.server_events)


def open_sessions() -> tuple[Session, Session, list]:
    context = dtls.server_context()
    cookies = dtls.CookieJar()
    lookups: list = []
    first = Session("first", 40001, context, cookies, lookups)
    second = Session("second", 40002, context, cookies, lookups)
    return first, second, lookups


def test_interleaved_handshakes_share_context():
    first, second, lookups = open_sessions()

    first.start()
    second.start()
    for _ in range(4):
        first.exchange()
        second.exchange()
    both_wait = first.kaf_needed() and second.kaf_needed()
    second.resume()
    first.resume()

    assert both_wait
    assert first.server.state is dtls.State.ESTABLISHED
    assert second.server.state is dtls.State.ESTABLISHED
    assert first.client.state is dtls.State.ESTABLISHED
    assert second.client.state is dtls.State.ESTABLISHED
    assert sorted(lookups) == [
        ("127.0.0.1|40001", A_KIDS["first"]),
        ("127.0.0.1|40002", A_KIDS["second"]),
    ]


def test_shared_callback_rejects_other_identity():
    first, second, _ = open_sessions()
    first.start()
    second.start()
    for _ in range(4):
        first.exchange()
        second.exchange()
    connection = first.server._connection
    own = dtls.akma_psk_identity(A_KIDS["first"])
    other = dtls.akma_psk_identity(A_KIDS["second"])

    assert dtls._psk_for_connection(connection, own) == K_AFS["first"]
    assert dtls._psk_for_connection(connection, other) is None


def test_sessions_keep_own_cookie():
    first, second, _ = open_sessions()
    first.start()
    second.start()
    first.exchange()
    second.exchange()
    first_hello = first.server._hello
    second_hello = second.server._hello

    assert first_hello is not None
    assert second_hello is not None
    assert first.server.verify_cookie(first_hello.cookie)
    assert not first.server.verify_cookie(second_hello.cookie)
    assert second.server.generate_cookie() == second_hello.cookie
