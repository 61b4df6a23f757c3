"""The sans-IO TLS 1.3 PSK server engine against a real OpenSSL client over memory BIOs."""

import ssl

import pytest

from af_helpers import AF_FQDN, as_records, build_client_hello, certificate_server_context
from msgin5g.service.config import Limits
from msgin5g.service.server import Tls13Options, tls13_engines
from msgin5g.ua import tls13_psk
from msgin5g.ua.alerts import AlertDescription, alert_from_ssl_error, fatal_alert_record
from msgin5g.ua.tls13_psk import (
    AKMA_IDENTITY_PREFIX,
    ConnectionClosed,
    ConnectionFailed,
    DataReceived,
    EngineStateError,
    HandshakeComplete,
    KafNeeded,
    PskIdentityError,
    State,
    Tls13PskServer,
    a_kid_from_identity,
    akma_psk_identity,
    client_context,
)

K_AF = bytes(range(32))
A_KID = "rid0.atidAAAA@5gc.mnc001.mcc001.3gppnetwork.org"


class KafTable:
    """A stand-in for the AF's K_AF cache that counts lookups."""

    def __init__(self) -> None:
        self.keys: dict[str, bytes] = {}
        self.lookups = 0

    def lookup(self, a_kid: str) -> bytes | None:
        self.lookups += 1
        return self.keys.get(a_kid)


