"""UE service ID to UE ID associations held by the SEAL CM server.

A UE service ID identifies one MSGin5G UE in the service (TS 23.554 clause
8.2.1), so it maps to exactly one UE ID (SUPI or GPSI). One UE ID may have
several UE service IDs, e.g. a Gateway UE registering for constrained UEs.
The provisioning tool writes the table with `create_tables` and
`upsert_association`.
"""

import sqlite3
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from msgin5g.store.sqlite import SqliteDatabase, transaction

CREATE_TABLES = (
    """
    CREATE TABLE IF NOT EXISTS cm_associations (
        ue_service_id TEXT PRIMARY KEY,
        ue_id TEXT NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS cm_associations_by_ue_id ON cm_associations (ue_id)",
)


@dataclass(frozen=True)
class Association:
    ue_service_id: str
    ue_id: str


class AssociationStore(ABC):
    @abstractmethod
    async def find_by_ue_id(self, ue_id: str) -> list[Association]:
        """Return the associations of a UE ID, ordered by UE service ID."""

    @abstractmethod
    async def find_by_ue_service_id(self, ue_service_id: str) -> list[Association]:
        """Return the association of a UE service ID (an empty list when it has none)."""

    @abstractmethod
    async def close(self) -> None:
        """Release the backend connection."""


def create_tables(connection: sqlite3.Connection) -> None:
    for statement in CREATE_TABLES:
        connection.execute(statement)


def create_tables_in_transaction(connection: sqlite3.Connection) -> None:
    with transaction(connection):
        create_tables(connection)


def upsert_association(connection: sqlite3.Connection, association: Association) -> None:
    """Insert an association, or point an existing UE service ID at a new UE ID."""
    connection.execute(
        "INSERT INTO cm_associations (ue_service_id, ue_id) VALUES (?, ?) "
        "ON CONFLICT (ue_service_id) DO UPDATE SET ue_id = excluded.ue_id",
        (association.ue_service_id, association.ue_id),
    )


class SqliteAssociationStore(AssociationStore):
    def __init__(self, database: SqliteDatabase) -> None:
        self._database = database

    @classmethod
    async def open(cls, path: Path | str) -> "SqliteAssociationStore":
        database = await SqliteDatabase(path).open()
        await database.run(create_tables_in_transaction)
        return cls(database)

    async def find_by_ue_id(self, ue_id: str) -> list[Association]:
        return await self._select("ue_id", ue_id)

    async def find_by_ue_service_id(self, ue_service_id: str) -> list[Association]:
        return await self._select("ue_service_id", ue_service_id)

    async def _select(self, column: str, value: str) -> list[Association]:
        def query(connection: sqlite3.Connection) -> list[Association]:
            rows = connection.execute(
                f"SELECT ue_service_id, ue_id FROM cm_associations WHERE {column} = ? "
                "ORDER BY ue_service_id",
                (value,),
            ).fetchall()
            return [Association(*row) for row in rows]

        return await self._database.run(query)

    async def close(self) -> None:
        await self._database.close()
