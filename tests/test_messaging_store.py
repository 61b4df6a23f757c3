"""SqliteMessageStore on a real SQLite file, and the messaging configuration."""

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from msgin5g.service.config import MessagingConfig
from msgin5g.service.message_store import EnqueueResult, QueuedItem, SqliteMessageStore, encoded_size

NOW = datetime.now(UTC)
LATER = NOW + timedelta(hours=1)


def msg_item(delivery_id: str, recipient: str = "ue-b", msg_id: str | None = None, **options) -> QueuedItem:
    document = {
        "messageType": "MSG",
        "oriAddr": "ue-a",
        "destAddr": recipient,
        "msgId": msg_id or delivery_id,
        "payload": options.pop("payload", "hi"),
    }
    return QueuedItem(delivery_id, recipient, document, options.pop("expires_at", LATER), **options)


@pytest.fixture
async def store(tmp_path):
    opened = await SqliteMessageStore(tmp_path / "messages.sqlite").open()
    yield opened
    await opened.close()


async def test_fetch_in_order_and_records_delivery(store):
    for n in range(3):
        await store.enqueue(msg_item(f"d{n}"), max_queued=None)

    first = await store.fetch(["ue-b"], 2, record_until=LATER)
    delivered = await store.was_delivered("ue-a", "ue-b", "d0")
    not_yet = await store.was_delivered("ue-a", "ue-b", "d2")

    assert [item.delivery_id for item in first.items] == ["d0", "d1"]
    assert first.more
    assert delivered
    assert not not_yet


async def test_claim_rejects_repeated_message_id(store):
    first = await store.enqueue(msg_item("d1", msg_id="m"), max_queued=None, claim_until=LATER)
    second = await store.enqueue(msg_item("d2", msg_id="m"), max_queued=None, claim_until=LATER)

    assert first is EnqueueResult.QUEUED
    assert second is EnqueueResult.DUPLICATE
    assert await store.message_id_used("ue-a", "m")
    assert await store.count("ue-b") == 1


async def test_full_queue_claims_nothing(store):
    await store.enqueue(msg_item("d1"), max_queued=1)

    result = await store.enqueue(msg_item("d2", msg_id="m2"), max_queued=1, claim_until=LATER)

    assert result is EnqueueResult.STORE_FULL
    assert not await store.message_id_used("ue-a", "m2")


async def test_ack_only_within_scope(store):
    await store.enqueue(msg_item("d1"), max_queued=None)

    foreign = await store.ack(["ue-x"], ["d1"])
    own = await store.ack(["ue-b"], ["d1", "unknown"])

    assert foreign == 0
    assert own == 1
    assert await store.count("ue-b") == 0


async def test_expire_returns_items_and_drops_claims(store):
    past = NOW - timedelta(seconds=1)
    await store.enqueue(msg_item("old", expires_at=past, report_requested=True), max_queued=None, claim_until=past)
    await store.enqueue(msg_item("new"), max_queued=None)

    expired = await store.expire(NOW)
    left = await store.fetch(["ue-b"], 10, record_until=LATER)

    assert [(item.delivery_id, item.report_requested, item.fetched) for item in expired] == [("old", True, False)]
    assert not await store.message_id_used("ue-a", "old")
    assert [item.delivery_id for item in left.items] == ["new"]


async def test_items_survive_reopening(tmp_path):
    path = tmp_path / "messages.sqlite"
    first = await SqliteMessageStore(path).open()
    await first.enqueue(msg_item("d1"), max_queued=None, claim_until=LATER)
    await first.close()

    second = await SqliteMessageStore(path).open()
    try:
        fetched = await second.fetch(["ue-b"], 10, record_until=LATER)
        used = await second.message_id_used("ue-a", "d1")
    finally:
        await second.close()

    assert [item.document["payload"] for item in fetched.items] == ["hi"]
    assert used


async def test_size_budget_skips_oversized_and_stops_at_limit(store):
    await store.enqueue(msg_item("big", payload="x" * 2000), max_queued=None)
    for n in range(3):
        await store.enqueue(msg_item(f"s{n}"), max_queued=None)
    small = encoded_size(msg_item("s0"))

    result = await store.fetch(["ue-b"], 10, record_until=LATER, max_octets=2 * small)

    assert [item.delivery_id for item in result.items] == ["s0", "s1"]
    assert result.more
    assert result.oversized == 1
    assert not await store.was_delivered("ue-a", "ue-b", "big")


async def test_reported_once(store):
    await store.enqueue(msg_item("d1"), max_queued=None)
    await store.fetch(["ue-b"], 10, record_until=LATER)

    before = await store.was_reported("ue-a", "ue-b", "d1")
    await store.mark_reported("ue-a", "ue-b", "d1")

    assert not before
    assert await store.was_reported("ue-a", "ue-b", "d1")


def test_default_expiry_above_maximum_rejected():
    with pytest.raises(ValidationError, match="default_expiry .* exceeds max_expiry"):
        MessagingConfig(default_expiry=100, max_expiry=10)


def test_messaging_section_defaults():
    config = MessagingConfig()

    assert config.default_expiry == 86400
    assert config.max_expiry == 7 * 86400
    assert config.max_queued_per_recipient == 1000
