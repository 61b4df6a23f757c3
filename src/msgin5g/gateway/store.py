"""The gateway's SQLite file: per-device queues, pending delivery reports, registrations.

- `gateway_queue`: one row per item fetched from the upstream inbox, keyed by
  the server's deliveryId, for the device whose UE service ID it names. A row
  stays `queued` until the device acknowledges it, then `acked`. Acked rows
  are kept for ACKED_RETENTION so that an item the server delivers again
  (its ack got lost) is recognized and not queued twice.
- `gateway_reports`: IMDN documents that still have to reach the server; a
  device's ack writes them in the same transaction as the ack.
- `gateway_registrations`: the devices that the server registered through
  this gateway; a device must be in it before its messages are relayed.
"""

import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from msgin5g.store.sqlite import SqliteDatabase, transaction

SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS gateway_queue (
        delivery_id TEXT PRIMARY KEY,
        device_id   TEXT NOT NULL,
        message     TEXT NOT NULL,
        state       TEXT NOT NULL DEFAULT 'queued',
        received_at TEXT NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS gateway_queue_device ON gateway_queue (device_id, state)",
    """
    CREATE TABLE IF NOT EXISTS gateway_reports (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        report     TEXT NOT NULL,
        created_at TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS gateway_registrations (
        device_id     TEXT PRIMARY KEY,
        ue_service_id TEXT NOT NULL,
        registered_at TEXT NOT NULL
    )
    """,
)

QUEUED = "queued"
ACKED = "acked"
# NOTE: a server that delivers an item again more than this long after the
# device acknowledged it would have it queued a second time.
ACKED_RETENTION = timedelta(days=1)

# Builds the IMDN to send for an acknowledged item, or None when none is requested.
ReportBuilder = Callable[[dict[str, Any]], dict[str, Any] | None]


def _now() -> str:
    return datetime.now(UTC).isoformat()


class GatewayStore:
    """The gateway's tables in the SQLite file at `path`; call `open()` before use."""

    def __init__(self, path: Path | str) -> None:
        self._database = SqliteDatabase(path)

    async def open(self) -> "GatewayStore":
        await self._database.open()

        def create(connection: sqlite3.Connection) -> None:
            for statement in SCHEMA:
                connection.execute(statement)

        await self._database.run(create)
        return self

    async def close(self) -> None:
        await self._database.close()

    # Queue

    async def enqueue(self, items: list[tuple[str, str, dict[str, Any]]]) -> int:
        """Store (delivery_id, device_id, message) items; return how many were new.

        An item whose delivery ID is already stored (queued or acked) is skipped.
        """
        now = _now()

        def insert(connection: sqlite3.Connection) -> int:
            added = 0
            with transaction(connection):
                for delivery_id, device_id, message in items:
                    cursor = connection.execute(
                        "INSERT OR IGNORE INTO gateway_queue (delivery_id, device_id, message, received_at)"
                        " VALUES (?, ?, ?, ?)",
                        (delivery_id, device_id, json.dumps(message), now),
                    )
                    added += cursor.rowcount
            return added

        return await self._database.run(insert)

    async def fetch(self, device_id: str, max_items: int) -> tuple[list[tuple[str, dict[str, Any]]], bool]:
        """Return up to `max_items` queued (delivery_id, message) of a device, oldest first, and whether more wait."""

        def select(connection: sqlite3.Connection) -> list[tuple[str, str]]:
            return connection.execute(
                "SELECT delivery_id, message FROM gateway_queue WHERE device_id = ? AND state = ?"
                " ORDER BY rowid LIMIT ?",
                (device_id, QUEUED, max_items + 1),
            ).fetchall()

        rows = await self._database.run(select)
        items = [(delivery_id, json.loads(message)) for delivery_id, message in rows[:max_items]]
        return items, len(rows) > max_items

    async def acknowledge(self, device_id: str, delivery_ids: list[str], build_report: ReportBuilder) -> int:
        """Mark the device's queued items acked and store their IMDNs; return how many were acked.

        A delivery ID that is not queued for this device is ignored.
        """
        now = _now()

        def update(connection: sqlite3.Connection) -> int:
            acked = 0
            with transaction(connection):
                for delivery_id in dict.fromkeys(delivery_ids):
                    row = connection.execute(
                        "UPDATE gateway_queue SET state = ? WHERE delivery_id = ? AND device_id = ?"
                        " AND state = ? RETURNING message",
                        (ACKED, delivery_id, device_id, QUEUED),
                    ).fetchone()
                    if row is None:
                        continue
                    acked += 1
                    report = build_report(json.loads(row[0]))
                    if report is not None:
                        connection.execute(
                            "INSERT INTO gateway_reports (report, created_at) VALUES (?, ?)",
                            (json.dumps(report), now),
                        )
            return acked

        return await self._database.run(update)

    async def prune(self, now: datetime | None = None) -> int:
        """Delete acked items older than ACKED_RETENTION; return how many."""
        cutoff = ((now or datetime.now(UTC)) - ACKED_RETENTION).isoformat()

        def delete(connection: sqlite3.Connection) -> int:
            cursor = connection.execute(
                "DELETE FROM gateway_queue WHERE state = ? AND received_at < ?", (ACKED, cutoff)
            )
            return cursor.rowcount

        return await self._database.run(delete)

    async def queued_count(self, device_id: str) -> int:
        def count(connection: sqlite3.Connection) -> int:
            return connection.execute(
                "SELECT COUNT(*) FROM gateway_queue WHERE device_id = ? AND state = ?", (device_id, QUEUED)
            ).fetchone()[0]

        return await self._database.run(count)

    # Delivery reports

    async def pending_reports(self, limit: int = 100) -> list[tuple[int, dict[str, Any]]]:
        def select(connection: sqlite3.Connection) -> list[tuple[int, str]]:
            return connection.execute(
                "SELECT id, report FROM gateway_reports ORDER BY id LIMIT ?", (limit,)
            ).fetchall()

        return [(row_id, json.loads(report)) for row_id, report in await self._database.run(select)]

    async def remove_report(self, row_id: int) -> None:
        await self._database.run(
            lambda connection: connection.execute("DELETE FROM gateway_reports WHERE id = ?", (row_id,))
        )

    # Registrations

    async def set_registered(self, device_id: str, ue_service_id: str) -> None:
        await self._database.run(
            lambda connection: connection.execute(
                "INSERT INTO gateway_registrations (device_id, ue_service_id, registered_at)"
                " VALUES (?, ?, ?) ON CONFLICT (device_id) DO UPDATE SET"
                " ue_service_id = excluded.ue_service_id, registered_at = excluded.registered_at",
                (device_id, ue_service_id, _now()),
            )
        )

    async def clear_registered(self, device_id: str) -> None:
        await self._database.run(
            lambda connection: connection.execute(
                "DELETE FROM gateway_registrations WHERE device_id = ?", (device_id,)
            )
        )

    async def is_registered(self, device_id: str, ue_service_id: str) -> bool:
        def select(connection: sqlite3.Connection) -> bool:
            row = connection.execute(
                "SELECT 1 FROM gateway_registrations WHERE device_id = ? AND ue_service_id = ?",
                (device_id, ue_service_id),
            ).fetchone()
            return row is not None

        return await self._database.run(select)
