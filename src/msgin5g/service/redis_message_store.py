"""Queued MSG and IMDN items of the MSGin5G Server on Redis or Redis Cluster.

Per recipient UE service ID R, four keys with R as their hash tag, so that
they share one cluster slot and one Lua script can change them together:

- `<prefix>:msg:queue:{R}`: sorted set of deliveryIds, scored by sequence
  (microseconds of the Redis server's TIME, raised to stay increasing per R);
- `<prefix>:msg:item:{R}`: hash of deliveryId to the item, as a header line
  "<expires_at> <encoded size> <report_requested> <fetched>" and the document JSON;
- `<prefix>:msg:dlv:{R}`: hash of the delivery records of the MSGs fetched by R,
  field JSON [oriAddr, msgId], value "<expires_at> <reported>";
- `<prefix>:msg:dlvexp:{R}`: sorted set of the same fields, scored by expiry,
  to drop expired records. Both record keys expire with their latest record.

Besides these:

- `<prefix>:msg:claim:{<oriAddr>}:<msgId>`: the msgId claim, a string with
  PXAT `claim_until`, so Redis drops it itself;
- `<prefix>:msg:due:{<n>}`, n = CRC-32 of R mod `DUE_SHARDS`: sorted set of
  JSON [R, deliveryId] scored by the item's expiry, which `expire` reads to find
  the expired items without scanning every recipient.

Each step runs as one command or as one Lua script on the keys of one hash
tag. A step that spans hash tags (a claim and the queue, an item and its due
entry, the queues of several recipients in one fetch) is several commands.
The rule that keeps them consistent: the due entry is written before the
item and removed after it, and `expire` trusts only the item, so a stale due
entry costs one lookup and no item lacks its due entry.
"""

import asyncio
import json
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

from redis.commands.core import AsyncScript

from msgin5g.service.message_store import (
    EnqueueResult,
    FetchResult,
    MessageStore,
    QueuedItem,
    SqliteMessageStore,
    encoded_size,
)
from msgin5g.service.messages import MessageType
from msgin5g.store.redis import RedisConnection, StoreSelection, open_store, text
from msgin5g.store.sqlite import StoreError

# NOTE: changing DUE_SHARDS moves recipients to other due keys, so the items
# indexed under the old number would never expire: keep it for a deployment's life.
DUE_SHARDS = 16
# Due entries that `expire` reads per round.
EXPIRE_BATCH = 500

# KEYS: queue, item. ARGV: deliveryId, value, max_queued ('' for no limit).
# Returns 1 (queued), 0 (the queue is full) or -1 (the deliveryId is queued already).
ENQUEUE = """
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then
    return -1
end
if ARGV[3] ~= '' and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
    return 0
end
local now = redis.call('TIME')
local sequence = tonumber(now[1]) * 1000000 + tonumber(now[2])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] ~= nil and tonumber(last[2]) >= sequence then
    sequence = tonumber(last[2]) + 1
end
redis.call('ZADD', KEYS[1], string.format('%d', sequence), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
"""

# KEYS: claim. ARGV: the deliveryId that claimed it. Deletes the claim only if it still names that item.
RELEASE_CLAIM = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS: queue, item. ARGV: now, item count, max octets (-1 for no budget).
# Walks the queue in order and returns {deliveryId, sequence, size, value} for
# each unexpired item, with value '' for an item larger than the budget, until
# that many items within the budget are collected. Read-only.
SELECT = """
local now, count, budget = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local page_size = 100
local selected, taken, start = {}, 0, 0
while taken < count do
    local page = redis.call('ZRANGE', KEYS[1], start, start + page_size - 1, 'WITHSCORES')
    if #page == 0 then
        break
    end
    for index = 1, #page, 2 do
        local value = redis.call('HGET', KEYS[2], page[index])
        if value then
            local expires, size = string.match(value, '^(%S+) (%d+) ')
            if tonumber(expires) > now then
                if budget >= 0 and tonumber(size) > budget then
                    table.insert(selected, {page[index], page[index + 1], size, ''})
                else
                    table.insert(selected, {page[index], page[index + 1], size, value})
                    taken = taken + 1
                    if taken == count then
                        break
                    end
                end
            end
        end
    end
    start = start + page_size
end
return selected
"""

