"""The gateway's local link over real DTLS 1.2 PSK sockets, with a recording fake upstream.

The subject here is the gateway's local side (handshake per device PSK,
authorization, batching, relay, queues); test_gateway_e2e.py uses the real
MSGin5G Server upstream.
"""

import asyncio
import json

import jsonschema
import pytest
from aiocoap import Message
from aiocoap.numbers.codes import Code

from gateway_fakes import FakeUpstream, device_psk, gateway_config
from msgin5g.gateway.device import DeviceClient, DeviceError
from msgin5g.gateway.runner import running_gateway
from msgin5g.gateway.service import local_schema
from msgin5g.gateway.upstream import InboxItem

LOOPBACK = "127.0.0.1"


@pytest.fixture
async def gateway(tmp_path):
    upstream = FakeUpstream(rejected={"meter-03"})
    config = gateway_config(tmp_path, devices=5, bulk_wait_ms=150, poll_interval_seconds=30)
    async with running_gateway(config, upstream) as running:
        for _ in range(200):  # the poller's first round runs at start; let it finish
            if running.poller.rounds_completed:
                break
            await asyncio.sleep(0.01)
        yield running, upstream


def relayed(upstream: FakeUpstream) -> list:
    """Return the upstream calls other than the poller's inbox fetches."""
    return [call for call in upstream.calls if call[0] != "fetch"]


def device(running, number: int, psk: bytes | None = None, max_retransmissions: int = 2) -> DeviceClient:
    return DeviceClient(
        LOOPBACK, running.port, f"dev-{number:02d}", psk or device_psk(number),
        handshake_timeout=3.0, max_retransmissions=max_retransmissions,
    )


async def registered(running, number: int) -> DeviceClient:
    client = device(running, number)
    await client.connect()
    result = await client.register(f"app.meter.{number:02d}", urgency="URGENT")
    assert result.accepted, result.document
    return client


# Handshake


async def test_device_psk_handshake(gateway):
    running, _ = gateway

    async with device(running, 1) as client:
        result = await client.fetch()

    assert result.code == Code.CHANGED
    assert result.items == []


async def test_wrong_psk_fails(gateway):
    running, upstream = gateway

    with pytest.raises(DeviceError) as raised:
        # One timer expiry without an answer is enough on loopback, and keeps the test short.
        await device(running, 1, psk=device_psk(2), max_retransmissions=0).connect()

    assert raised.value.cause == "GATEWAY_UNREACHABLE"
    assert "PSK" in raised.value.detail
    assert relayed(upstream) == []


async def test_unknown_identity_fails(gateway):
    running, upstream = gateway
    stranger = DeviceClient(LOOPBACK, running.port, "dev-99", device_psk(9), handshake_timeout=3.0)

    with pytest.raises(DeviceError) as raised:
        await stranger.connect()

    assert raised.value.cause == "DEVICE_UNKNOWN"
    assert "dev-99" in raised.value.detail
    assert relayed(upstream) == []


async def test_session_carries_device_identity(gateway):
    running, upstream = gateway

    client = await registered(running, 2)
    await client.send("meter-01", "hello")
    client.close()

    assert upstream.calls_of("send")[0]["oriAddr"] == "meter-02"


# Authorization


async def test_application_id_mismatch_rejected(gateway):
    running, upstream = gateway

    async with device(running, 1) as client:
        result = await client.register("app.meter.02", urgency="URGENT")
        bulk = await client.register("app.other")

    assert result.code == Code.FORBIDDEN
    assert result.cause == "DEVICE_NOT_AUTHORIZED"
    assert bulk.cause == "DEVICE_NOT_AUTHORIZED"
    assert relayed(upstream) == []


async def test_deregistration_checks_application_id(gateway):
    running, upstream = gateway

    async with device(running, 1) as client:
        result = await client.deregister("app.meter.99")

    assert result.cause == "DEVICE_NOT_AUTHORIZED"
    assert upstream.calls_of("deregister") == []


async def test_message_before_registration_rejected(gateway):
    running, upstream = gateway

    async with device(running, 1) as client:
        result = await client.send("meter-02", "too early")

    assert result.cause == "DEVICE_NOT_REGISTERED"
    assert upstream.calls_of("send") == []


# Registration


async def test_urgent_goes_alone(gateway):
    running, upstream = gateway

    async with device(running, 1) as client:
        result = await client.register("app.meter.01", urgency="URGENT")

    assert result.code == Code.CREATED
    assert result.document["ueServiceId"] == "meter-01"
    assert upstream.calls_of("register") == ["meter-01"]
    assert upstream.calls_of("register_bulk") == []


async def test_normal_requests_batched(gateway):
    running, upstream = gateway
    clients = [device(running, number) for number in (1, 2, 4, 5)]
    for client in clients:
        await client.connect()

    normal = [client.register(f"app.meter.{number:02d}") for client, number in zip(clients[:3], (1, 2, 4))]
    urgent = clients[3].register("app.meter.05", urgency="URGENT")
    results = await asyncio.gather(*normal, urgent)
    for client in clients:
        client.close()

    assert all(result.accepted for result in results)
    bulks = upstream.calls_of("register_bulk")
    assert len(bulks) == 1
    assert sorted(entry.ue_service_id for entry in bulks[0]) == ["meter-01", "meter-02", "meter-04"]
    assert upstream.calls_of("register") == ["meter-05"]


