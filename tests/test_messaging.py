"""MSG, MSGRESP, IMDN and INBOX between UEs through real listeners on loopback."""

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from aiocoap import Message
from aiocoap.numbers.codes import Code

from af_helpers import AF_FQDN, AanfStub, CmStub, make_k_akma, serving, supi_for
from messaging_helpers import ALL_PROFILES, messaging_listener, ue_session
from msgin5g.service import messages
from msgin5g.service.channel import exchange_over_tls13
from msgin5g.service.client import DEREGISTERED, REGISTERED
from msgin5g.service.config import MessagingConfig
from msgin5g.service.messages import Cause, DeliveryStatus, MessageType, Operation, ReportStatus
from msgin5g.service.messaging_client import MessagingError
from msgin5g.service.profiles import run

POLL_LIMIT_SECONDS = 10.0


@pytest.fixture
async def stubs():
    """The AAnF and CM stand-ins: UE 1 owns ue-a and ue-a2, UE 2 owns ue-b, UE 3 owns ue-c."""
    aanf = AanfStub()
    cm = CmStub()
    cm.associate(supi_for(1), "ue-a", "ue-a2")
    cm.associate(supi_for(2), "ue-b")
    cm.associate(supi_for(3), "ue-c")
    async with serving(aanf.app) as aanf_uri, serving(cm.app) as cm_uri:
        yield aanf, aanf_uri, cm_uri


@pytest.fixture
async def tls13(tmp_path, stubs):
    aanf, aanf_uri, cm_uri = stubs
    async with messaging_listener(tmp_path, "psk-tls1.3", aanf_uri, cm_uri) as listener:
        yield aanf, listener


async def registered(session) -> None:
    outcome = await session.register()
    assert outcome.outcome == REGISTERED, outcome.detail


async def wait_for_items(session, count: int) -> list[messages.InboxItem]:
    """Fetch until the inbox contains `count` items, for at most POLL_LIMIT_SECONDS."""
    async with asyncio.timeout(POLL_LIMIT_SECONDS):
        while True:
            items = await session.fetch()
            if len(items) >= count:
                return items
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("profile", ALL_PROFILES)
async def test_message_and_report_between_two_ues(tmp_path, stubs, profile):
    aanf, aanf_uri, cm_uri = stubs
    async with (
        messaging_listener(tmp_path, profile, aanf_uri, cm_uri) as listener,
        ue_session(aanf, listener, 1, "ue-a") as alice,
        ue_session(aanf, listener, 2, "ue-b") as bob,
    ):
        await registered(alice)
        await registered(bob)

        sent = await alice.send("ue-b", "hello bob", msg_id="m-1", delivery_report=True)
        items = await bob.fetch()
        report = await bob.report(items[0])
        reports = await alice.fetch()

    assert sent.accepted
    assert sent.code == Code.CREATED
    assert sent.message_type is MessageType.MSGRESP
    assert sent.status is DeliveryStatus.DELY_QUEUED
    assert sent.document["msgId"] == "m-1"
    assert len(items) == 1
    assert items[0].ue_service_id == "ue-b"
    assert items[0].message == {
        "messageType": "MSG",
        "oriAddr": "ue-a",
        "destAddr": "ue-b",
        "msgId": "m-1",
        "payload": "hello bob",
        "delivStReqInd": True,
    }
    assert report.accepted
    assert report.code == Code.CHANGED
    assert [item.message for item in reports] == [
        {
            "messageType": "IMDN",
            "oriAddr": "ue-b",
            "destAddr": "ue-a",
            "msgId": "m-1",
            "delivSt": "REPT_DELY_SUCCESS",
        }
    ]


async def test_recipient_offline_without_store_and_forward(tls13):
    aanf, listener = tls13
    async with ue_session(aanf, listener, 1, "ue-a") as alice:
        await registered(alice)

        result = await alice.send("ue-c", "are you there?")

    assert not result.accepted
    assert result.code == Code.NOT_FOUND
    assert result.cause is Cause.RECIPIENT_NOT_REGISTERED
    assert result.status is DeliveryStatus.DELY_FAILED
    assert "stoAndFwInd" in result.detail


