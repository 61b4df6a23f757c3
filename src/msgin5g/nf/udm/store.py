"""Subscriber data of the UDM/ARPF: credentials, SQN, AKMA subscription.

`SubscriberStore` is what the UDM needs from a backend; `SqliteSubscriberStore`
implements it on the deployment database. The provisioning tool writes the
same table with `create_tables` and `upsert_subscriber`.

SQN handling follows TS 33.102 Annex C.3.2 with a 5-bit IND: SQN = SEQ || IND.
The stored value is the last SQN used; the next vector uses SEQ + 1 with
IND = 0. The increment is a single `UPDATE ... RETURNING` statement, so two
UDM processes sharing the file never hand out the same SQN.
"""

import sqlite3
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from msgin5g.store.sqlite import SqliteDatabase, transaction

IND_BITS = 5
SQN_MAX = (1 << 48) - 1

CREATE_TABLES = """
CREATE TABLE IF NOT EXISTS udm_subscribers (
    supi TEXT PRIMARY KEY,
    gpsi TEXT,
    k BLOB NOT NULL CHECK (length(k) = 16),
    opc BLOB NOT NULL CHECK (length(opc) = 16),
    amf BLOB NOT NULL CHECK (length(amf) = 2),
    sqn INTEGER NOT NULL CHECK (sqn BETWEEN 0 AND 281474976710655),
    akma_allowed INTEGER NOT NULL CHECK (akma_allowed IN (0, 1)),
    routing_indicator TEXT NOT NULL
)
"""

SUBSCRIBER_COLUMNS = "supi, gpsi, k, opc, amf, sqn, akma_allowed, routing_indicator"

# Both statements store (SEQ + 1) || IND=0, wrapped at 48 bits: from the
# stored SQN, or from the SQN_MS that the UE reported.
ADVANCE_SQN_SQL = (
    f"UPDATE udm_subscribers SET sqn = (((sqn >> {IND_BITS}) + 1) << {IND_BITS}) & {SQN_MAX} "
    f"WHERE supi = ? RETURNING {SUBSCRIBER_COLUMNS}"
)
RESYNCHRONIZE_SQN_SQL = (
    f"UPDATE udm_subscribers SET sqn = (((? >> {IND_BITS}) + 1) << {IND_BITS}) & {SQN_MAX} "
    f"WHERE supi = ? RETURNING {SUBSCRIBER_COLUMNS}"
)


@dataclass(frozen=True)
class Subscriber:
    """One subscriber; `sqn` is the last SQN used (a 48-bit integer)."""

    supi: str
    gpsi: str | None
    k: bytes = field(repr=False)
    opc: bytes = field(repr=False)
    amf: bytes
    sqn: int
    akma_allowed: bool
    routing_indicator: str


def next_sqn(sqn: int) -> int:
    """Return the SQN that follows `sqn`: SEQ + 1 with IND = 0 (TS 33.102 Annex C.3.2)."""
    return (((sqn >> IND_BITS) + 1) << IND_BITS) & SQN_MAX


class SubscriberStore(ABC):
    """Backend interface for the subscriber data that the UDM reads and updates."""

    @abstractmethod
    async def find(self, supi: str) -> Subscriber | None:
        """Return the subscriber, or None when the SUPI is not provisioned."""

    @abstractmethod
    async def advance_sqn(self, supi: str) -> Subscriber | None:
        """Move the subscriber to the next SQN atomically; return it with that SQN."""

    @abstractmethod
    async def resynchronize_sqn(self, supi: str, sqn_ms: int) -> Subscriber | None:
        """Set SQN_HE from the UE's SQN_MS, then advance it (TS 33.102 clause 6.3.5)."""

    @abstractmethod
    async def close(self) -> None:
        """Release the backend connection."""


def create_tables(connection: sqlite3.Connection) -> None:
    connection.execute(CREATE_TABLES)


def upsert_subscriber(connection: sqlite3.Connection, subscriber: Subscriber) -> None:
    """Insert a subscriber, or replace every field of an existing SUPI."""
    connection.execute(
        f"INSERT INTO udm_subscribers ({SUBSCRIBER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (supi) DO UPDATE SET gpsi = excluded.gpsi, k = excluded.k, "
        "opc = excluded.opc, amf = excluded.amf, sqn = excluded.sqn, "
        "akma_allowed = excluded.akma_allowed, routing_indicator = excluded.routing_indicator",
        (
            subscriber.supi,
            subscriber.gpsi,
            subscriber.k,
            subscriber.opc,
            subscriber.amf,
            subscriber.sqn,
            int(subscriber.akma_allowed),
            subscriber.routing_indicator,
        ),
    )


def subscriber_from_row(row: tuple | None) -> Subscriber | None:
    if row is None:
        return None
    supi, gpsi, k, opc, amf, sqn, akma_allowed, routing_indicator = row
    return Subscriber(
        supi=supi,
        gpsi=gpsi,
        k=bytes(k),
        opc=bytes(opc),
        amf=bytes(amf),
        sqn=sqn,
        akma_allowed=bool(akma_allowed),
        routing_indicator=routing_indicator,
    )


class SqliteSubscriberStore(SubscriberStore):
    def __init__(self, database: SqliteDatabase) -> None:
        self._database = database

    @classmethod
    async def open(cls, path: Path | str) -> "SqliteSubscriberStore":
        database = await SqliteDatabase(path).open()
        await database.run(create_tables_in_transaction)
        return cls(database)

    async def find(self, supi: str) -> Subscriber | None:
        def query(connection: sqlite3.Connection) -> Subscriber | None:
            row = connection.execute(
                f"SELECT {SUBSCRIBER_COLUMNS} FROM udm_subscribers WHERE supi = ?", (supi,)
            ).fetchone()
            return subscriber_from_row(row)

        return await self._database.run(query)

    async def advance_sqn(self, supi: str) -> Subscriber | None:
        def update(connection: sqlite3.Connection) -> Subscriber | None:
            row = connection.execute(ADVANCE_SQN_SQL, (supi,)).fetchone()
            return subscriber_from_row(row)

        return await self._database.run(update)

    async def resynchronize_sqn(self, supi: str, sqn_ms: int) -> Subscriber | None:
        def update(connection: sqlite3.Connection) -> Subscriber | None:
            row = connection.execute(RESYNCHRONIZE_SQN_SQL, (sqn_ms, supi)).fetchone()
            return subscriber_from_row(row)

        return await self._database.run(update)

    async def close(self) -> None:
        await self._database.close()


def create_tables_in_transaction(connection: sqlite3.Connection) -> None:
    with transaction(connection):
        create_tables(connection)
