"""The SQLite backend itself: connection settings, transactions, the worker thread, table checks.

The store behaviour (SQN atomicity, context lifecycles) runs on every backend
in test_store_backends.py.
"""

import os
import sqlite3
import threading

import pytest

from msgin5g.nf.udm.store import Subscriber, create_tables, next_sqn, upsert_subscriber
from msgin5g.store.sqlite import SqliteDatabase, StoreError, connect, transaction

SUPI = "imsi-001010000000001"


def test_connection_settings(tmp_path):
    connection = connect(tmp_path / "db.sqlite3")

    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert connection.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert connection.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
    connection.close()


def test_missing_folder_raises_store_error(tmp_path):
    with pytest.raises(StoreError, match="check that the folder exists"):
        connect(tmp_path / "missing-folder" / "db.sqlite3")


def test_transaction_rolls_back_on_error(tmp_path):
    connection = connect(tmp_path / "db.sqlite3")
    connection.execute("CREATE TABLE t (x INTEGER)")

    with pytest.raises(RuntimeError), transaction(connection):
        connection.execute("INSERT INTO t VALUES (1)")
        raise RuntimeError("abort")

    assert connection.execute("SELECT count(*) FROM t").fetchone()[0] == 0
    connection.close()


def test_next_sqn_increments_seq_and_clears_ind():
    assert next_sqn(0) == 32
    assert next_sqn(32 * 7 + 5) == 32 * 8
    assert next_sqn((1 << 48) - 1) == 0


async def test_database_calls_off_loop_thread(tmp_path):
    database = await SqliteDatabase(tmp_path / "db.sqlite3").open()
    try:
        loop_thread = threading.get_ident()
        worker_thread = await database.run(lambda connection: threading.get_ident())
    finally:
        await database.close()

    assert worker_thread != loop_thread


async def test_closed_database_raises_store_error(tmp_path):
    database = await SqliteDatabase(tmp_path / "db.sqlite3").open()
    await database.close()

    with pytest.raises(StoreError, match="not open"):
        await database.run(lambda connection: None)


def test_tables_reject_wrong_key_lengths(tmp_path):
    connection = connect(tmp_path / "db.sqlite3")
    create_tables(connection)

    with pytest.raises(sqlite3.IntegrityError):
        upsert_subscriber(connection, Subscriber(SUPI, None, b"short", os.urandom(16), b"\x80\x00", 0, True, "0"))
    connection.close()