async def test_store_and_forward_until_recipient_registers(tls13):
    aanf, listener = tls13
    async with ue_session(aanf, listener, 1, "ue-a") as alice, ue_session(aanf, listener, 3, "ue-c") as carol:
        await registered(alice)
        stored = await alice.send("ue-c", "for later", msg_id="s-1", store_and_forward=True)
        before = await carol.fetch()

        await registered(carol)
        after = await carol.fetch()

    assert stored.accepted
    assert stored.status is DeliveryStatus.DELY_STORED
    assert "exprTime" in stored.document
    assert before == []
    assert [item.message["msgId"] for item in after] == ["s-1"]


async def test_requested_expiry_shortened_to_maximum(tmp_path, stubs):
    aanf, aanf_uri, cm_uri = stubs
    config = MessagingConfig(default_expiry=60, max_expiry=120, expiry_interval=0.1)
    async with (
        messaging_listener(tmp_path, "psk-tls1.3", aanf_uri, cm_uri, config=config) as listener,
        ue_session(aanf, listener, 1, "ue-a") as alice,
    ):
        await registered(alice)
        asked = datetime.now(UTC) + timedelta(days=30)

        result = await alice.send("ue-c", "x", store_and_forward=True, expiry_time=asked)

    granted = datetime.fromisoformat(result.document["exprTime"])
    assert result.status is DeliveryStatus.DELY_STORED
    assert granted <= datetime.now(UTC) + timedelta(seconds=120)


async def test_expired_message_reported_as_failure(tls13):
    aanf, listener = tls13
    async with ue_session(aanf, listener, 1, "ue-a") as alice, ue_session(aanf, listener, 3, "ue-c") as carol:
        await registered(alice)
        expiry = datetime.now(UTC) + timedelta(seconds=0.5)
        stored = await alice.send(
            "ue-c", "too late", msg_id="e-1", store_and_forward=True, delivery_report=True, expiry_time=expiry
        )

        reports = await wait_for_items(alice, 1)
        await registered(carol)
        carol_items = await carol.fetch()

    assert stored.status is DeliveryStatus.DELY_STORED
    assert [item.message for item in reports] == [
        {
            "messageType": "IMDN",
            "oriAddr": "ue-c",
            "destAddr": "ue-a",
            "msgId": "e-1",
            "delivSt": "REPT_DELY_FAILED",
            "failureCause": "EXPIRED",
        }
    ]
    assert carol_items == []


async def test_expired_message_without_report_request_is_dropped(tls13):
    aanf, listener = tls13
    async with ue_session(aanf, listener, 1, "ue-a") as alice:
        await registered(alice)
        expiry = datetime.now(UTC) + timedelta(seconds=0.2)
        await alice.send("ue-c", "gone", store_and_forward=True, expiry_time=expiry)

        async with asyncio.timeout(POLL_LIMIT_SECONDS):
            while await listener.message_store.count("ue-c"):
                await asyncio.sleep(0.05)
        reports = await alice.fetch()

    assert reports == []


async def test_spoofed_originator_rejected(tls13):
    aanf, listener = tls13
    async with ue_session(aanf, listener, 1, "ue-a") as alice, ue_session(aanf, listener, 2, "ue-b") as bob:
        await registered(alice)
        await registered(bob)

        result = await alice.send("ue-a", "I am bob", ori_addr="ue-b")
        bob_items = await bob.fetch()
        alice_items = await alice.fetch()

    assert not result.accepted
    assert result.code == Code.FORBIDDEN
    assert result.cause is Cause.ORIGINATOR_NOT_REGISTERED
    assert result.status is DeliveryStatus.DELY_FAILED
    assert bob_items == []
    assert alice_items == []


