"""AKMA contexts of the AAnF: the latest {A-KID, K_AKMA} per UE.

TS 33.535 clause 6.1 NOTE 1a and TS 33.537 clause 4.2.2.1: when the AUSF
registers a new context for a UE, the AAnF deletes the old one, so the old
A-KID no longer yields K_AF. The table keys contexts by UE ID (the SUPI, or
the GPSI when the registration carries no SUPI) and replaces the row in one
transaction.
"""

import sqlite3
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from msgin5g.store.sqlite import SqliteDatabase, transaction

CREATE_TABLES = """
CREATE TABLE IF NOT EXISTS aanf_akma_contexts (
    ue_id TEXT PRIMARY KEY,
    a_kid TEXT NOT NULL UNIQUE,
    supi TEXT,
    gpsi TEXT,
    k_akma BLOB NOT NULL,
    expires_at REAL NOT NULL
)
"""

# `register` deletes the expired contexts first. Without this index, that DELETE
# scans the whole table on every registration. IF NOT EXISTS adds it to files
# created before it existed.
CREATE_EXPIRY_INDEX = (
    "CREATE INDEX IF NOT EXISTS aanf_akma_contexts_by_expiry ON aanf_akma_contexts (expires_at)"
)

CONTEXT_COLUMNS = "a_kid, supi, gpsi, k_akma, expires_at"


@dataclass(frozen=True)
class AkmaContext:
    """One UE's AKMA context; `expires_at` is a POSIX timestamp in seconds."""

    a_kid: str
    supi: str | None
    gpsi: str | None
    k_akma: bytes = field(repr=False)
    expires_at: float

    @property
    def ue_id(self) -> str:
        return self.supi if self.supi is not None else self.gpsi


class AkmaContextStore(ABC):
    @abstractmethod
    async def register(self, context: AkmaContext, now: float) -> None:
        """Store the context, replacing any earlier context of the same UE."""

    @abstractmethod
    async def find(self, a_kid: str, now: float) -> AkmaContext | None:
        """Return the context of this A-KID, or None when it is unknown, replaced or expired."""

    @abstractmethod
    async def remove(self, supi: str) -> bool:
        """Delete the UE's context; return whether there was one."""

    @abstractmethod
    async def close(self) -> None:
        """Release the backend connection."""


def create_tables(connection: sqlite3.Connection) -> None:
    with transaction(connection):
        connection.execute(CREATE_TABLES)
        connection.execute(CREATE_EXPIRY_INDEX)


class SqliteAkmaContextStore(AkmaContextStore):
    def __init__(self, database: SqliteDatabase) -> None:
        self._database = database

    @classmethod
    async def open(cls, path: Path | str) -> "SqliteAkmaContextStore":
        database = await SqliteDatabase(path).open()
        await database.run(create_tables)
        return cls(database)

    async def register(self, context: AkmaContext, now: float) -> None:
        def replace(connection: sqlite3.Connection) -> None:
            with transaction(connection):
                connection.execute("DELETE FROM aanf_akma_contexts WHERE expires_at <= ?", (now,))
                # An A-KID held by another UE would break the UNIQUE constraint;
                # the newer registration wins.
                connection.execute(
                    "DELETE FROM aanf_akma_contexts WHERE a_kid = ? AND ue_id != ?",
                    (context.a_kid, context.ue_id),
                )
                connection.execute(
                    f"INSERT OR REPLACE INTO aanf_akma_contexts (ue_id, {CONTEXT_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        context.ue_id,
                        context.a_kid,
                        context.supi,
                        context.gpsi,
                        context.k_akma,
                        context.expires_at,
                    ),
                )

        await self._database.run(replace)

    async def find(self, a_kid: str, now: float) -> AkmaContext | None:
        def query(connection: sqlite3.Connection) -> AkmaContext | None:
            row = connection.execute(
                f"SELECT {CONTEXT_COLUMNS} FROM aanf_akma_contexts "
                "WHERE a_kid = ? AND expires_at > ?",
                (a_kid, now),
            ).fetchone()
            if row is None:
                return None
            a_kid_value, supi, gpsi, k_akma, expires_at = row
            return AkmaContext(a_kid_value, supi, gpsi, bytes(k_akma), expires_at)

        return await self._database.run(query)

    async def remove(self, supi: str) -> bool:
        def delete(connection: sqlite3.Connection) -> bool:
            # ue_id is the SUPI whenever supi is set, so the primary key finds the row.
            cursor = connection.execute(
                "DELETE FROM aanf_akma_contexts WHERE ue_id = ? AND supi = ?", (supi, supi)
            )
            return cursor.rowcount > 0

        return await self._database.run(delete)

    async def close(self) -> None:
        await self._database.close()
