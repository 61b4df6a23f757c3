"""The gateway's upstream failures: backoff of the session restarts, their log, 5.03 details, oversize requests."""

import asyncio
import logging

import pytest
from aiocoap.numbers.codes import Code

from gateway_fakes import FakeUpstream, device_psk, gateway_config
from msgin5g.coap.tcp import CoapTcpConnection
from msgin5g.gateway.backoff import Backoff, UpstreamStatus
from msgin5g.gateway.device import DeviceClient
from msgin5g.gateway.messaging_upstream import MessagingUpstream
from msgin5g.gateway.poller import InboxPoller
from msgin5g.gateway.runner import running_gateway
from msgin5g.gateway.service import GatewayService
from msgin5g.gateway.store import GatewayStore
from msgin5g.gateway.upstream import UpstreamRequestTooLarge
from msgin5g.service import messages
from msgin5g.service.messaging_client import MessagingSession
from msgin5g.service.primary_auth import AkmaKeys
from msgin5g.service.ue_profile import UeProfile

POLL_INTERVAL = 0.1


# Backoff


def test_backoff_doubles_to_cap():
    backoff = Backoff()

    delays = [backoff.next_delay() for _ in range(9)]

    assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_backoff_reset_starts_over():
    backoff = Backoff(initial=0.5, maximum=3)
    first = [backoff.next_delay() for _ in range(4)]

    backoff.reset()

    assert first == [0.5, 1, 2, 3]
    assert backoff.next_delay() == 0.5


def test_backoff_rejects_bad_bounds():
    with pytest.raises(ValueError, match="initial <= maximum"):
        Backoff(initial=10, maximum=1)


def test_status_logs_changes_and_every_tenth():
    status = UpstreamStatus()

    logged = [status.record_failure("UE_SERVICE_ID_NOT_ASSOCIATED", 1.0) for _ in range(20)]
    changed = status.record_failure("SERVER_UNREACHABLE", 1.0)

    assert [index + 1 for index, flag in enumerate(logged) if flag] == [1, 10, 20]
    assert changed is True
    assert status.record_success() == 21
    assert status.describe() == "no failed attempt so far"


# Poller


async def run_poller(tmp_path, upstream: FakeUpstream, on_sleep) -> list[float]:
    """Run the poller with a recording sleep; `on_sleep(delays, shutdown)` steers the outage."""
    config = gateway_config(tmp_path, poll_interval_seconds=POLL_INTERVAL)
    store = await GatewayStore(config.database).open()
    delays: list[float] = []
    shutdown = asyncio.Event()

    async def sleep(seconds: float) -> None:
        delays.append(seconds)
        on_sleep(delays, shutdown)

    service = GatewayService(config, upstream, store)
    poller = InboxPoller(config, upstream, store, service, sleep=sleep)
    try:
        async with asyncio.timeout(10):
            await poller.run(shutdown)
    finally:
        await service.close()
        await store.close()
    return delays


async def test_poller_backs_off_then_resets(tmp_path, caplog):
    upstream = FakeUpstream(available=False, start_cause="UE_SERVICE_ID_NOT_ASSOCIATED")

    def on_sleep(delays, shutdown):
        if len(delays) == 12:
            upstream.available = True
        if len(delays) == 14:
            upstream.available = False
        if len(delays) == 16:
            shutdown.set()

    with caplog.at_level(logging.INFO, logger="msgin5g.gateway.poller"):
        delays = await run_poller(tmp_path, upstream, on_sleep)

    assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60, 60, 60, 60, POLL_INTERVAL, POLL_INTERVAL, 1, 2]
    assert upstream.starts == 13  # the second outage fails the fetches of the started session
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 3
    assert "(UE_SERVICE_ID_NOT_ASSOCIATED), 1 failure in a row" in warnings[0]
    assert "10 failures in a row; next attempt in 60 s" in warnings[1]
    assert "inbox fetch failed (SERVER_UNREACHABLE), 1 failure in a row; next attempt in 1 s" in warnings[2]
    assert "upstream session available again after 12 failed attempts" in caplog.text