async def test_message_after_deregistration_rejected(tls13):
    aanf, listener = tls13
    async with ue_session(aanf, listener, 1, "ue-a") as alice, ue_session(aanf, listener, 2, "ue-b") as bob:
        await registered(alice)
        await registered(bob)
        deregistration = await alice.deregister()

        result = await alice.send("ue-b", "still here?")
        bob_items = await bob.fetch()

    assert deregistration.outcome == DEREGISTERED
    assert result.cause is Cause.ORIGINATOR_NOT_REGISTERED
    assert bob_items == []


async def test_duplicate_message_id_rejected(tls13):
    aanf, listener = tls13
    async with ue_session(aanf, listener, 1, "ue-a") as alice, ue_session(aanf, listener, 2, "ue-b") as bob:
        await registered(alice)
        await registered(bob)

        first = await alice.send("ue-b", "one", msg_id="dup-1")
        second = await alice.send("ue-b", "two", msg_id="dup-1")
        items = await bob.fetch()

    assert first.accepted
    assert not second.accepted
    assert second.code == Code.CONFLICT
    assert second.cause is Cause.DUPLICATE_MESSAGE_ID
    assert [item.message["payload"] for item in items] == ["one"]


async def test_store_full_rejected(tmp_path, stubs):
    aanf, aanf_uri, cm_uri = stubs
    config = MessagingConfig(max_queued_per_recipient=2, expiry_interval=0.1)
    async with (
        messaging_listener(tmp_path, "psk-tls1.3", aanf_uri, cm_uri, config=config) as listener,
        ue_session(aanf, listener, 1, "ue-a") as alice,
    ):
        await registered(alice)
        results = [await alice.send("ue-c", f"m{n}", store_and_forward=True) for n in range(3)]
        retry = await alice.send("ue-c", "again", store_and_forward=True, msg_id=results[2].document["msgId"])

    assert [result.accepted for result in results] == [True, True, False]
    assert results[2].cause is Cause.STORE_FULL
    assert results[2].code == Code.SERVICE_UNAVAILABLE
    # A MSG that was not accepted does not use up its msgId.
    assert retry.cause is Cause.STORE_FULL


async def test_forged_report_rejected(tls13):
    aanf, listener = tls13
    async with ue_session(aanf, listener, 1, "ue-a") as alice, ue_session(aanf, listener, 2, "ue-b") as bob:
        await registered(alice)
        await registered(bob)
        await alice.send("ue-b", "not fetched yet", msg_id="f-1", delivery_report=True)

        never_sent = await bob.request(
            messages.DeliveryReport("ue-b", "ue-a", "no-such-id", ReportStatus.REPT_DELY_SUCCESS)
        )
        not_fetched = await bob.request(
            messages.DeliveryReport("ue-b", "ue-a", "f-1", ReportStatus.REPT_DELY_SUCCESS)
        )
        as_someone_else = await alice.request(
            messages.DeliveryReport("ue-b", "ue-a", "f-1", ReportStatus.REPT_DELY_SUCCESS)
        )
        reports = await alice.fetch()

    assert never_sent.cause is Cause.UNKNOWN_MESSAGE
    assert never_sent.code == Code.NOT_FOUND
    assert not_fetched.cause is Cause.UNKNOWN_MESSAGE
    assert as_someone_else.cause is Cause.ORIGINATOR_NOT_REGISTERED
    assert reports == []


async def test_repeated_report_queued_once(tls13):
    aanf, listener = tls13
    async with ue_session(aanf, listener, 1, "ue-a") as alice, ue_session(aanf, listener, 2, "ue-b") as bob:
        await registered(alice)
        await registered(bob)
        await alice.send("ue-b", "hi", delivery_report=True)
        items = await bob.fetch()

        first = await bob.report(items[0])
        second = await bob.report(items[0])
        reports = await alice.fetch()

    assert first.accepted
    assert second.accepted
    assert "reported before" in second.detail
    assert len(reports) == 1


