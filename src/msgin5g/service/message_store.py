"""Queued MSG and IMDN items of the MSGin5G Server, per recipient UE service ID.

The server queues every accepted MSG, and every IMDN, for its recipient's UE
service ID. The recipient's UE fetches its items with INBOX; an item stays
queued until the UE acknowledges it in a later INBOX, or until it expires.
The store also remembers:

- the msgId of every accepted MSG per originator, so that a repeated msgId is
  rejected (kept until `claim_until` of the MSG);
- every MSG that a fetch returned to its recipient, so that only that
  recipient can report its delivery with an IMDN (kept until `record_until`).

`MessageStore` is the interface; `SqliteMessageStore` keeps the items in the
server's SQLite file, so they survive a restart.
"""

import dataclasses
import enum
import json
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from msgin5g.service.messages import InboxItem, MessageType
from msgin5g.store.sqlite import SqliteDatabase, transaction

SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS msgin5g_inbox (
        sequence         INTEGER PRIMARY KEY AUTOINCREMENT,
        delivery_id      TEXT NOT NULL UNIQUE,
        recipient        TEXT NOT NULL,
        message_type     TEXT NOT NULL,
        ori_addr         TEXT NOT NULL,
        msg_id           TEXT NOT NULL,
        document         TEXT NOT NULL,
        report_requested INTEGER NOT NULL,
        expires_at       REAL NOT NULL,
        fetched          INTEGER NOT NULL DEFAULT 0
    )
    """,
    "CREATE INDEX IF NOT EXISTS msgin5g_inbox_by_recipient ON msgin5g_inbox (recipient, sequence)",
    "CREATE INDEX IF NOT EXISTS msgin5g_inbox_by_expiry ON msgin5g_inbox (expires_at)",
    """
    CREATE TABLE IF NOT EXISTS msgin5g_message_ids (
        ori_addr   TEXT NOT NULL,
        msg_id     TEXT NOT NULL,
        expires_at REAL NOT NULL,
        PRIMARY KEY (ori_addr, msg_id)
    )
    """,
    "CREATE INDEX IF NOT EXISTS msgin5g_message_ids_by_expiry ON msgin5g_message_ids (expires_at)",
    """
    CREATE TABLE IF NOT EXISTS msgin5g_deliveries (
        ori_addr   TEXT NOT NULL,
        dest_addr  TEXT NOT NULL,
        msg_id     TEXT NOT NULL,
        reported   INTEGER NOT NULL DEFAULT 0,
        expires_at REAL NOT NULL,
        PRIMARY KEY (ori_addr, dest_addr, msg_id)
    )
    """,
    "CREATE INDEX IF NOT EXISTS msgin5g_deliveries_by_expiry ON msgin5g_deliveries (expires_at)",
)

ITEM_COLUMNS = "delivery_id, recipient, document, report_requested, expires_at, fetched"


@dataclasses.dataclass(frozen=True)
class QueuedItem:
    """A MSG or IMDN document queued for the UE service ID `recipient`."""

    delivery_id: str
    recipient: str
    document: dict[str, Any]
    expires_at: datetime
    # A MSG whose originator asked for a delivery report (delivStReqInd).
    report_requested: bool = False
    # True once an INBOX response carried the item.
    fetched: bool = False

    @property
    def message_type(self) -> MessageType:
        return MessageType(self.document["messageType"])

    @property
    def ori_addr(self) -> str:
        return self.document["oriAddr"]

    @property
    def msg_id(self) -> str:
        return self.document["msgId"]

    def to_inbox_item(self) -> InboxItem:
        return InboxItem(self.delivery_id, self.recipient, self.document)


@dataclasses.dataclass(frozen=True)
class FetchResult:
    """Items of one fetch, oldest first."""

    items: list[QueuedItem]
    # More items are queued than this fetch returned.
    more: bool
    # Items skipped because each alone exceeds the size budget.
    oversized: int = 0


def encoded_size(item: QueuedItem) -> int:
    """Return the octets that the item adds to an INBOX response body (its JSON and a comma)."""
    return len(json.dumps(item.to_inbox_item().to_json(), separators=(",", ":")).encode("utf-8")) + 1


class EnqueueResult(enum.Enum):
    QUEUED = "queued"
    # The recipient already has `max_queued` items.
    STORE_FULL = "store full"
    # The originator used this msgId before.
    DUPLICATE = "duplicate"


class MessageStore(ABC):
    """Queued items, msgId claims and delivery records; call `open()` before use."""

    @abstractmethod
    async def open(self) -> Self:
        """Connect to the backend and create what it needs; return the store."""

    @abstractmethod
    async def close(self) -> None:
        """Release the backend connection."""

    @abstractmethod
    async def enqueue(
        self, item: QueuedItem, *, max_queued: int | None, claim_until: datetime | None = None
    ) -> EnqueueResult:
        """Queue `item` unless its recipient has `max_queued` items (None: no limit).

        With `claim_until`, also claim the item's (oriAddr, msgId) until then, in
        the same transaction: a claimed pair gives DUPLICATE and queues nothing.
        """

    @abstractmethod
    async def message_id_used(self, ori_addr: str, msg_id: str) -> bool:
        """Return whether the originator's msgId is claimed."""

    @abstractmethod
    async def fetch(
        self,
        recipients: Iterable[str],
        max_items: int,
        *,
        record_until: datetime,
        max_octets: int | None = None,
    ) -> FetchResult:
        """Return the oldest unexpired items for `recipients`, at most `max_items`.

        With `max_octets`, the items' `encoded_size` sum stays within it: the
        fetch stops before the first item that does not fit, and skips an item
        that alone exceeds it. Marks the returned items fetched, and records
        each MSG among them as delivered until `record_until`.
        """

    @abstractmethod
    async def ack(self, recipients: Iterable[str], delivery_ids: Iterable[str]) -> int:
        """Remove the items with these ids that are queued for `recipients`; return how many."""

    @abstractmethod
    async def was_delivered(self, ori_addr: str, dest_addr: str, msg_id: str) -> bool:
        """Return whether a fetch returned the MSG (ori_addr -> dest_addr, msg_id) to dest_addr."""

    @abstractmethod
    async def was_reported(self, ori_addr: str, dest_addr: str, msg_id: str) -> bool:
        """Return whether dest_addr already reported the delivery of that MSG."""

    @abstractmethod
    async def mark_reported(self, ori_addr: str, dest_addr: str, msg_id: str) -> None:
        """Record that dest_addr reported the delivery of that MSG."""

    @abstractmethod
    async def expire(self, now: datetime) -> list[QueuedItem]:
        """Remove and return the items that expired at `now`; drop expired claims and records."""

    @abstractmethod
    async def count(self, recipient: str) -> int:
        """Return the number of items queued for `recipient`."""