class MemoryClient:
    """A real OpenSSL TLS client on memory BIOs."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.ssl_object = context.wrap_bio(self.incoming, self.outgoing, server_hostname=AF_FQDN)

    def step(self) -> bytes:
        """Advance the handshake; return the octets to send (raises on a fatal error)."""
        try:
            self.ssl_object.do_handshake()
        except ssl.SSLWantReadError:
            pass
        return self.outgoing.read()

    def feed(self, data: bytes) -> None:
        self.incoming.write(data)


def akma_client(a_kid: str = A_KID, k_af: bytes = K_AF) -> MemoryClient:
    return MemoryClient(client_context(akma_psk_identity(a_kid), k_af))


def run_handshake(engine: Tls13PskServer, client: MemoryClient, table: KafTable, k_af: bytes = K_AF):
    """Drive both sides; return every engine event in order."""
    events = engine.receive_data(client.step())
    needed = [event for event in events if isinstance(event, KafNeeded)]
    if not needed:
        return events

    table.keys[needed[0].a_kid] = k_af
    events += engine.resume()
    client.feed(engine.data_to_send())
    if engine.state is State.FAILED:
        return events
    events += engine.receive_data(client.step())
    client.feed(engine.data_to_send())
    return events


def test_handshake_completes_with_k_af():
    table = KafTable()
    engine = Tls13PskServer(table.lookup)
    client = akma_client()

    events = run_handshake(engine, client, table)

    assert events[0] == KafNeeded(a_kid=A_KID, server_name=AF_FQDN)
    complete = [event for event in events if isinstance(event, HandshakeComplete)]
    assert complete and complete[0].a_kid == A_KID
    assert complete[0].cipher_suite in {"TLS_AES_128_GCM_SHA256", "TLS_CHACHA20_POLY1305_SHA256"}
    assert engine.state is State.ESTABLISHED
    assert client.ssl_object.version() == "TLSv1.3"


def test_psk_lookup_only_after_resume():
    table = KafTable()
    engine = Tls13PskServer(table.lookup)
    client = akma_client()

    events = engine.receive_data(client.step())

    assert isinstance(events[0], KafNeeded)
    assert table.lookups == 0
    assert engine.data_to_send() == b""


def test_application_data_both_ways():
    table = KafTable()
    engine = Tls13PskServer(table.lookup)
    client = akma_client()
    run_handshake(engine, client, table)

    client.ssl_object.write(b"ping from UE")
    events = engine.receive_data(client.outgoing.read())
    engine.send(b"pong from AF")
    client.feed(engine.data_to_send())

    assert DataReceived(b"ping from UE") in events
    assert client.ssl_object.read(100) == b"pong from AF"


def test_no_tickets_issued():
    table = KafTable()
    engine = Tls13PskServer(table.lookup)
    client = akma_client()
    run_handshake(engine, client, table)

    engine.send(b"x")
    client.feed(engine.data_to_send())

    # A NewSessionTicket would arrive before the data, so the session would hold it.
    assert client.ssl_object.read(10) == b"x"
    assert not client.ssl_object.session.has_ticket


def test_wrong_k_af_fails_binder_check():
    table = KafTable()
    engine = Tls13PskServer(table.lookup)
    client = akma_client(k_af=bytes(32))

    events = run_handshake(engine, client, table, k_af=K_AF)

    failure = events[-1]
    assert isinstance(failure, ConnectionFailed)
    assert "PSK binder did not verify" in failure.reason
    assert failure.binder_mismatch
    # OpenSSL 3.0 sends illegal_parameter when the binder does not verify.
    assert failure.alert in {AlertDescription.illegal_parameter, AlertDescription.decrypt_error}


def test_wrong_k_af_alert_reaches_client():
    table = KafTable()
    engine = Tls13PskServer(table.lookup)
    client = akma_client(k_af=bytes(32))
    engine.receive_data(client.step())
    table.keys[A_KID] = K_AF
    engine.resume()
    client.feed(engine.data_to_send())

    with pytest.raises(ssl.SSLError) as error:
        client.step()

    assert alert_from_ssl_error(error.value) in {
        AlertDescription.illegal_parameter,
        AlertDescription.decrypt_error,
    }


def test_k_af_gone_at_resume_fails():
    table = KafTable()
    engine = Tls13PskServer(table.lookup)
    client = akma_client()
    engine.receive_data(client.step())

    events = engine.resume()

    assert isinstance(events[-1], ConnectionFailed)
    assert "no usable K_AF" in events[-1].reason
    assert engine.state is State.FAILED


def test_reject_sends_plaintext_alert():
    table = KafTable()
    engine = Tls13PskServer(table.lookup)
    client = akma_client()
    engine.receive_data(client.step())

    events = engine.reject(AlertDescription.unknown_psk_identity, "unknown A-KID")
    client.feed(engine.data_to_send())

    assert events == [ConnectionFailed("unknown A-KID", AlertDescription.unknown_psk_identity)]
    with pytest.raises(ssl.SSLError) as error:
        client.step()
    assert alert_from_ssl_error(error.value) is AlertDescription.unknown_psk_identity


def test_client_without_psk_refused():
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    engine = Tls13PskServer(KafTable().lookup)

    events = engine.receive_data(MemoryClient(context).step())

    assert events == [ConnectionFailed("client offers no PSK", AlertDescription.handshake_failure)]
    assert engine.data_to_send() == fatal_alert_record(AlertDescription.handshake_failure)


@pytest.mark.parametrize(
    ("hello", "alert", "reason"),
    [
        (
            {"cipher_suites": (0x1302,)},
            AlertDescription.handshake_failure,
            "no SHA-256 TLS 1.3 cipher suite",
        ),
        ({"versions": (0x0303,)}, AlertDescription.protocol_version, "does not offer TLS 1.3"),
        ({"psk_modes": (0,)}, AlertDescription.handshake_failure, "psk_dhe_ke"),
        ({"psk_modes": None}, AlertDescription.missing_extension, "psk_key_exchange_modes"),
        ({"identities": (b"",)}, AlertDescription.unknown_psk_identity, "empty PSK identity"),
        (
            {"identities": (b"AKMA-3GPP" + A_KID.encode(),)},
            AlertDescription.unknown_psk_identity,
            "lacks the 3GPP-AKMA prefix",
        ),
        (
            {"identities": (AKMA_IDENTITY_PREFIX,)},
            AlertDescription.unknown_psk_identity,
            "no A-KID after the 3GPP-AKMA prefix",
        ),
        (
            {"identities": (AKMA_IDENTITY_PREFIX + b"a" * 248,)},
            AlertDescription.unknown_psk_identity,
            "257 octets exceeds OpenSSL's limit of 256",
        ),
        (
            {"identities": (AKMA_IDENTITY_PREFIX + b"rid\x00kid",)},
            AlertDescription.unknown_psk_identity,
            "not printable ASCII",
        ),
    ],
)
def test_unusable_client_hello_refused(hello, alert, reason):
    engine = Tls13PskServer(KafTable().lookup)

    events = engine.receive_data(as_records(build_client_hello(**hello)))

    assert len(events) == 1
    assert isinstance(events[0], ConnectionFailed)
    assert events[0].alert is alert
    assert reason in events[0].reason
    assert engine.data_to_send() == fatal_alert_record(alert)


def test_openssl_drops_psk_with_sha384_suite():
    """The trap the SHA-256 check avoids: plain OpenSSL fails with an unrelated error."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    identities = []
    context.set_psk_server_callback(lambda identity: identities.append(identity) or K_AF)
    incoming = ssl.MemoryBIO()
    server = context.wrap_bio(incoming, ssl.MemoryBIO(), server_side=True)
    hello = build_client_hello(cipher_suites=(0x1302,), identities=(b"3GPP-AKMAx",))
    incoming.write(as_records(hello))

    with pytest.raises(ssl.SSLError, match="NO_SUITABLE_SIGNATURE_ALGORITHM"):
        server.do_handshake()
    assert identities == ["3GPP-AKMAx"]