# Shared by MARK_FETCHED and EXPIRE_ITEMS. KEYS[3]: records, KEYS[4]: record expiries.
# Drops the records that expired at `now`; sets both keys to expire with the latest record.
PURGE_RECORDS = """
local function purge_records(now_text)
    local stale = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now_text)
    for _, field in ipairs(stale) do
        redis.call('HDEL', KEYS[3], field)
    end
    redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now_text)
    local latest = redis.call('ZRANGE', KEYS[4], -1, -1, 'WITHSCORES')
    if latest[2] ~= nil then
        local at = string.format('%d', math.floor(tonumber(latest[2]) * 1000) + 1)
        redis.call('PEXPIREAT', KEYS[3], at)
        redis.call('PEXPIREAT', KEYS[4], at)
    end
end
"""

# KEYS: queue, item, records, record expiries. ARGV: now, record_until, then
# pairs of deliveryId and record field ('' for an IMDN). Marks each item that is
# still queued as fetched and records each MSG among them as delivered until
# record_until (or later, if recorded so already). Returns the marked deliveryIds.
MARK_FETCHED = PURGE_RECORDS + """
local marked = {}
for index = 3, #ARGV, 2 do
    local delivery_id, field = ARGV[index], ARGV[index + 1]
    local value = redis.call('HGET', KEYS[2], delivery_id)
    if value then
        local header, document = string.match(value, '^(%S+ %d+ %d) %d\\n(.*)$')
        redis.call('HSET', KEYS[2], delivery_id, header .. ' 1\\n' .. document)
        table.insert(marked, delivery_id)
        if field ~= '' then
            local expires, reported = ARGV[2], '0'
            local old = redis.call('HGET', KEYS[3], field)
            if old then
                local old_expires, old_reported = string.match(old, '^(%S+) (%d)$')
                if tonumber(old_expires) > tonumber(expires) then
                    expires = old_expires
                end
                reported = old_reported
            end
            redis.call('HSET', KEYS[3], field, expires .. ' ' .. reported)
            redis.call('ZADD', KEYS[4], expires, field)
        end
    end
end
purge_records(ARGV[1])
return marked
"""

# KEYS: queue, item, records, record expiries. ARGV: now, then deliveryIds.
# Removes each listed item that expired at `now`. Returns {expired, unexpired},
# where expired lists {deliveryId, sequence, value} and unexpired lists
# {deliveryId, expires_at} of each listed item that has not expired.
EXPIRE_ITEMS = PURGE_RECORDS + """
local now = tonumber(ARGV[1])
local expired, unexpired = {}, {}
for index = 2, #ARGV do
    local delivery_id = ARGV[index]
    local value = redis.call('HGET', KEYS[2], delivery_id)
    if value then
        local expires = string.match(value, '^(%S+) ')
        if tonumber(expires) <= now then
            local sequence = redis.call('ZSCORE', KEYS[1], delivery_id)
            redis.call('ZREM', KEYS[1], delivery_id)
            redis.call('HDEL', KEYS[2], delivery_id)
            table.insert(expired, {delivery_id, sequence, value})
        else
            table.insert(unexpired, {delivery_id, expires})
        end
    end
end
purge_records(ARGV[1])
return {expired, unexpired}
"""

# KEYS: queue, item. ARGV: deliveryIds. Removes those queued here; returns their ids.
ACK = """
local removed = {}
for _, delivery_id in ipairs(ARGV) do
    if redis.call('ZREM', KEYS[1], delivery_id) == 1 then
        redis.call('HDEL', KEYS[2], delivery_id)
        table.insert(removed, delivery_id)
    end
end
return removed
"""

# KEYS: records. ARGV: field. Sets the reported flag of an existing record.
MARK_REPORTED = """
local value = redis.call('HGET', KEYS[1], ARGV[1])
if value then
    local expires = string.match(value, '^(%S+) ')
    redis.call('HSET', KEYS[1], ARGV[1], expires .. ' 1')
end
return 0
"""