async def test_bulk_gives_per_device_result(gateway):
    running, upstream = gateway
    clients = [device(running, number) for number in (1, 3)]
    for client in clients:
        await client.connect()

    accepted, rejected = await asyncio.gather(
        clients[0].register("app.meter.01"), clients[1].register("app.meter.03")
    )
    for client in clients:
        client.close()

    assert accepted.code == Code.CREATED
    assert rejected.code == Code.FORBIDDEN
    assert rejected.cause == "UE_SERVICE_ID_NOT_ASSOCIATED"
    assert len(upstream.calls_of("register_bulk")) == 1


async def test_expired_registration_not_relayed(gateway):
    running, upstream = gateway

    async with device(running, 1) as client:
        result = await client.register("app.meter.01", urgency="URGENT", expiration="2001-01-01T00:00:00Z")

    assert result.cause == "REQUEST_EXPIRED"
    assert relayed(upstream) == []


# Messages


async def test_ori_addr_forced(gateway):
    running, upstream = gateway
    client = await registered(running, 1)

    result = await client.send("meter-02", "21.5 C", msg_id="m-1", delivery_report=True)
    client.close()

    assert result.code == Code.CREATED
    assert result.document["status"] == "DELY_QUEUED"
    sent = upstream.calls_of("send")[0]
    assert sent["oriAddr"] == "meter-01"
    assert sent["msgId"] == "m-1"
    assert sent["appId"] == "app.meter.01"
    assert sent["delivStReqInd"] is True


async def test_foreign_ori_addr_rejected(gateway):
    running, upstream = gateway
    client = await registered(running, 1)

    result = await client.send("meter-02", "spoofed", ori_addr="meter-02")
    own = await client.send("meter-02", "own", ori_addr="meter-01")
    client.close()

    assert result.code == Code.FORBIDDEN
    assert result.cause == "ORIGINATOR_MISMATCH"
    assert own.accepted
    assert [message["payload"] for message in upstream.calls_of("send")] == ["own"]


async def test_msg_id_generated(gateway):
    running, upstream = gateway
    client = await registered(running, 1)

    await client.send("meter-02", "a")
    await client.send("meter-02", "b")
    client.close()

    ids = [message["msgId"] for message in upstream.calls_of("send")]
    assert len(set(ids)) == 2


# Queue and delivery


def inbox_item(delivery_id: str, recipient: str, msg_id: str, report: bool = False) -> InboxItem:
    message = {
        "messageType": "MSG", "oriAddr": "ue-a", "destAddr": recipient, "msgId": msg_id,
        "payload": f"to {recipient}", "delivStReqInd": report,
    }
    return InboxItem(delivery_id, recipient, message)


async def test_items_queued_per_device(gateway):
    running, upstream = gateway
    upstream.inbox = [inbox_item("d1", "meter-01", "x1"), inbox_item("d2", "meter-02", "x2")]

    added = await running.poller.poll_once()
    async with device(running, 1) as client:
        result = await client.fetch()

    assert added == 2
    assert [item["deliveryId"] for item in result.items] == ["d1"]
    assert result.items[0]["message"]["payload"] == "to meter-01"
    assert await running.store.queued_count("dev-02") == 1


async def test_upstream_acked_after_store(gateway):
    running, upstream = gateway
    upstream.inbox = [inbox_item("d1", "meter-01", "x1")]

    await running.poller.poll_once()
    acked_after_first = list(upstream.acked)
    await running.poller.poll_once()

    assert acked_after_first == []
    assert upstream.acked == ["d1"]
    assert await running.store.queued_count("dev-01") == 1


async def test_redelivered_item_not_duplicated(gateway):
    running, upstream = gateway
    item = inbox_item("d1", "meter-01", "x1")
    upstream.inbox = [item]
    await running.poller.poll_once()

    async with device(running, 1) as client:
        first = await client.fetch()
        await client.fetch(ack=["d1"])
        upstream.inbox = [item]  # the server lost the ack and delivers again
        await running.poller.poll_once()
        again = await client.fetch()

    assert len(first.items) == 1
    assert again.items == []


async def test_device_ack_sends_imdn(gateway):
    running, upstream = gateway
    upstream.inbox = [
        inbox_item("d1", "meter-01", "x1", report=True),
        inbox_item("d2", "meter-01", "x2", report=False),
    ]
    await running.poller.poll_once()

    async with device(running, 1) as client:
        fetched = await client.fetch()
        acked = await client.fetch(ack=[item["deliveryId"] for item in fetched.items])

    assert acked.items == []
    assert "2 acknowledged" in acked.detail
    reports = upstream.calls_of("report")
    assert reports == [{
        "messageType": "IMDN", "oriAddr": "meter-01", "destAddr": "ue-a",
        "msgId": "x1", "delivSt": "REPT_DELY_SUCCESS",
    }]


