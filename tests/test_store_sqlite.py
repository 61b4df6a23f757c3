"""The SQLite store: connection settings, cross-process SQN atomicity, context lifecycles."""

import asyncio
import multiprocessing
import os
import sqlite3
import threading
import time
from concurrent.futures import ProcessPoolExecutor

import pytest

from msgin5g.nf.aanf.store import AkmaContext, SqliteAkmaContextStore
from msgin5g.nf.ausf.store import AuthContext, SqliteAuthContextStore
from msgin5g.nf.udm.store import (
    SqliteSubscriberStore,
    Subscriber,
    create_tables,
    next_sqn,
    upsert_subscriber,
)
from msgin5g.store.sqlite import SqliteDatabase, StoreError, connect, transaction

SUPI = "imsi-001010000000001"
PROCESSES = 4
ADVANCES_PER_PROCESS = 25


def subscriber(sqn: int = 0) -> Subscriber:
    return Subscriber(
        supi=SUPI,
        gpsi=None,
        k=os.urandom(16),
        opc=os.urandom(16),
        amf=bytes.fromhex("8000"),
        sqn=sqn,
        akma_allowed=True,
        routing_indicator="0",
    )


def provision_one(path, sqn: int = 0) -> None:
    connection = connect(path)
    with transaction(connection):
        create_tables(connection)
        upsert_subscriber(connection, subscriber(sqn))
    connection.close()


def advance_in_another_process(path: str, count: int) -> list[int]:
    """Run in a child process: advance the SQN `count` times, return the SQNs handed out."""

    async def advance() -> list[int]:
        store = await SqliteSubscriberStore.open(path)
        try:
            return [(await store.advance_sqn(SUPI)).sqn for _ in range(count)]
        finally:
            await store.close()

    return asyncio.run(advance())


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


def test_sqn_is_atomic_across_processes(tmp_path):
    path = tmp_path / "db.sqlite3"
    provision_one(path)

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=PROCESSES, mp_context=context) as pool:
        futures = [pool.submit(advance_in_another_process, str(path), ADVANCES_PER_PROCESS) for _ in range(PROCESSES)]
        sqns = [sqn for future in futures for sqn in future.result(timeout=60)]

    total = PROCESSES * ADVANCES_PER_PROCESS
    assert sorted(sqns) == [32 * step for step in range(1, total + 1)]


async def test_advance_sqn_unknown_supi(tmp_path):
    provision_one(tmp_path / "db.sqlite3")
    store = await SqliteSubscriberStore.open(tmp_path / "db.sqlite3")
    try:
        assert await store.advance_sqn("imsi-001019999999999") is None
    finally:
        await store.close()


async def test_resynchronize_sqn_after_sqn_ms(tmp_path):
    provision_one(tmp_path / "db.sqlite3", sqn=32 * 900)
    store = await SqliteSubscriberStore.open(tmp_path / "db.sqlite3")
    try:
        resynchronized = await store.resynchronize_sqn(SUPI, 32 * 40 + 9)
    finally:
        await store.close()

    assert resynchronized.sqn == 32 * 41


def auth_context(auth_ctx_id: str, expires_at: float) -> AuthContext:
    return AuthContext(
        auth_ctx_id=auth_ctx_id,
        supi=SUPI,
        serving_network_name="5G:mnc001.mcc001.3gppnetwork.org",
        rand=os.urandom(16),
        xres_star=os.urandom(16),
        k_ausf=os.urandom(32),
        akma_ind=True,
        routing_id="0",
        expires_at=expires_at,
    )


async def test_auth_context_is_taken_once(tmp_path):
    store = await SqliteAuthContextStore.open(tmp_path / "db.sqlite3")
    now = time.time()
    try:
        await store.add(auth_context("a", now + 60), now)
        first, second = await store.take("a", now), await store.take("a", now)
    finally:
        await store.close()

    assert first is not None and first.auth_ctx_id == "a"
    assert second is None


async def test_auth_context_concurrent_takes(tmp_path):
    path = tmp_path / "db.sqlite3"
    stores = [await SqliteAuthContextStore.open(path) for _ in range(4)]
    now = time.time()
    try:
        await stores[0].add(auth_context("shared", now + 60), now)
        results = await asyncio.gather(*(store.take("shared", now) for store in stores))
    finally:
        for store in stores:
            await store.close()

    assert sum(result is not None for result in results) == 1


async def test_expired_auth_context_is_not_returned(tmp_path):
    store = await SqliteAuthContextStore.open(tmp_path / "db.sqlite3")
    now = time.time()
    try:
        await store.add(auth_context("old", now - 1), now - 10)
        assert await store.take("old", now) is None
    finally:
        await store.close()


async def test_auth_context_repr_hides_keys():
    context = auth_context("a", 0)

    assert context.k_ausf.hex() not in repr(context)
    assert context.xres_star.hex() not in repr(context)
    assert "xres_star" not in repr(context)


async def test_akma_context_of_a_ue_is_replaced(tmp_path):
    store = await SqliteAkmaContextStore.open(tmp_path / "db.sqlite3")
    now = time.time()
    try:
        await store.register(AkmaContext("old-a-kid", SUPI, None, os.urandom(32), now + 60), now)
        await store.register(AkmaContext("new-a-kid", SUPI, None, os.urandom(32), now + 60), now)
        old, new = await store.find("old-a-kid", now), await store.find("new-a-kid", now)
    finally:
        await store.close()

    assert old is None
    assert new is not None and new.supi == SUPI


async def test_akma_context_removal_result(tmp_path):
    store = await SqliteAkmaContextStore.open(tmp_path / "db.sqlite3")
    now = time.time()
    try:
        await store.register(AkmaContext("a-kid", SUPI, None, os.urandom(32), now + 60), now)
        removed, removed_again = await store.remove(SUPI), await store.remove(SUPI)
    finally:
        await store.close()

    assert (removed, removed_again) == (True, False)


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