def test_sha384_only_refused_before_openssl():
    table = KafTable()
    engine = Tls13PskServer(table.lookup)
    hello = build_client_hello(cipher_suites=(0x1302,), identities=(b"3GPP-AKMA" + A_KID.encode(),))

    events = engine.receive_data(as_records(hello))

    assert "no SHA-256 TLS 1.3 cipher suite" in events[0].reason
    assert table.lookups == 0


def test_malformed_client_hello_refused():
    engine = Tls13PskServer(KafTable().lookup)

    events = engine.receive_data(b"\x16\x03\x01\x00\x00")

    assert isinstance(events[0], ConnectionFailed)
    assert events[0].reason.startswith("malformed ClientHello")
    assert engine.data_to_send() == fatal_alert_record(AlertDescription.decode_error)


def test_akma_identity_chosen_among_several():
    hello = build_client_hello(identities=(b"ticket-1", AKMA_IDENTITY_PREFIX + A_KID.encode()))
    engine = Tls13PskServer(KafTable().lookup)

    events = engine.receive_data(as_records(hello))

    assert events == [KafNeeded(a_kid=A_KID, server_name=AF_FQDN)]


@pytest.mark.parametrize("a_kid_octets", [129, 200, 246])
def test_long_a_kid_handshake_works(a_kid_octets):
    a_kid = "r" * (a_kid_octets - len("@x")) + "@x"
    table = KafTable()
    engine = Tls13PskServer(table.lookup)

    events = run_handshake(engine, akma_client(a_kid=a_kid), table)

    assert events[0] == KafNeeded(a_kid=a_kid, server_name=AF_FQDN)
    assert engine.state is State.ESTABLISHED


def test_identity_too_long_rejected():
    with pytest.raises(PskIdentityError, match="at most 246"):
        akma_psk_identity("r" * 247)


@pytest.mark.parametrize("a_kid", ["", "ä@x", "a b\n"])
def test_client_identity_rejects_bad_a_kid(a_kid):
    with pytest.raises(PskIdentityError):
        akma_psk_identity(a_kid)


def test_identity_round_trip():
    assert a_kid_from_identity(akma_psk_identity(A_KID)) == A_KID


def test_awaiting_k_af_buffer_capped():
    engine = Tls13PskServer(KafTable().lookup)
    engine.receive_data(akma_client().step())

    assert engine.receive_data(b"\x14\x03\x03\x00\x01\x01") == []
    events = engine.receive_data(bytes(70000))

    assert isinstance(events[0], ConnectionFailed)
    assert "more than 65536 octets" in events[0].reason


def test_calls_out_of_order_raise():
    engine = Tls13PskServer(KafTable().lookup)

    with pytest.raises(EngineStateError, match="resume"):
        engine.resume()
    with pytest.raises(EngineStateError, match="send"):
        engine.send(b"x")


def test_data_after_failure_ignored():
    engine = Tls13PskServer(KafTable().lookup)
    engine.receive_data(b"\x17\x03\x03\x00\x01\x00")

    assert engine.receive_data(b"more") == []
    assert engine.state is State.FAILED


def test_close_sends_close_notify():
    table = KafTable()
    engine = Tls13PskServer(table.lookup)
    client = akma_client()
    run_handshake(engine, client, table)

    engine.close()
    client.feed(engine.data_to_send())

    # CPython's SSLObject.read returns b"" once close_notify has arrived.
    assert client.ssl_object.read(10) == b""
    assert engine.state is State.CLOSED


def test_peer_close_notify_reported():
    table = KafTable()
    engine = Tls13PskServer(table.lookup)
    client = akma_client()
    run_handshake(engine, client, table)

    with pytest.raises(ssl.SSLWantReadError):
        client.ssl_object.unwrap()
    events = engine.receive_data(client.outgoing.read())

    assert events == [ConnectionClosed()]