def _timestamp(moment: datetime) -> float:
    return moment.timestamp()


def _item_from_row(row: tuple) -> QueuedItem:
    delivery_id, recipient, document, report_requested, expires_at, fetched = row
    return QueuedItem(
        delivery_id=delivery_id,
        recipient=recipient,
        document=json.loads(document),
        expires_at=datetime.fromtimestamp(expires_at, UTC),
        report_requested=bool(report_requested),
        fetched=bool(fetched),
    )


def _placeholders(values: list[str]) -> str:
    return ", ".join("?" for _ in values)


class SqliteMessageStore(MessageStore):
    """Items in the SQLite file at `path`, next to the registrations."""

    def __init__(self, path: Path | str) -> None:
        self._database = SqliteDatabase(path)

    async def open(self) -> Self:
        await self._database.open()

        def create(connection: sqlite3.Connection) -> None:
            for statement in SCHEMA:
                connection.execute(statement)

        await self._database.run(create)
        return self

    async def close(self) -> None:
        await self._database.close()

    async def enqueue(
        self, item: QueuedItem, *, max_queued: int | None, claim_until: datetime | None = None
    ) -> EnqueueResult:
        def insert(connection: sqlite3.Connection) -> EnqueueResult:
            with transaction(connection):
                if max_queued is not None and _count(connection, item.recipient) >= max_queued:
                    return EnqueueResult.STORE_FULL
                if claim_until is not None and not _claim(connection, item, claim_until):
                    return EnqueueResult.DUPLICATE
                connection.execute(
                    "INSERT INTO msgin5g_inbox (delivery_id, recipient, message_type, ori_addr,"
                    " msg_id, document, report_requested, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        item.delivery_id,
                        item.recipient,
                        str(item.message_type),
                        item.ori_addr,
                        item.msg_id,
                        json.dumps(item.document, separators=(",", ":")),
                        int(item.report_requested),
                        _timestamp(item.expires_at),
                    ),
                )
            return EnqueueResult.QUEUED

        return await self._database.run(insert)

    async def message_id_used(self, ori_addr: str, msg_id: str) -> bool:
        def select(connection: sqlite3.Connection) -> bool:
            row = connection.execute(
                "SELECT 1 FROM msgin5g_message_ids WHERE ori_addr = ? AND msg_id = ?", (ori_addr, msg_id)
            ).fetchone()
            return row is not None

        return await self._database.run(select)

    async def fetch(
        self,
        recipients: Iterable[str],
        max_items: int,
        *,
        record_until: datetime,
        max_octets: int | None = None,
    ) -> FetchResult:
        requested = list(recipients)
        if not requested:
            return FetchResult([], False)
        now = _timestamp(datetime.now(UTC))

        def select(connection: sqlite3.Connection) -> FetchResult:
            with transaction(connection):
                rows = connection.execute(
                    f"SELECT {ITEM_COLUMNS} FROM msgin5g_inbox"
                    f" WHERE recipient IN ({_placeholders(requested)}) AND expires_at > ?"
                    " ORDER BY sequence",
                    (*requested, now),
                )
                result = _take_items(map(_item_from_row, rows), max_items, max_octets)
                for item in result.items:
                    _record_fetch(connection, item, _timestamp(record_until))
            return result

        return await self._database.run(select)

    async def ack(self, recipients: Iterable[str], delivery_ids: Iterable[str]) -> int:
        scope = list(recipients)
        ids = list(delivery_ids)
        if not scope or not ids:
            return 0

        def delete(connection: sqlite3.Connection) -> int:
            cursor = connection.execute(
                f"DELETE FROM msgin5g_inbox WHERE delivery_id IN ({_placeholders(ids)})"
                f" AND recipient IN ({_placeholders(scope)})",
                (*ids, *scope),
            )
            return cursor.rowcount

        return await self._database.run(delete)

    async def was_delivered(self, ori_addr: str, dest_addr: str, msg_id: str) -> bool:
        return await self._delivery_flag(ori_addr, dest_addr, msg_id, "1")

    async def was_reported(self, ori_addr: str, dest_addr: str, msg_id: str) -> bool:
        return await self._delivery_flag(ori_addr, dest_addr, msg_id, "reported")

    async def _delivery_flag(self, ori_addr: str, dest_addr: str, msg_id: str, column: str) -> bool:
        def select(connection: sqlite3.Connection) -> bool:
            row = connection.execute(
                f"SELECT {column} FROM msgin5g_deliveries"
                " WHERE ori_addr = ? AND dest_addr = ? AND msg_id = ?",
                (ori_addr, dest_addr, msg_id),
            ).fetchone()
            return row is not None and bool(row[0])

        return await self._database.run(select)

    async def mark_reported(self, ori_addr: str, dest_addr: str, msg_id: str) -> None:
        def update(connection: sqlite3.Connection) -> None:
            connection.execute(
                "UPDATE msgin5g_deliveries SET reported = 1"
                " WHERE ori_addr = ? AND dest_addr = ? AND msg_id = ?",
                (ori_addr, dest_addr, msg_id),
            )

        await self._database.run(update)

    async def expire(self, now: datetime) -> list[QueuedItem]:
        moment = _timestamp(now)

        def delete(connection: sqlite3.Connection) -> list[QueuedItem]:
            with transaction(connection):
                rows = connection.execute(
                    f"DELETE FROM msgin5g_inbox WHERE expires_at <= ? RETURNING {ITEM_COLUMNS}", (moment,)
                ).fetchall()
                connection.execute("DELETE FROM msgin5g_message_ids WHERE expires_at <= ?", (moment,))
                connection.execute("DELETE FROM msgin5g_deliveries WHERE expires_at <= ?", (moment,))
            return [_item_from_row(row) for row in rows]

        return await self._database.run(delete)

    async def count(self, recipient: str) -> int:
        return await self._database.run(lambda connection: _count(connection, recipient))