async def test_unacknowledged_items_redelivered(tls13):
    aanf, listener = tls13
    async with ue_session(aanf, listener, 1, "ue-a") as alice, ue_session(aanf, listener, 2, "ue-b") as bob:
        await registered(alice)
        await registered(bob)
        for n in range(3):
            await alice.send("ue-b", f"m{n}", msg_id=f"a-{n}")

        first = await bob.fetch()
        again = await bob.fetch()
        after_ack = await bob.fetch_result(ack=[first[0].delivery_id])
        foreign_ack = await alice.fetch_result(ack=[first[1].delivery_id])
        remaining = await bob.fetch(ack=[item.delivery_id for item in after_ack.items])
        empty = await bob.fetch()

    assert [item.message["msgId"] for item in first] == ["a-0", "a-1", "a-2"]
    assert [item.delivery_id for item in again] == [item.delivery_id for item in first]
    assert [item.message["msgId"] for item in after_ack.items] == ["a-1", "a-2"]
    assert "1 acknowledged" in after_ack.detail
    assert "1 deliveryId(s) ignored" in foreign_ack.detail
    assert remaining == []
    assert empty == []


async def test_inbox_pages_with_more(tls13):
    aanf, listener = tls13
    async with ue_session(aanf, listener, 1, "ue-a") as alice, ue_session(aanf, listener, 2, "ue-b") as bob:
        await registered(alice)
        await registered(bob)
        for n in range(3):
            await alice.send("ue-b", f"m{n}")

        page = await bob.fetch_result(max_items=2)
        rest = await bob.fetch_result(ack=[item.delivery_id for item in page.items], max_items=2)

    assert len(page.items) == 2
    assert page.more
    assert len(rest.items) == 1
    assert not rest.more


async def test_inbox_of_every_registered_service_id(tls13):
    aanf, listener = tls13
    async with ue_session(aanf, listener, 1, "ue-a") as alice, ue_session(aanf, listener, 2, "ue-b") as bob:
        await registered(alice)
        await alice.request(messages.RegistrationRequest("ue-a2"))
        await registered(bob)
        await bob.send("ue-a", "to a")
        await bob.send("ue-a2", "to a2")

        everything = await alice.fetch()
        only_a2 = await alice.fetch(ue_service_ids=["ue-a2"])
        with pytest.raises(Exception, match="NOT_REGISTERED") as error:
            await alice.fetch(ue_service_ids=["ue-b"])

    assert sorted(item.ue_service_id for item in everything) == ["ue-a", "ue-a2"]
    assert [item.message["payload"] for item in only_a2] == ["to a2"]
    assert error.value.cause == "NOT_REGISTERED"


async def test_listen_handles_reports_and_acknowledges(tls13):
    aanf, listener = tls13
    async with ue_session(aanf, listener, 1, "ue-a") as alice, ue_session(aanf, listener, 2, "ue-b") as bob:
        await registered(alice)
        await registered(bob)
        await alice.send("ue-b", "first", msg_id="l-1", delivery_report=True)
        await alice.send("ue-b", "second", msg_id="l-2")
        received = []

        handled = await bob.listen(received.append, interval=0.05, duration=0.3)
        left = await bob.fetch()
        reports = await alice.fetch()

    assert handled == 2
    assert [item.message["payload"] for item in received] == ["first", "second"]
    assert left == []
    assert [(item.message["msgId"], item.message["delivSt"]) for item in reports] == [
        ("l-1", "REPT_DELY_SUCCESS")
    ]


async def test_listen_drops_repeated_items(tls13):
    aanf, listener = tls13
    async with ue_session(aanf, listener, 1, "ue-a") as alice, ue_session(aanf, listener, 2, "ue-b") as bob:
        await registered(alice)
        await registered(bob)
        await alice.send("ue-b", "once", msg_id="r-1")
        received = []

        # The first fetch hands the item over but the acknowledgement is not sent.
        await bob.fetch()
        bob._seen[("MSG", "ue-a", "r-1", "ue-b")] = None
        handled = await bob.listen(received.append, interval=0.05, duration=0.2)
        left = await bob.fetch()

    assert handled == 0
    assert received == []
    assert left == []