def test_client_refuses_certificate_fallback(tmp_path):
    """A server that ignores the PSK and authenticates with a certificate is refused."""
    client = akma_client()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    server = certificate_server_context(tmp_path).wrap_bio(incoming, outgoing, server_side=True)
    incoming.write(client.step())
    with pytest.raises(ssl.SSLWantReadError):
        server.do_handshake()
    client.feed(outgoing.read())

    with pytest.raises(ssl.SSLCertVerificationError):
        client.step()


def test_client_context_requires_32_octet_k_af():
    with pytest.raises(ValueError, match="k_af must be 32 octets"):
        client_context(akma_psk_identity(A_KID), bytes(16))


# psk_ke (RFC 8446 clause 4.2.9)

PSK_KE_ONLY = as_records(build_client_hello(psk_modes=(0,)))


def test_psk_ke_only_refused_by_default():
    engine = Tls13PskServer(KafTable().lookup)

    failure = engine.receive_data(PSK_KE_ONLY)[0]

    assert failure.alert is AlertDescription.handshake_failure
    assert "client offers only psk_ke" in failure.reason
    assert engine.data_to_send() == fatal_alert_record(AlertDescription.handshake_failure)


def test_allow_psk_ke_reaches_binder_check():
    """With the OpenSSL option set, OpenSSL takes the psk_ke PSK and checks its (zero) binder."""
    engine = Tls13PskServer(lambda a_kid: K_AF, allow_psk_ke=True)

    needed = engine.receive_data(PSK_KE_ONLY)
    failure = engine.resume()[0]

    assert isinstance(needed[0], KafNeeded)
    assert failure.binder_mismatch


def test_psk_ke_ignored_without_openssl_option(monkeypatch):
    """Control for the test above: without SSL_OP_ALLOW_NO_DHE_KEX OpenSSL drops the PSK."""
    monkeypatch.setattr(tls13_psk, "OP_ALLOW_NO_DHE_KEX", 0)
    engine = Tls13PskServer(lambda a_kid: K_AF, allow_psk_ke=True)

    engine.receive_data(PSK_KE_ONLY)
    failure = engine.resume()[0]

    assert not failure.binder_mismatch
    assert "NO_SUITABLE_SIGNATURE_ALGORITHM" in failure.reason


def test_listener_option_allows_psk_ke():
    build = tls13_engines(Tls13Options(allow_psk_ke=True))
    engine = build(lambda a_kid, ua_protocol_id: K_AF, Limits())

    events = engine.receive_data(PSK_KE_ONLY)

    assert isinstance(events[0], KafNeeded)


def test_both_modes_offered_establishes():
    context = client_context(akma_psk_identity(A_KID), K_AF)
    context.options |= tls13_psk.OP_ALLOW_NO_DHE_KEX  # The client then offers psk_ke too.
    table = KafTable()
    engine = Tls13PskServer(table.lookup, allow_psk_ke=True)

    run_handshake(engine, MemoryClient(context), table)

    assert set(engine.client_hello.psk_key_exchange_modes) == {0, 1}
    assert engine.state is State.ESTABLISHED


def test_shared_context_routes_psk_per_engine():
    # Two connections on one listener context, their handshake steps interleaved:
    # each must get only its own K_AF (the second client has a different key).
    shared = tls13_psk.SharedServerContext()
    table = KafTable()
    other_a_kid, other_k_af = A_KID.replace("AAAA", "BBBB"), bytes(range(32, 64))
    table.keys = {A_KID: K_AF, other_a_kid: other_k_af}
    first = Tls13PskServer(table.lookup, shared_context=shared)
    second = Tls13PskServer(table.lookup, shared_context=shared)
    first_client, second_client = akma_client(), akma_client(other_a_kid, other_k_af)

    first.receive_data(first_client.step())
    second.receive_data(second_client.step())
    second.resume()
    first.resume()
    for engine, client in ((second, second_client), (first, first_client)):
        client.feed(engine.data_to_send())
        engine.receive_data(client.step())

    assert first.state is State.ESTABLISHED
    assert second.state is State.ESTABLISHED
    assert first.a_kid == A_KID
    assert second.a_kid == other_a_kid


def test_shared_context_declines_outside_handshake():
    shared = tls13_psk.SharedServerContext()

    assert shared._psk_server_callback(AKMA_IDENTITY_PREFIX.decode() + A_KID) == b""


def test_shared_context_rejects_other_psk_ke_mode():
    with pytest.raises(ValueError, match="allow_psk_ke"):
        Tls13PskServer(KafTable().lookup, allow_psk_ke=True, shared_context=tls13_psk.SharedServerContext())
