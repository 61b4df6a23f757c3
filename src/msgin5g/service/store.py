"""Registrations of the MSGin5G Server.

One registration per registered UE service ID, with the UE ID (SUPI or GPSI)
that AKMA authenticated when the UE registered it. A DEREG removes a
registration only for that same UE ID. `RegistrationStore` is the interface;
`SqliteRegistrationStore` keeps the registrations in the deployment's SQLite
file (table `msgin5g_registrations`), and `msgin5g.service.redis_store` in
Redis.
"""

import dataclasses
import json
import sqlite3
from datetime import UTC, datetime
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Self

from msgin5g.store.sqlite import SqliteDatabase, transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS msgin5g_registrations (
    ue_service_id  TEXT PRIMARY KEY,
    ue_id          TEXT NOT NULL,
    client_profile TEXT,
    registered_at  TEXT NOT NULL
)
"""
INDEX = "CREATE INDEX IF NOT EXISTS msgin5g_registrations_by_ue_id ON msgin5g_registrations (ue_id)"
COLUMNS = "ue_service_id, ue_id, client_profile, registered_at"


@dataclasses.dataclass(frozen=True)
class Registration:
    ue_service_id: str
    ue_id: str = dataclasses.field(repr=False)  # SUPI or GPSI: personal data
    client_profile: dict[str, Any] | None
    registered_at: datetime


class RegistrationStore(ABC):
    """Registrations of the server's UEs; call `open()` before use.

    `RegistrationStore(path)` builds a `SqliteRegistrationStore` on that file,
    as it did before the interface had other backends.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        if cls is RegistrationStore:
            return super().__new__(SqliteRegistrationStore)
        return super().__new__(cls)

    @abstractmethod
    async def open(self) -> Self:
        """Connect to the backend and create what it needs; return the store."""

    @abstractmethod
    async def close(self) -> None:
        """Release the backend connection."""

    @abstractmethod
    async def register(
        self, ue_service_id: str, ue_id: str, client_profile: dict[str, Any] | None
    ) -> bool:
        """Store or replace the registration; return True if the UE service ID was not registered."""

    @abstractmethod
    async def deregister(self, ue_service_id: str, ue_id: str) -> bool:
        """Delete the registration if `ue_id` made it; return True if one was deleted."""

    @abstractmethod
    async def get(self, ue_service_id: str) -> Registration | None:
        """Return the registration of the UE service ID, or None."""

    @abstractmethod
    async def list_by_ue_id(self, ue_id: str) -> list[Registration]:
        """Return the registrations that `ue_id` made, ordered by UE service ID."""


class SqliteRegistrationStore(RegistrationStore):
    """Registrations in the SQLite file at `path`."""

    def __init__(self, path: Path | str) -> None:
        self._database = SqliteDatabase(path)

    async def open(self) -> Self:
        await self._database.open()
        await self._database.run(create_tables)
        return self

    async def close(self) -> None:
        await self._database.close()

    async def register(
        self, ue_service_id: str, ue_id: str, client_profile: dict[str, Any] | None
    ) -> bool:
        """Store or replace the registration; return True if the UE service ID was not registered."""
        profile_text = json.dumps(client_profile) if client_profile is not None else None
        now = datetime.now(UTC).isoformat()

        def upsert(connection: sqlite3.Connection) -> bool:
            with transaction(connection):
                existing = connection.execute(
                    "SELECT 1 FROM msgin5g_registrations WHERE ue_service_id = ?",
                    (ue_service_id,),
                ).fetchone()
                connection.execute(
                    "INSERT INTO msgin5g_registrations"
                    " (ue_service_id, ue_id, client_profile, registered_at) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (ue_service_id) DO UPDATE SET ue_id = excluded.ue_id,"
                    " client_profile = excluded.client_profile,"
                    " registered_at = excluded.registered_at",
                    (ue_service_id, ue_id, profile_text, now),
                )
            return existing is None

        return await self._database.run(upsert)

    async def deregister(self, ue_service_id: str, ue_id: str) -> bool:
        """Delete the registration if `ue_id` made it; return True if a row was deleted."""

        def delete(connection: sqlite3.Connection) -> bool:
            cursor = connection.execute(
                "DELETE FROM msgin5g_registrations WHERE ue_service_id = ? AND ue_id = ?",
                (ue_service_id, ue_id),
            )
            return cursor.rowcount > 0

        return await self._database.run(delete)

    async def get(self, ue_service_id: str) -> Registration | None:
        def select(connection: sqlite3.Connection) -> tuple | None:
            return connection.execute(
                f"SELECT {COLUMNS} FROM msgin5g_registrations WHERE ue_service_id = ?",
                (ue_service_id,),
            ).fetchone()

        row = await self._database.run(select)
        return None if row is None else registration_from_row(row)

    async def list_by_ue_id(self, ue_id: str) -> list[Registration]:
        def select(connection: sqlite3.Connection) -> list[tuple]:
            return connection.execute(
                f"SELECT {COLUMNS} FROM msgin5g_registrations WHERE ue_id = ? ORDER BY ue_service_id",
                (ue_id,),
            ).fetchall()

        return [registration_from_row(row) for row in await self._database.run(select)]


def create_tables(connection: sqlite3.Connection) -> None:
    with transaction(connection):
        connection.execute(SCHEMA)
        connection.execute(INDEX)


def registration_from_row(row: tuple) -> Registration:
    ue_service_id, ue_id, profile_text, registered_at = row
    return Registration(
        ue_service_id=ue_service_id,
        ue_id=ue_id,
        client_profile=json.loads(profile_text) if profile_text is not None else None,
        registered_at=datetime.fromisoformat(registered_at),
    )