def _take_items(candidates: Iterable[QueuedItem], max_items: int, max_octets: int | None) -> FetchResult:
    """Take items in order until `max_items` or the size budget is reached."""
    items: list[QueuedItem] = []
    used = 0
    oversized = 0
    for item in candidates:
        if len(items) == max_items:
            return FetchResult(items, True, oversized)
        size = encoded_size(item) if max_octets is not None else 0
        if max_octets is not None and size > max_octets:
            oversized += 1
            continue
        if max_octets is not None and used + size > max_octets:
            return FetchResult(items, True, oversized)
        items.append(item)
        used += size
    return FetchResult(items, False, oversized)


def _count(connection: sqlite3.Connection, recipient: str) -> int:
    row = connection.execute("SELECT COUNT(*) FROM msgin5g_inbox WHERE recipient = ?", (recipient,)).fetchone()
    return int(row[0])


def _claim(connection: sqlite3.Connection, item: QueuedItem, claim_until: datetime) -> bool:
    """Claim the item's (oriAddr, msgId); return False if it is claimed already."""
    cursor = connection.execute(
        "INSERT INTO msgin5g_message_ids (ori_addr, msg_id, expires_at) VALUES (?, ?, ?)"
        " ON CONFLICT (ori_addr, msg_id) DO NOTHING",
        (item.ori_addr, item.msg_id, _timestamp(claim_until)),
    )
    return cursor.rowcount > 0


def _record_fetch(connection: sqlite3.Connection, item: QueuedItem, record_until: float) -> None:
    connection.execute("UPDATE msgin5g_inbox SET fetched = 1 WHERE delivery_id = ?", (item.delivery_id,))
    if item.message_type is not MessageType.MSG:
        return
    connection.execute(
        "INSERT INTO msgin5g_deliveries (ori_addr, dest_addr, msg_id, expires_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (ori_addr, dest_addr, msg_id) DO UPDATE SET"
        " expires_at = MAX(expires_at, excluded.expires_at)",
        (item.ori_addr, item.recipient, item.msg_id, record_until),
    )
