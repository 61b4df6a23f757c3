"""The message store on SQLite, single Redis and Redis Cluster, and the messaging configuration.

`store_selection` (tests/redis_servers.py) runs each store test once per
backend, with a key prefix of its own on the shared test servers.
"""

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from msgin5g.service.config import MessagingConfig
from msgin5g.service.message_store import EnqueueResult, MessageStore, QueuedItem, encoded_size
from msgin5g.service.redis_message_store import open_message_store
from msgin5g.store.redis import StoreSelection, make_client, text

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


async def open_store(selection: StoreSelection, tmp_path: Path) -> MessageStore:
    """Open the store of `selection`; on SQLite, in the file messages.sqlite of `tmp_path`."""
    return await open_message_store(selection, tmp_path / "messages.sqlite")


@pytest.fixture
async def store(store_selection, tmp_path):
    opened = await open_store(store_selection, tmp_path)
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


async def test_items_survive_reopening(store_selection, tmp_path):
    first = await open_store(store_selection, tmp_path)
    await first.enqueue(msg_item("d1"), max_queued=None, claim_until=LATER)
    await first.close()

    second = await open_store(store_selection, tmp_path)
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


def imdn_item(delivery_id: str, recipient: str = "ue-a") -> QueuedItem:
    document = {"messageType": "IMDN", "oriAddr": "ue-b", "destAddr": recipient, "msgId": "m1",
                "delivSt": "REPT_DELY_SUCCESS"}
    return QueuedItem(delivery_id, recipient, document, LATER)


async def test_fetch_merges_recipients_in_enqueue_order(store):
    for delivery_id, recipient in [("d0", "ue-b"), ("d1", "ue-c"), ("d2", "ue-b"), ("d3", "ue-c")]:
        await store.enqueue(msg_item(delivery_id, recipient), max_queued=None)

    first = await store.fetch(["ue-b", "ue-c"], 3, record_until=LATER)
    only_c = await store.fetch(["ue-c"], 10, record_until=LATER)

    assert [item.delivery_id for item in first.items] == ["d0", "d1", "d2"]
    assert first.more
    assert [item.delivery_id for item in only_c.items] == ["d1", "d3"]
    assert not only_c.more


async def test_fetch_again_returns_unacknowledged_items(store):
    await store.enqueue(msg_item("d1"), max_queued=None)

    first = await store.fetch(["ue-b"], 10, record_until=LATER)
    second = await store.fetch(["ue-b"], 10, record_until=LATER)

    assert [(item.delivery_id, item.fetched) for item in first.items] == [("d1", False)]
    assert [(item.delivery_id, item.fetched) for item in second.items] == [("d1", True)]
    assert second.items[0].document == msg_item("d1").document
    assert second.items[0].expires_at.timestamp() == pytest.approx(LATER.timestamp())


async def test_fetch_skips_expired_items(store):
    await store.enqueue(msg_item("old", expires_at=NOW - timedelta(seconds=1)), max_queued=None)
    await store.enqueue(msg_item("new"), max_queued=None)

    result = await store.fetch(["ue-b"], 10, record_until=LATER)

    assert [item.delivery_id for item in result.items] == ["new"]
    assert not await store.was_delivered("ue-a", "ue-b", "old")


async def test_fetch_records_only_messages(store):
    await store.enqueue(imdn_item("r1"), max_queued=None)

    result = await store.fetch(["ue-a"], 10, record_until=LATER)

    assert [item.delivery_id for item in result.items] == ["r1"]
    assert not await store.was_delivered("ue-b", "ue-a", "m1")


async def test_size_budget_spans_recipients(store):
    await store.enqueue(msg_item("b0"), max_queued=None)
    await store.enqueue(msg_item("big", "ue-c", payload="x" * 2000), max_queued=None)
    await store.enqueue(msg_item("c1", "ue-c"), max_queued=None)
    await store.enqueue(msg_item("b2"), max_queued=None)
    small = encoded_size(msg_item("b0"))

    result = await store.fetch(["ue-b", "ue-c"], 10, record_until=LATER, max_octets=2 * small + 10)

    assert [item.delivery_id for item in result.items] == ["b0", "c1"]
    assert result.more
    assert result.oversized == 1


