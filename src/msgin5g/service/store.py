"""Registrations of the MSGin5G Server, kept in the deployment's SQLite file.

The server owns the table `msgin5g_registrations`: one row per registered UE
service ID, with the UE ID (SUPI or GPSI) that AKMA authenticated when the UE
registered it. A DEREG removes a row only for that same UE ID.
"""

import dataclasses
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from msgin5g.store.sqlite import SqliteDatabase, transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS msgin5g_registrations (
    ue_service_id  TEXT PRIMARY KEY,
    ue_id          TEXT NOT NULL,
    client_profile TEXT,
    registered_at  TEXT NOT NULL
)
"""


@dataclasses.dataclass(frozen=True)
class Registration:
    ue_service_id: str
    ue_id: str = dataclasses.field(repr=False)  # SUPI or GPSI: personal data
    client_profile: dict[str, Any] | None
    registered_at: datetime


class RegistrationStore:
    """Registrations in the SQLite file at `path`; call `open()` before use."""

    def __init__(self, path: Path | str) -> None:
        self._database = SqliteDatabase(path)

    async def open(self) -> "RegistrationStore":
        await self._database.open()
        await self._database.run(lambda connection: connection.execute(SCHEMA))
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
                "SELECT ue_service_id, ue_id, client_profile, registered_at"
                " FROM msgin5g_registrations WHERE ue_service_id = ?",
                (ue_service_id,),
            ).fetchone()

        row = await self._database.run(select)
        if row is None:
            return None
        return Registration(
            ue_service_id=row[0],
            ue_id=row[1],
            client_profile=json.loads(row[2]) if row[2] is not None else None,
            registered_at=datetime.fromisoformat(row[3]),
        )
