"""Pending 5G AKA contexts of the AUSF, kept in the store rather than in memory.

A context lives from the AuthenticationInfo request until the SEAF confirms
RES* or the context expires. `take` removes it in the same statement that
reads it (`DELETE ... RETURNING`), so each context is confirmed at most once,
even with several AUSF processes sharing the database file.
"""

import sqlite3
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from msgin5g.store.sqlite import SqliteDatabase, transaction

CREATE_TABLES = """
CREATE TABLE IF NOT EXISTS ausf_auth_contexts (
    auth_ctx_id TEXT PRIMARY KEY,
    supi TEXT NOT NULL,
    serving_network_name TEXT NOT NULL,
    rand BLOB NOT NULL,
    xres_star BLOB NOT NULL,
    k_ausf BLOB NOT NULL,
    akma_ind INTEGER NOT NULL,
    routing_id TEXT,
    expires_at REAL NOT NULL
)
"""

# `add` deletes the expired contexts first. Without this index, that DELETE
# scans the whole table on every authentication. IF NOT EXISTS adds it to
# files created before it existed.
CREATE_EXPIRY_INDEX = (
    "CREATE INDEX IF NOT EXISTS ausf_auth_contexts_by_expiry ON ausf_auth_contexts (expires_at)"
)

CONTEXT_COLUMNS = (
    "auth_ctx_id, supi, serving_network_name, rand, xres_star, k_ausf, akma_ind, routing_id, "
    "expires_at"
)


@dataclass(frozen=True)
class AuthContext:
    """Pending 5G AKA state kept between the challenge and the RES* confirmation.

    `expires_at` is a POSIX timestamp in seconds.
    """

    auth_ctx_id: str
    supi: str
    serving_network_name: str
    rand: bytes
    xres_star: bytes = field(repr=False)
    k_ausf: bytes = field(repr=False)
    akma_ind: bool
    routing_id: str | None
    expires_at: float


class AuthContextStore(ABC):
    @abstractmethod
    async def add(self, context: AuthContext, now: float) -> None:
        """Store a new context; contexts that expired before `now` may be purged."""

    @abstractmethod
    async def take(self, auth_ctx_id: str, now: float) -> AuthContext | None:
        """Remove and return the context, or None when it is unknown or expired."""

    @abstractmethod
    async def discard(self, auth_ctx_id: str) -> bool:
        """Remove the context; return whether it existed."""

    @abstractmethod
    async def purge_supi(self, supi: str) -> int:
        """Remove every context of the SUPI; return how many there were."""

    @abstractmethod
    async def close(self) -> None:
        """Release the backend connection."""


def create_tables(connection: sqlite3.Connection) -> None:
    with transaction(connection):
        connection.execute(CREATE_TABLES)
        connection.execute(CREATE_EXPIRY_INDEX)


def context_from_row(row: tuple) -> AuthContext:
    auth_ctx_id, supi, snn, rand, xres_star, k_ausf, akma_ind, routing_id, expires_at = row
    return AuthContext(
        auth_ctx_id=auth_ctx_id,
        supi=supi,
        serving_network_name=snn,
        rand=bytes(rand),
        xres_star=bytes(xres_star),
        k_ausf=bytes(k_ausf),
        akma_ind=bool(akma_ind),
        routing_id=routing_id,
        expires_at=expires_at,
    )


class SqliteAuthContextStore(AuthContextStore):
    def __init__(self, database: SqliteDatabase) -> None:
        self._database = database

    @classmethod
    async def open(cls, path: Path | str) -> "SqliteAuthContextStore":
        database = await SqliteDatabase(path).open()
        await database.run(create_tables)
        return cls(database)

    async def add(self, context: AuthContext, now: float) -> None:
        def insert(connection: sqlite3.Connection) -> None:
            with transaction(connection):
                connection.execute("DELETE FROM ausf_auth_contexts WHERE expires_at <= ?", (now,))
                connection.execute(
                    f"INSERT INTO ausf_auth_contexts ({CONTEXT_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        context.auth_ctx_id,
                        context.supi,
                        context.serving_network_name,
                        context.rand,
                        context.xres_star,
                        context.k_ausf,
                        int(context.akma_ind),
                        context.routing_id,
                        context.expires_at,
                    ),
                )

        await self._database.run(insert)

    async def take(self, auth_ctx_id: str, now: float) -> AuthContext | None:
        def delete(connection: sqlite3.Connection) -> AuthContext | None:
            row = connection.execute(
                f"DELETE FROM ausf_auth_contexts WHERE auth_ctx_id = ? RETURNING {CONTEXT_COLUMNS}",
                (auth_ctx_id,),
            ).fetchone()
            if row is None:
                return None
            context = context_from_row(row)
            return context if context.expires_at > now else None

        return await self._database.run(delete)

    async def discard(self, auth_ctx_id: str) -> bool:
        def delete(connection: sqlite3.Connection) -> bool:
            cursor = connection.execute(
                "DELETE FROM ausf_auth_contexts WHERE auth_ctx_id = ?", (auth_ctx_id,)
            )
            return cursor.rowcount > 0

        return await self._database.run(delete)

    async def purge_supi(self, supi: str) -> int:
        def delete(connection: sqlite3.Connection) -> int:
            with transaction(connection):
                cursor = connection.execute(
                    "DELETE FROM ausf_auth_contexts WHERE supi = ?", (supi,)
                )
                return cursor.rowcount

        return await self._database.run(delete)

    async def close(self) -> None:
        await self._database.close()