@dataclass(frozen=True)
class Candidate:
    """An unexpired item that SELECT returned; `value` is None for an oversized one."""

    recipient: str
    delivery_id: str
    sequence: float
    size: int
    value: str | None


class RedisMessageStore(MessageStore):
    def __init__(self, connection: RedisConnection) -> None:
        self._redis = connection.client
        self._keys = connection.keys
        self._connection = connection
        self._enqueue: AsyncScript = self._redis.register_script(ENQUEUE)
        self._release_claim: AsyncScript = self._redis.register_script(RELEASE_CLAIM)
        self._select: AsyncScript = self._redis.register_script(SELECT)
        self._mark_fetched: AsyncScript = self._redis.register_script(MARK_FETCHED)
        self._expire_items: AsyncScript = self._redis.register_script(EXPIRE_ITEMS)
        self._ack: AsyncScript = self._redis.register_script(ACK)
        self._mark_reported: AsyncScript = self._redis.register_script(MARK_REPORTED)

    # Keys

    def _queue_keys(self, recipient: str) -> list[str]:
        return [self._keys.key("msg:queue", recipient), self._keys.key("msg:item", recipient)]

    def _record_keys(self, recipient: str) -> list[str]:
        return [self._keys.key("msg:dlv", recipient), self._keys.key("msg:dlvexp", recipient)]

    def _claim_key(self, ori_addr: str, msg_id: str) -> str:
        return self._keys.key("msg:claim", ori_addr, f":{msg_id}")

    def _due_key(self, recipient: str) -> str:
        return self._due_shard_key(zlib.crc32(recipient.encode("utf-8")) % DUE_SHARDS)

    def _due_shard_key(self, shard: int) -> str:
        return self._keys.key("msg:due", str(shard))

    # Lifecycle

    async def open(self) -> Self:
        return self

    async def close(self) -> None:
        await self._connection.close()

    # Enqueue

    async def enqueue(
        self, item: QueuedItem, *, max_queued: int | None, claim_until: datetime | None = None
    ) -> EnqueueResult:
        claim = self._claim_key(item.ori_addr, item.msg_id) if claim_until is not None else None
        if claim is not None and not await self._redis.set(
            claim, item.delivery_id, nx=True, pxat=milliseconds(claim_until)
        ):
            return EnqueueResult.DUPLICATE

        # NOTE: the claim, the due entry and the item are three steps. A server
        # that stops between the claim and the item leaves the msgId claimed
        # until claim_until without a queued MSG, so the UE must send it again
        # with a new msgId.
        due_member = due_entry(item.recipient, item.delivery_id)
        await self._redis.zadd(self._due_key(item.recipient), {due_member: item.expires_at.timestamp()})
        queued = await self._enqueue(
            keys=self._queue_keys(item.recipient),
            args=[item.delivery_id, item_value(item), "" if max_queued is None else max_queued],
        )
        if queued == 1:
            return EnqueueResult.QUEUED

        await self._redis.zrem(self._due_key(item.recipient), due_member)
        if claim is not None:
            await self._release_claim(keys=[claim], args=[item.delivery_id])
        if queued == -1:
            raise StoreError(f"deliveryId {item.delivery_id!r} is queued already; use a new deliveryId")
        return EnqueueResult.STORE_FULL

    async def message_id_used(self, ori_addr: str, msg_id: str) -> bool:
        return await self._redis.exists(self._claim_key(ori_addr, msg_id)) > 0

    # Fetch

    async def fetch(
        self,
        recipients: Iterable[str],
        max_items: int,
        *,
        record_until: datetime,
        max_octets: int | None = None,
    ) -> FetchResult:
        requested = list(dict.fromkeys(recipients))
        if not requested:
            return FetchResult([], False)
        now = time.time()

        # NOTE: the items of each recipient are selected and marked in two steps,
        # and the recipients one after another, not in one transaction. An item
        # acknowledged in between is left out of the result.
        pages = await asyncio.gather(
            *(self._select_candidates(recipient, now, max_items + 1, max_octets) for recipient in requested)
        )
        candidates = sorted((item for page in pages for item in page), key=lambda item: item.sequence)
        chosen, more, oversized = take_candidates(candidates, max_items, max_octets)

        marked = await self._mark(chosen, now, record_until)
        items = [item_from_value(item.recipient, item.delivery_id, item.value) for item in chosen
                 if (item.recipient, item.delivery_id) in marked]
        return FetchResult(items, more, oversized)

    async def _select_candidates(
        self, recipient: str, now: float, count: int, max_octets: int | None
    ) -> list[Candidate]:
        rows = await self._select(
            keys=self._queue_keys(recipient),
            args=[repr(now), count, -1 if max_octets is None else max_octets],
        )
        return [
            Candidate(recipient, text(delivery_id), float(sequence), int(size), text(value) or None)
            for delivery_id, sequence, size, value in rows
        ]

    async def _mark(
        self, chosen: list[Candidate], now: float, record_until: datetime
    ) -> set[tuple[str, str]]:
        """Mark the chosen items fetched and record the MSGs; return the (recipient, deliveryId) marked."""
        by_recipient: dict[str, list[str]] = {}
        for candidate in chosen:
            item = item_from_value(candidate.recipient, candidate.delivery_id, candidate.value)
            field = record_field(item.ori_addr, item.msg_id) if item.message_type is MessageType.MSG else ""
            by_recipient.setdefault(candidate.recipient, []).extend([candidate.delivery_id, field])

        async def mark(recipient: str, pairs: list[str]) -> list[tuple[str, str]]:
            marked = await self._mark_fetched(
                keys=self._queue_keys(recipient) + self._record_keys(recipient),
                args=[repr(now), repr(record_until.timestamp()), *pairs],
            )
            return [(recipient, text(delivery_id)) for delivery_id in marked]

        results = await asyncio.gather(*(mark(recipient, pairs) for recipient, pairs in by_recipient.items()))
        return {pair for result in results for pair in result}

    # Acknowledge

    async def ack(self, recipients: Iterable[str], delivery_ids: Iterable[str]) -> int:
        scope = list(dict.fromkeys(recipients))
        ids = list(dict.fromkeys(delivery_ids))
        if not scope or not ids:
            return 0

        async def remove(recipient: str) -> int:
            removed = [text(value) for value in await self._ack(keys=self._queue_keys(recipient), args=ids)]
            if removed:
                members = [due_entry(recipient, delivery_id) for delivery_id in removed]
                await self._redis.zrem(self._due_key(recipient), *members)
            return len(removed)

        return sum(await asyncio.gather(*(remove(recipient) for recipient in scope)))

    # Delivery records

    async def was_delivered(self, ori_addr: str, dest_addr: str, msg_id: str) -> bool:
        return await self._record(ori_addr, dest_addr, msg_id) is not None

    async def was_reported(self, ori_addr: str, dest_addr: str, msg_id: str) -> bool:
        return await self._record(ori_addr, dest_addr, msg_id) is True

    async def _record(self, ori_addr: str, dest_addr: str, msg_id: str) -> bool | None:
        """Return the reported flag of an unexpired delivery record, or None when there is none."""
        value = text(await self._redis.hget(self._record_keys(dest_addr)[0], record_field(ori_addr, msg_id)))
        if value is None:
            return None
        expires, reported = value.split(" ")
        if float(expires) <= time.time():
            return None
        return reported == "1"

    async def mark_reported(self, ori_addr: str, dest_addr: str, msg_id: str) -> None:
        await self._mark_reported(keys=self._record_keys(dest_addr)[:1], args=[record_field(ori_addr, msg_id)])

    # Expiry

    async def expire(self, now: datetime) -> list[QueuedItem]:
        moment = now.timestamp()
        shards = await asyncio.gather(*(self._expire_shard(shard, moment) for shard in range(DUE_SHARDS)))
        expired = sorted((item for shard in shards for item in shard), key=lambda pair: pair[0])
        return [item for _, item in expired]

    async def _expire_shard(self, shard: int, moment: float) -> list[tuple[float, QueuedItem]]:
        """Remove the expired items indexed in one due key; return them with their sequence."""
        due_key = self._due_shard_key(shard)
        expired: list[tuple[float, QueuedItem]] = []
        while True:
            members = await self._redis.zrangebyscore(due_key, "-inf", repr(moment), start=0, num=EXPIRE_BATCH)
            if not members:
                return expired
            by_recipient: dict[str, list[str]] = {}
            for member in members:
                recipient, delivery_id = json.loads(member)
                by_recipient.setdefault(recipient, []).append(delivery_id)

            for recipient, delivery_ids in by_recipient.items():
                expired += await self._expire_recipient(recipient, delivery_ids, moment)
            # Every member read is either removed here or indexed again with a
            # later score by _expire_recipient, so the loop ends.
            await self._redis.zrem(due_key, *members)
            if len(members) < EXPIRE_BATCH:
                return expired

    async def _expire_recipient(
        self, recipient: str, delivery_ids: list[str], moment: float
    ) -> list[tuple[float, QueuedItem]]:
        expired_rows, unexpired_rows = await self._expire_items(
            keys=self._queue_keys(recipient) + self._record_keys(recipient),
            args=[repr(moment), *delivery_ids],
        )
        if unexpired_rows:
            # An item whose due entry is earlier than its expiry keeps a correct entry.
            await self._redis.zadd(
                self._due_key(recipient),
                {due_entry(recipient, text(delivery_id)): float(expires) for delivery_id, expires in unexpired_rows},
            )
        return [
            (float(sequence), item_from_value(recipient, text(delivery_id), text(value)))
            for delivery_id, sequence, value in expired_rows
        ]

    async def count(self, recipient: str) -> int:
        return await self._redis.zcard(self._queue_keys(recipient)[0])