async def test_ack_counts_each_recipient_once(store):
    await store.enqueue(msg_item("d1"), max_queued=None)
    await store.enqueue(msg_item("d2", "ue-c"), max_queued=None)

    removed = await store.ack(["ue-b", "ue-c", "ue-b"], ["d1", "d2", "d1"])
    again = await store.ack(["ue-b", "ue-c"], ["d1", "d2"])

    assert removed == 2
    assert again == 0
    assert await store.count("ue-b") == 0
    assert await store.count("ue-c") == 0


async def test_acknowledged_item_does_not_expire(store):
    past = NOW - timedelta(seconds=1)
    await store.enqueue(msg_item("d1", expires_at=past), max_queued=None)
    await store.ack(["ue-b"], ["d1"])

    expired = await store.expire(NOW)

    assert expired == []


async def test_expire_returns_fetched_flag(store):
    soon = datetime.now(UTC) + timedelta(seconds=30)
    await store.enqueue(msg_item("d1", expires_at=soon, report_requested=True), max_queued=None)
    await store.fetch(["ue-b"], 10, record_until=LATER)

    expired = await store.expire(soon + timedelta(seconds=1))

    assert [(item.delivery_id, item.fetched) for item in expired] == [("d1", True)]
    assert await store.count("ue-b") == 0


async def test_expire_on_two_stores_returns_item_once(store_selection, tmp_path, store):
    other = await open_store(store_selection, tmp_path)
    past = NOW - timedelta(seconds=1)
    try:
        for n in range(5):
            await store.enqueue(msg_item(f"d{n}", f"ue-{n}", expires_at=past), max_queued=None)

        first, second = await store.expire(NOW), await other.expire(NOW)
    finally:
        await other.close()

    assert sorted(item.delivery_id for item in first + second) == [f"d{n}" for n in range(5)]
    assert [item.delivery_id for item in first] == [f"d{n}" for n in range(5)]


async def test_later_fetch_keeps_reported_flag(store):
    await store.enqueue(msg_item("d1"), max_queued=None)
    await store.fetch(["ue-b"], 10, record_until=LATER)
    await store.mark_reported("ue-a", "ue-b", "d1")

    await store.fetch(["ue-b"], 10, record_until=LATER + timedelta(hours=1))

    assert await store.was_reported("ue-a", "ue-b", "d1")


async def test_mark_reported_without_delivery_changes_nothing(store):
    await store.mark_reported("ue-a", "ue-b", "never")

    assert not await store.was_delivered("ue-a", "ue-b", "never")
    assert not await store.was_reported("ue-a", "ue-b", "never")


async def test_queue_limit_holds_for_concurrent_enqueues(store):
    results = await asyncio.gather(
        *(store.enqueue(msg_item(f"d{n}", msg_id=f"m{n}"), max_queued=3, claim_until=LATER) for n in range(6))
    )
    claimed = [await store.message_id_used("ue-a", f"m{n}") for n in range(6)]

    assert results.count(EnqueueResult.QUEUED) == 3
    assert results.count(EnqueueResult.STORE_FULL) == 3
    assert await store.count("ue-b") == 3
    assert claimed == [result is EnqueueResult.QUEUED for result in results]


@pytest.mark.parametrize("store_backend", ["redis", "redis-cluster"])
async def test_redis_keeps_no_keys_for_empty_queues(store_selection, store):
    past = NOW - timedelta(seconds=1)
    await store.enqueue(msg_item("acked"), max_queued=None, claim_until=past)
    await store.enqueue(msg_item("expired", "ue-c", expires_at=past), max_queued=None)
    await store.fetch(["ue-b"], 10, record_until=LATER)
    await store.ack(["ue-b"], ["acked"])
    await store.expire(NOW)

    client = make_client(store_selection)
    try:
        keys = sorted([text(key) async for key in client.scan_iter(match=f"{store_selection.key_prefix}:*")])
        ttl = await client.pttl(f"{store_selection.key_prefix}:msg:dlv:{{ue-b}}")
    finally:
        await client.aclose()

    prefix = store_selection.key_prefix
    assert keys == [f"{prefix}:msg:dlv:{{ue-b}}", f"{prefix}:msg:dlvexp:{{ue-b}}"]
    assert 0 < ttl <= (LATER - datetime.now(UTC)).total_seconds() * 1000 + 1000