async def test_poller_fetch_failure_backs_off(tmp_path):
    upstream = FakeUpstream()

    def on_sleep(delays, shutdown):
        if len(delays) == 1:
            upstream.available = False  # started, then the fetches fail
        if len(delays) == 4:
            shutdown.set()

    delays = await run_poller(tmp_path, upstream, on_sleep)

    assert delays == [POLL_INTERVAL, 1, 2, 4]
    assert upstream.starts == 1


# Device-facing 5.03


async def test_unavailable_detail_states_upstream(tmp_path):
    upstream = FakeUpstream(available=False, start_cause="UE_SERVICE_ID_NOT_ASSOCIATED")
    config = gateway_config(tmp_path, bulk_wait_ms=10, poll_interval_seconds=30)

    async with running_gateway(config, upstream) as running:
        async with DeviceClient("127.0.0.1", running.port, "dev-01", device_psk(1)) as client:
            urgent = await client.register("app.meter.01", urgency="URGENT")
            normal = await client.register("app.meter.01")

    for result in (urgent, normal):
        assert result.code == Code.SERVICE_UNAVAILABLE
        assert result.cause == "UPSTREAM_UNAVAILABLE"
        assert result.document["messageType"] == "REG"
        assert "Upstream session: unavailable" in result.detail
        assert "1 failed attempt to start it, the last with UE_SERVICE_ID_NOT_ASSOCIATED" in result.detail
        assert "the next attempt is in about" in result.detail


# Oversize requests


class OversizeSession(MessagingSession):
    """The real session over a CoAP-over-TLS connection whose peer announced a small Max-Message-Size.

    Only `_send` is replaced, so the session's own translation of the transport's error runs.
    """

    def __init__(self, peer_max_message_size: int) -> None:
        super().__init__(None, gateway_profile(), None)
        self.keys = AkmaKeys(supi="imsi-001010000000001", a_kid="a-kid", k_akma=bytes(32))
        peer = CoapTcpConnection(peer_max_message_size)
        self.connection = CoapTcpConnection()
        self.connection.receive_data(peer.data_to_send())  # the peer's CSM

    async def _send(self, request: messages.Request):
        self.connection.send_message(messages.build_request(request))
        raise AssertionError("a request over the limit must not be queued")


def gateway_profile() -> UeProfile:
    return UeProfile(
        supi="imsi-001010000000001", k=bytes(16), opc=bytes(16), mcc="001", mnc="01",
        routing_indicator="0", ue_service_id="gateway-001", ausf_uri="http://127.0.0.1:8002",
        server_host="127.0.0.1", server_port=5684, server_fqdn="msgin5g.mnc001.mcc001.example.test",
    )


def upstream_with(session) -> MessagingUpstream:
    upstream = MessagingUpstream(gateway_profile())
    # The session is set here because the subject is the translation of the transport's error.
    upstream._session = session
    upstream._registered = True
    return upstream


async def test_oversize_request_names_limit():
    upstream = upstream_with(OversizeSession(peer_max_message_size=8192))
    message = {
        "messageType": "MSG", "oriAddr": "meter-01", "destAddr": "ue-b", "msgId": "m1", "payload": "x" * 8192,
    }

    with pytest.raises(UpstreamRequestTooLarge) as raised:
        await upstream.send(message)

    assert raised.value.cause == "MESSAGE_TOO_LARGE"
    assert raised.value.limit == 8192
    assert "at most 8192 octets" in raised.value.detail
    assert "x" * 100 not in raised.value.detail


async def test_other_value_error_not_translated():
    class BrokenSession:
        async def request(self, request):
            raise ValueError("token has 9 octets")

    upstream = upstream_with(BrokenSession())

    with pytest.raises(ValueError, match="token has 9 octets") as raised:
        await upstream.deregister("meter-01")

    assert not isinstance(raised.value, UpstreamRequestTooLarge)