def milliseconds(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def due_entry(recipient: str, delivery_id: str) -> str:
    return json.dumps([recipient, delivery_id], separators=(",", ":"))


def record_field(ori_addr: str, msg_id: str) -> str:
    return json.dumps([ori_addr, msg_id], separators=(",", ":"))


def item_value(item: QueuedItem) -> str:
    """Encode the stored form: the header line, then the document JSON."""
    header = f"{item.expires_at.timestamp()!r} {encoded_size(item)} {int(item.report_requested)} {int(item.fetched)}"
    return header + "\n" + json.dumps(item.document, separators=(",", ":"))


def item_from_value(recipient: str, delivery_id: str, value: str) -> QueuedItem:
    """Decode the stored form that `item_value` wrote."""
    header, _, document = value.partition("\n")
    expires_at, _size, report_requested, fetched = header.split(" ")
    return QueuedItem(
        delivery_id=delivery_id,
        recipient=recipient,
        document=json.loads(document),
        expires_at=datetime.fromtimestamp(float(expires_at), UTC),
        report_requested=report_requested == "1",
        fetched=fetched == "1",
    )


def take_candidates(
    candidates: list[Candidate], max_items: int, max_octets: int | None
) -> tuple[list[Candidate], bool, int]:
    """Take candidates in order as `SqliteMessageStore.fetch` does; return them, `more` and the oversized count."""
    chosen: list[Candidate] = []
    used = 0
    oversized = 0
    for candidate in candidates:
        if len(chosen) == max_items:
            return chosen, True, oversized
        if candidate.value is None:
            oversized += 1
            continue
        if max_octets is not None and used + candidate.size > max_octets:
            return chosen, True, oversized
        chosen.append(candidate)
        used += candidate.size
    return chosen, False, oversized


async def open_message_store(selection: StoreSelection, database: Path | None) -> MessageStore:
    """Open the message store on the backend that `selection` names."""

    async def open_sqlite(path: Path) -> MessageStore:
        return await SqliteMessageStore(path).open()

    return await open_store(selection, database, sqlite=open_sqlite, redis=RedisMessageStore)
