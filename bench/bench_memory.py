"""Measure the storage cost of one AKMA context at 1M contexts, in SQLite and in Redis.

Subject: bytes per stored context. Reference: the raw size of the context's
fields, from the values actually stored: the A-KID (UTF-8 octets of
`rid<RID>.atid<base64url(A-TID)>@5gc.mnc<MNC>.mcc<MCC>.3gppnetwork.org`),
the SUPI (`imsi-` and 15 digits), K_AKMA (32 octets) and the expiry
(8 octets, a float64 POSIX time). The UE ID column of the SQLite table is
a copy of the SUPI (or GPSI), so it is not counted again.

`ratio` is raw bytes / stored bytes, so that, as in every other row, a
higher ratio is better and a ratio at or above `goal` meets it. The goal
"stored size at most 4 times the raw size" is `goal` 0.25.
`extra.stored_over_raw` gives the same figure the other way up.

SQLite: the rows go into the AAnF's own table (`msgin5g.nf.aanf.store`
schema, connection settings of `msgin5g.store.sqlite.connect`) in one
transaction; the figure is the database file after a WAL checkpoint, and the
`dbstat` page statistics split it into the table and its two indexes.
NOTE: the rows are inserted with one INSERT each, not through
`SqliteAkmaContextStore.register`, because that method first deletes
expired rows with a full table scan, which makes 1M registrations quadratic.

Redis: a redis-server started here (no persistence) on a free loopback port;
the figure is the growth of INFO used_memory per context, written through
`msgin5g.nf.aanf.redis_store.RedisAkmaContextStore.register` (its real key
layout) when that module exists, else through an equivalent layout written
here (see `_write_fallback_layout`).
"""

import argparse
import asyncio
import json
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

from msgin5g.crypto.akma import format_a_kid  # noqa: E402
from msgin5g.nf.aanf import store as aanf_store  # noqa: E402
from msgin5g.store.sqlite import connect, transaction  # noqa: E402

MCC, MNC, ROUTING_INDICATOR = "001", "01", "0"
SUPI_PREFIX = "imsi-00101"
K_AKMA_OCTETS = 32
EXPIRY_OCTETS = 8
CONTEXT_LIFETIME_SECONDS = 86_400
BATCH = 10_000
REDIS_KEY_PREFIX = "msgin5g"
STORE_CONCURRENCY = 64


@dataclass(frozen=True)
class Context:
    a_kid: str
    supi: str
    k_akma: bytes
    expires_at: float


def contexts(count: int, now: float) -> Iterator[Context]:
    """Yield `count` contexts with random A-TIDs and K_AKMA and distinct SUPIs."""
    for number in range(1, count + 1):
        yield Context(
            a_kid=format_a_kid(ROUTING_INDICATOR, os.urandom(32), MCC, MNC),
            supi=f"{SUPI_PREFIX}{number:010d}",
            k_akma=os.urandom(K_AKMA_OCTETS),
            expires_at=now + CONTEXT_LIFETIME_SECONDS,
        )


def raw_size(context: Context) -> int:
    """Return the octets of the context's fields without any storage overhead."""
    return len(context.a_kid.encode()) + len(context.supi.encode()) + len(context.k_akma) + EXPIRY_OCTETS


def batches(count: int, now: float) -> Iterator[list[Context]]:
    batch: list[Context] = []
    for context in contexts(count, now):
        batch.append(context)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


# --- SQLite -----------------------------------------------------------------


def measure_sqlite(count: int, folder: Path) -> dict:
    """Insert `count` contexts into the AAnF table; return bytes per context and raw bytes."""
    path = folder / "aanf-memory.sqlite3"
    connection = connect(path)
    aanf_store.create_tables(connection)
    empty_bytes = _database_bytes(connection)

    raw_total = 0
    started = time.perf_counter()
    with transaction(connection):
        for batch in batches(count, time.time()):
            raw_total += sum(raw_size(context) for context in batch)
            connection.executemany(
                f"INSERT INTO aanf_akma_contexts (ue_id, {aanf_store.CONTEXT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                [(c.supi, c.a_kid, c.supi, None, c.k_akma, c.expires_at) for c in batch],
            )
    insert_seconds = time.perf_counter() - started

    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    total_bytes = _database_bytes(connection)
    btrees = _btree_bytes(connection)
    connection.close()

    file_bytes = path.stat().st_size
    return {
        "bytes_per_context": (file_bytes - empty_bytes) / count,
        "raw_bytes_per_context": raw_total / count,
        "file_bytes": file_bytes,
        "page_bytes": total_bytes,
        "btree_bytes_per_context": {name: size / count for name, size in btrees.items()},
        "insert_seconds": insert_seconds,
    }


def _database_bytes(connection: sqlite3.Connection) -> int:
    page_count = connection.execute("PRAGMA page_count").fetchone()[0]
    page_size = connection.execute("PRAGMA page_size").fetchone()[0]
    return page_count * page_size


def _btree_bytes(connection: sqlite3.Connection) -> dict[str, int]:
    """Return the bytes of each table and index b-tree (the dbstat virtual table)."""
    try:
        rows = connection.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall()
    except sqlite3.OperationalError:
        return {}
    return {name: size for name, size in rows}


# --- Redis ------------------------------------------------------------------


def start_redis(folder: Path):
    """Start redis-server without persistence on a free loopback port; return it and the port."""
    port = common.free_port()
    process, _ = common.start_process([
        "redis-server", "--port", str(port), "--bind", common.LOOPBACK, "--save", "", "--appendonly", "no",
        "--dir", str(folder), "--logfile", str(folder / "redis.log"),
    ])
    try:
        common.wait_for_port(port)
    except BaseException:
        common.stop_process(process)
        raise
    return process, port


