"""UE service ID to UE ID associations held by the SEAL CM server.

A UE service ID identifies one MSGin5G UE in the service (TS 23.554 clause
8.2.1), so it maps to exactly one UE ID (SUPI or GPSI). One UE ID may have
several UE service IDs, e.g. a Gateway UE registering for constrained UEs.
Each association has a relation: `own` (the UE's own UE service ID) or
`gateway` (a constrained UE that the Gateway UE with that UE ID may represent,
TS 33.501 Annex Y.2). The provisioning tool writes the table with
`create_tables` and `upsert_association`.
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
        ue_id TEXT NOT NULL,
        relation TEXT NOT NULL DEFAULT 'own'
    )
    """,
    "CREATE INDEX IF NOT EXISTS cm_associations_by_ue_id ON cm_associations (ue_id)",
)
# A table created before associations had a relation gets the column, every row 'own'.
ADD_RELATION_COLUMN = (
    "ALTER TABLE cm_associations ADD COLUMN relation TEXT NOT NULL DEFAULT 'own'"
)


# The UE service ID is the UE's own.
RELATION_OWN = "own"
# The UE service ID is a constrained UE that the Gateway UE with the UE ID may represent.
RELATION_GATEWAY = "gateway"
RELATIONS = (RELATION_OWN, RELATION_GATEWAY)


@dataclass(frozen=True)
class Association:
    ue_service_id: str
    ue_id: str
    relation: str = RELATION_OWN


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
    """Create the table and index when missing, and add the relation column to an older table."""
    for statement in CREATE_TABLES:
        connection.execute(statement)

    columns = {row[1] for row in connection.execute("PRAGMA table_info(cm_associations)")}
    if "relation" not in columns:
        connection.execute(ADD_RELATION_COLUMN)


def create_tables_in_transaction(connection: sqlite3.Connection) -> None:
    with transaction(connection):
        create_tables(connection)


def upsert_association(connection: sqlite3.Connection, association: Association) -> None:
    """Insert an association, or point an existing UE service ID at a new UE ID and relation."""
    check_relation(association.relation)
    connection.execute(
        "INSERT INTO cm_associations (ue_service_id, ue_id, relation) VALUES (?, ?, ?) "
        "ON CONFLICT (ue_service_id) DO UPDATE SET ue_id = excluded.ue_id, "
        "relation = excluded.relation",
        (association.ue_service_id, association.ue_id, association.relation),
    )


def check_relation(relation: str) -> str:
    """Return `relation` if it is one of RELATIONS; raise ValueError naming it otherwise."""
    if relation not in RELATIONS:
        raise ValueError(
            f"relation {relation!r} is not valid; use {RELATION_OWN!r} (the UE's own UE service "
            f"ID) or {RELATION_GATEWAY!r} (a constrained UE behind the Gateway UE)"
        )
    return relation


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
                f"SELECT ue_service_id, ue_id, relation FROM cm_associations WHERE {column} = ? "
                "ORDER BY ue_service_id",
                (value,),
            ).fetchall()
            return [Association(*row) for row in rows]

        return await self._database.run(query)

    async def close(self) -> None:
        await self._database.close()