async def test_messages_survive_server_restart(tmp_path, stubs):
    aanf, aanf_uri, cm_uri = stubs
    database = tmp_path / "restart.sqlite"
    async with (
        messaging_listener(tmp_path, "psk-tls1.3", aanf_uri, cm_uri, database=database) as first,
        ue_session(aanf, first, 1, "ue-a") as alice,
    ):
        await registered(alice)
        stored = await alice.send("ue-c", "kept", msg_id="k-1", store_and_forward=True)

    async with (
        messaging_listener(tmp_path, "psk-tls1.3", aanf_uri, cm_uri, database=database) as second,
        ue_session(aanf, second, 1, "ue-a") as alice,
        ue_session(aanf, second, 3, "ue-c") as carol,
    ):
        await registered(carol)
        items = await carol.fetch()
        repeated = await alice.send("ue-c", "kept again", msg_id="k-1", store_and_forward=True)

    assert stored.status is DeliveryStatus.DELY_STORED
    assert [item.message["payload"] for item in items] == ["kept"]
    assert repeated.cause is Cause.DUPLICATE_MESSAGE_ID


def raw_message(operation: Operation, document: object) -> Message:
    request = Message(code=Code.POST, payload=json.dumps(document).encode())
    request.opt.uri_path = operation.path
    request.opt.content_format = messages.CONTENT_FORMAT_JSON
    return request


@pytest.mark.parametrize(
    ("document", "param"),
    [
        ({"messageType": "MSG", "oriAddr": "ue-a", "msgId": "x", "payload": "p"}, "/destAddr"),
        ({"messageType": "MSG", "oriAddr": "ue-a", "destAddr": "ue-b", "msgId": "a b", "payload": "p"}, "/msgId"),
        (
            {"messageType": "MSG", "oriAddr": "ue-a", "destAddr": "ue-b", "msgId": "x", "payload": "p" * 8193},
            "/payload",
        ),
        (
            {"messageType": "MSG", "oriAddr": "ue-a", "destAddr": "ue-b", "msgId": "x", "payload": "p", "urgent": 1},
            "/urgent",
        ),
        (
            {
                "messageType": "MSG", "oriAddr": "ue-a", "destAddr": "ue-b", "msgId": "x", "payload": "p",
                "stoAndFwInd": True, "stoAndFwParams": {"exprTime": "tomorrow"},
            },
            "/stoAndFwParams/exprTime",
        ),
    ],
)
async def test_malformed_message_names_member(tls13, document, param):
    aanf, listener = tls13
    async with ue_session(aanf, listener, 1, "ue-a") as alice:
        await registered(alice)
        channel = await alice._open_channel(alice.keys)

        response = await channel.request(raw_message(Operation.MSG, document))
        result = messages.parse_response(Operation.MSG, response)

    assert response.code == Code.BAD_REQUEST
    assert result.cause is Cause.MALFORMED_MESSAGE
    assert result.status is DeliveryStatus.DELY_FAILED
    assert param in [item.param for item in result.invalid_params]
    assert param in result.detail


@pytest.mark.parametrize(
    ("operation", "document", "param"),
    [
        (Operation.IMDN, {"messageType": "IMDN", "oriAddr": "ue-b", "destAddr": "ue-a", "msgId": "x"}, "/delivSt"),
        (Operation.INBOX, {"messageType": "INBOX", "maxItems": 0}, "/maxItems"),
        (Operation.INBOX, {"messageType": "INBOX", "ack": ["not valid!"]}, "/ack/0"),
    ],
)
async def test_malformed_report_and_inbox_name_member(tls13, operation, document, param):
    aanf, listener = tls13
    async with ue_session(aanf, listener, 1, "ue-a") as alice:
        await registered(alice)
        channel = await alice._open_channel(alice.keys)

        response = await channel.request(raw_message(operation, document))
        result = messages.parse_response(operation, response)

    assert response.code == Code.BAD_REQUEST
    assert result.cause is Cause.MALFORMED_MESSAGE
    assert param in [item.param for item in result.invalid_params]