async def measure_redis(count: int, port: int) -> dict:
    """Store `count` contexts in Redis; return used_memory growth per context and the layout used."""
    from redis.asyncio import Redis

    client = Redis(host=common.LOOPBACK, port=port)
    try:
        await client.flushall()
        before = (await client.info("memory"))["used_memory"]
        store = await _redis_context_store(port)

        raw_total = 0
        started = time.perf_counter()
        for batch in batches(count, time.time()):
            raw_total += sum(raw_size(context) for context in batch)
            if store is not None:
                await _register_through_store(store, batch)
            else:
                await _write_fallback_layout(client, batch)
        insert_seconds = time.perf_counter() - started

        # The store's pooled connections hold client buffers that used_memory
        # counts, so they are closed before the second reading.
        if store is not None:
            await store.close()
        after = (await client.info("memory"))["used_memory"]
        sample_key = (await client.randomkey()).decode()
        layout = await _describe_layout(client, sample_key)
        keys = await client.dbsize()
    finally:
        await client.aclose()

    return {
        "bytes_per_context": (after - before) / count,
        "raw_bytes_per_context": raw_total / count,
        "used_memory_delta": after - before,
        "keys": keys,
        "insert_seconds": insert_seconds,
        "layout": layout,
        "measured_through": "RedisAkmaContextStore.register" if store is not None else "fallback layout (see notes)",
    }


async def _redis_context_store(port: int):
    """Open the project's Redis AKMA context store when it exists, else return None."""
    try:
        from msgin5g.nf.aanf.redis_store import RedisAkmaContextStore as store_class
    except ImportError:
        store_class = getattr(aanf_store, "RedisAkmaContextStore", None)
    if store_class is None:
        return None

    from msgin5g.store.redis import RedisConnection, StoreSelection

    connection = await RedisConnection.open(
        StoreSelection(backend="redis", url=f"redis://{common.LOOPBACK}:{port}/0")
    )
    return store_class(connection)


async def _register_through_store(store, batch: list[Context]) -> None:
    """Register a batch with STORE_CONCURRENCY calls in flight, so that Redis stays busy.

    The store sends each registration as a pipeline and one more command, so
    concurrent calls (over the client's connection pool) stand in for a
    pipeline across contexts.
    """
    now = time.time()
    slots = asyncio.Semaphore(STORE_CONCURRENCY)

    async def register(context: Context) -> None:
        async with slots:
            await store.register(
                aanf_store.AkmaContext(context.a_kid, context.supi, None, context.k_akma, context.expires_at), now
            )

    await asyncio.gather(*(register(context) for context in batch))


async def _write_fallback_layout(client, batch: list[Context]) -> None:
    """Write one hash per A-KID with a TTL, and a UE ID -> A-KID index key, in one pipeline.

    NOTE: this layout copies the one of `msgin5g.nf.aanf.redis_store` (a
    context hash per A-KID and a UE key naming the latest A-KID). It is used
    only when that module is missing, so its figure can drift from the store's.
    """
    async with client.pipeline(transaction=False) as pipe:
        for c in batch:
            context_key = f"{REDIS_KEY_PREFIX}:aanf:ctx:{{{c.a_kid}}}"
            index_key = f"{REDIS_KEY_PREFIX}:aanf:ue:{{{c.supi}}}"
            pipe.hset(context_key, mapping={"supi": c.supi, "k_akma": c.k_akma, "expires_at": repr(c.expires_at)})
            pipe.expire(context_key, CONTEXT_LIFETIME_SECONDS)
            pipe.set(index_key, c.a_kid, ex=CONTEXT_LIFETIME_SECONDS)
        await pipe.execute()


async def _describe_layout(client, key: str) -> dict:
    kind = (await client.type(key)).decode()
    return {
        "sample_key_pattern": key.split("{")[0] + "{...}",
        "sample_type": kind,
        "sample_encoding": (await client.object("encoding", key) or b"").decode() if kind else None,
        "sample_memory_usage": await client.memory_usage(key),
        "sample_ttl": await client.ttl(key),
    }


# --- the rows -----------------------------------------------------------------


def run(quick: bool) -> list[dict]:
    """Return one row for SQLite and one for Redis: stored bytes per context vs raw bytes."""
    count = 10_000 if quick else 1_000_000
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as folder:
        sqlite_figures = measure_sqlite(count, Path(folder))
        rows.append(_row("aanf_context_bytes_sqlite", "SQLite", count, sqlite_figures))

        redis, port = start_redis(Path(folder))
        try:
            redis_figures = asyncio.run(measure_redis(count, port))
        finally:
            common.stop_process(redis)
        rows.append(_row("aanf_context_bytes_redis", "Redis (used_memory)", count, redis_figures))
    return rows


def _row(name: str, backend: str, count: int, figures: dict) -> dict:
    stored, raw = figures["bytes_per_context"], figures["raw_bytes_per_context"]
    extra = {
        "contexts": count,
        "ratio_meaning": "raw bytes of the fields / stored bytes per context (goal 0.25: stored <= 4x raw)",
        "stored_over_raw": stored / raw,
        "raw_fields": "A-KID + SUPI + K_AKMA (32) + expiry (8)",
        **figures,
    }
    row = common.make_row(
        name,
        subject=f"{backend} bytes per AKMA context at {count} contexts",
        reference="raw bytes of the context's fields",
        samples=[stored],
        reference_samples=[raw],
        goal=0.25,
        extra=extra,
        unit="bytes/context",
    )
    row["ratio"] = raw / stored
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="store 10k contexts instead of 1M")
    args = parser.parse_args()
    print(json.dumps(run(args.quick), indent=2))


if __name__ == "__main__":
    main()
