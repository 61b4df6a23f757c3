"""Expiry deletes of the SQLite stores go through an index, also on files created without one.

Each test creates the tables as an older release did (no expiry index), opens
the store on that file, and checks SQLite's query plan for the store's own
DELETE statement: "SEARCH ... USING INDEX" instead of "SCAN".
"""

import sqlite3
from pathlib import Path

from msgin5g.nf.aanf import store as aanf_store
from msgin5g.nf.ausf import store as ausf_store
from msgin5g.service.message_store import SCHEMA, SqliteMessageStore


def create_old_tables(path: Path, *statements: str) -> None:
    connection = sqlite3.connect(path)
    for statement in statements:
        connection.execute(statement)
    connection.commit()
    connection.close()


def query_plan(path: Path, statement: str, *parameters: object) -> str:
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute(f"EXPLAIN QUERY PLAN {statement}", parameters).fetchall()
    finally:
        connection.close()
    return " | ".join(row[-1] for row in rows)


async def test_aanf_expiry_delete_uses_index(tmp_path):
    path = tmp_path / "db.sqlite3"
    create_old_tables(path, aanf_store.CREATE_TABLES)

    store = await aanf_store.SqliteAkmaContextStore.open(path)
    await store.close()

    plan = query_plan(path, "DELETE FROM aanf_akma_contexts WHERE expires_at <= ?", 0.0)
    assert "aanf_akma_contexts_by_expiry" in plan
    assert "SCAN" not in plan


async def test_aanf_remove_uses_primary_key(tmp_path):
    path = tmp_path / "db.sqlite3"
    store = await aanf_store.SqliteAkmaContextStore.open(path)
    await store.close()

    plan = query_plan(path, "DELETE FROM aanf_akma_contexts WHERE ue_id = ? AND supi = ?", "a", "a")
    assert "SCAN" not in plan


async def test_aanf_remove_leaves_gpsi_only_context(tmp_path):
    store = await aanf_store.SqliteAkmaContextStore.open(tmp_path / "db.sqlite3")
    gpsi = "msisdn-12025550101"
    try:
        await store.register(aanf_store.AkmaContext("kid-1@example.org", None, gpsi, bytes(32), 2e9), 0.0)
        removed_by_gpsi = await store.remove(gpsi)
        remaining_context = await store.find("kid-1@example.org", 0.0)
    finally:
        await store.close()

    assert removed_by_gpsi is False
    assert remaining_context is not None


async def test_ausf_expiry_delete_uses_index(tmp_path):
    path = tmp_path / "db.sqlite3"
    create_old_tables(path, ausf_store.CREATE_TABLES)

    store = await ausf_store.SqliteAuthContextStore.open(path)
    await store.close()

    plan = query_plan(path, "DELETE FROM ausf_auth_contexts WHERE expires_at <= ?", 0.0)
    assert "ausf_auth_contexts_by_expiry" in plan
    assert "SCAN" not in plan


async def test_message_store_expiry_deletes_use_indexes(tmp_path):
    path = tmp_path / "messages.sqlite"
    tables = [statement for statement in SCHEMA if "CREATE TABLE" in statement]
    create_old_tables(path, *tables)

    store = await SqliteMessageStore(path).open()
    await store.close()

    for table in ("msgin5g_inbox", "msgin5g_message_ids", "msgin5g_deliveries"):
        plan = query_plan(path, f"DELETE FROM {table} WHERE expires_at <= ?", 0.0)
        assert f"{table}_by_expiry" in plan, table
        assert "SCAN" not in plan, table