@pytest.mark.parametrize("profile", ["psk-dtls1.2", "psk-tls1.3"])
async def test_inbox_fits_transport(tmp_path, stubs, profile):
    aanf, aanf_uri, cm_uri = stubs
    async with (
        messaging_listener(tmp_path, profile, aanf_uri, cm_uri) as listener,
        ue_session(aanf, listener, 1, "ue-a") as alice,
        ue_session(aanf, listener, 2, "ue-b") as bob,
    ):
        await registered(alice)
        await registered(bob)
        for n in range(12):
            await listener.messaging.send_message(
                messages.MessageRequest("ue-a", "ue-b", f"big-{n}", "x" * 500), supi_for(1), "test"
            )

        received = []
        handled = await bob.listen(received.append, interval=0.05, duration=0.2)

    assert handled == 12
    assert [item.message["msgId"] for item in received] == [f"big-{n}" for n in range(12)]


async def test_item_too_large_for_datagram_left_queued(tmp_path, stubs):
    aanf, aanf_uri, cm_uri = stubs
    async with (
        messaging_listener(tmp_path, "psk-dtls1.2", aanf_uri, cm_uri) as listener,
        ue_session(aanf, listener, 1, "ue-a") as alice,
        ue_session(aanf, listener, 2, "ue-b") as bob,
    ):
        await registered(alice)
        await registered(bob)
        for msg_id, size in [("huge", 3000), ("small", 10)]:
            await listener.messaging.send_message(
                messages.MessageRequest("ue-a", "ue-b", msg_id, "x" * size), supi_for(1), "test"
            )

        result = await bob.fetch_result()
        queued = await listener.message_store.count("ue-b")

    assert [item.message["msgId"] for item in result.items] == ["small"]
    assert "1 item(s) too large for maxOctets left queued" in result.detail
    assert queued == 2


SERVER_CONFIG = """\
fqdn: {fqdn}
aanf: {{uri: "{aanf}"}}
cm: {{uri: "{cm}"}}
database: deployment.sqlite3
listen: {{port: 0}}
messaging: {{default_expiry: 60, max_expiry: 120, expiry_interval: 0.1}}
"""


async def test_configured_server_serves_messaging(tmp_path, stubs):
    aanf, aanf_uri, cm_uri = stubs
    a_kid = aanf.add_ue(1)
    path = tmp_path / "server.yaml"
    path.write_text(SERVER_CONFIG.format(fqdn=AF_FQDN, aanf=aanf_uri, cm=cm_uri), encoding="utf-8")
    ready: asyncio.Queue = asyncio.Queue()
    shutdown = asyncio.Event()
    server = asyncio.create_task(run(path, lambda uri, **extra: ready.put_nowait(uri), shutdown))
    try:
        async with asyncio.timeout(30):
            port = int((await ready.get()).rsplit(":", 1)[1])

        async def exchange(request: messages.Request) -> messages.Result:
            return await exchange_over_tls13("127.0.0.1", port, AF_FQDN, a_kid, make_k_akma(1), request)

        await exchange(messages.RegistrationRequest("ue-a"))
        sent = await exchange(
            messages.MessageRequest("ue-a", "ue-c", "cfg-1", "stored", sto_and_fw_ind=True,
                                    expiry_time=datetime.now(UTC) + timedelta(days=1))
        )
    finally:
        shutdown.set()
        async with asyncio.timeout(30):
            await server

    granted = datetime.fromisoformat(sent.document["exprTime"])
    assert sent.status is DeliveryStatus.DELY_STORED
    assert granted <= datetime.now(UTC) + timedelta(seconds=120)


@pytest.mark.parametrize("profile", ["psk-tls1.3", "https-digest"])
async def test_message_over_server_limit_reported(tmp_path, stubs, profile):
    aanf, aanf_uri, cm_uri = stubs
    async with (
        messaging_listener(tmp_path, profile, aanf_uri, cm_uri, max_message_size=2048) as listener,
        ue_session(aanf, listener, 1, "ue-a") as sender,
    ):
        await registered(sender)
        with pytest.raises(MessagingError) as raised:
            await sender.send("ue-b", "x" * 4000)

    assert raised.value.cause == "MESSAGE_TOO_LARGE"
    assert "too large" in raised.value.detail or "exceeds" in raised.value.detail