async def test_ack_of_other_device_ignored(gateway):
    running, upstream = gateway
    upstream.inbox = [inbox_item("d2", "meter-02", "x2", report=True)]
    await running.poller.poll_once()

    async with device(running, 1) as client:
        result = await client.fetch(ack=["d2"])

    assert "0 acknowledged" in result.detail
    assert await running.store.queued_count("dev-02") == 1
    assert upstream.calls_of("report") == []


async def test_fetch_pages_with_more(gateway):
    running, upstream = gateway
    upstream.inbox = [inbox_item(f"d{index}", "meter-01", f"x{index}") for index in range(5)]
    await running.poller.poll_once()

    async with device(running, 1) as client:
        first = await client.fetch(max_items=3)
        second = await client.fetch(ack=[item["deliveryId"] for item in first.items], max_items=3)

    assert [item["deliveryId"] for item in first.items] == ["d0", "d1", "d2"]
    assert first.document["more"] is True
    assert [item["deliveryId"] for item in second.items] == ["d3", "d4"]
    assert second.document["more"] is False


# Upstream failures and CoAP errors


async def test_upstream_down_gives_503(gateway):
    running, upstream = gateway
    upstream.available = False

    async with device(running, 1) as client:
        result = await client.register("app.meter.01", urgency="URGENT")

    assert result.code == Code.SERVICE_UNAVAILABLE
    assert result.cause == "UPSTREAM_UNAVAILABLE"


async def test_malformed_body_names_member(gateway):
    running, upstream = gateway

    async with device(running, 1) as client:
        result = await client.post("registrations", {"applicationId": "app.meter.01", "urgency": "SOON"})

    assert result.code == Code.BAD_REQUEST
    assert result.cause == "MALFORMED_MESSAGE"
    assert "/urgency" in result.detail
    assert relayed(upstream) == []


async def test_unknown_resource_gives_404(gateway):
    running, _ = gateway

    async with device(running, 1) as client:
        result = await client.post("subscriptions", {})

    assert result.code == Code.NOT_FOUND
    assert "/msgin5g-gw/v1/registrations" in result.detail


async def test_service_rejects_get(gateway):
    running, _ = gateway
    request = Message(code=Code.GET, uri_path=("msgin5g-gw", "v1", "inbox"))

    response = await running.service.handle(request, "dev-01")

    assert response.code == Code.METHOD_NOT_ALLOWED


async def test_service_rejects_unknown_device(gateway):
    running, _ = gateway
    request = Message(code=Code.POST, uri_path=("msgin5g-gw", "v1", "inbox"), payload=b"{}")
    request.opt.content_format = 50

    response = await running.service.handle(request, "dev-77")

    assert response.code == Code.UNAUTHORIZED
    assert json.loads(response.payload)["cause"] == "DEVICE_UNKNOWN"


async def test_oversize_message_gives_413(gateway):
    running, upstream = gateway
    upstream.max_message_octets = 8192
    client = await registered(running, 1)

    too_large = await client.send("ue-b", "x" * 8192)
    small = await client.send("ue-b", "hello")
    client.close()

    assert too_large.code == Code.REQUEST_ENTITY_TOO_LARGE
    assert too_large.cause == "MESSAGE_TOO_LARGE"
    assert "8192" in too_large.detail
    assert too_large.document["messageType"] == "MSGRESP"
    assert small.accepted, small.document
    assert [message["payload"] for message in upstream.calls_of("send")] == ["hello"]


async def test_long_payload_not_echoed(gateway):
    running, upstream = gateway
    client = await registered(running, 1)

    result = await client.post("messages", {"destAddr": "ue-b", "payload": "y" * 8193})
    client.close()

    assert result.code == Code.BAD_REQUEST
    assert result.cause == "MALFORMED_MESSAGE"
    assert "/payload: longer than 8192 characters" in result.detail
    assert "y" * 50 not in result.detail
    assert "gateway/schemas" not in result.detail
    assert upstream.calls_of("send") == []


async def test_responses_carry_message_type(gateway):
    running, _ = gateway
    validator = jsonschema.Draft202012Validator(local_schema("response.json"))

    async with device(running, 1) as client:
        results = {
            "REG": await client.register("app.meter.01", urgency="URGENT"),
            "MSGRESP": await client.send("ue-b", "hello"),
            "INBOX": await client.fetch(),
            "DEREG": await client.deregister("app.meter.01"),
        }
        refused = await client.register("app.other")

    for message_type, result in results.items():
        assert result.accepted, result.document
        assert result.document["messageType"] == message_type
        validator.validate(result.document)
    assert refused.document["messageType"] == "REG"
    validator.validate(refused.document)


async def test_inbox_detail_counts_items(gateway):
    running, upstream = gateway
    upstream.inbox = [InboxItem("d1", "meter-01", {"messageType": "MSG", "oriAddr": "ue-a", "msgId": "1"})]
    await running.poller.poll_once()

    async with device(running, 1) as client:
        result = await client.fetch()

    assert result.detail == "1 item, 0 acknowledged"
