"""Record and index stay consistent under concurrent writes, on SQLite, single Redis and Redis Cluster.

On Redis, a CM association or a registration and its per-UE-ID index set
live in different cluster slots, so each write is several commands. These
tests run many writes of one UE service ID at once and then check that the
UE ID the record names lists it, and that no other UE ID does.
"""

import asyncio
from pathlib import Path

import pytest

from msgin5g.nf.cm.redis_store import open_association_store
from msgin5g.nf.cm.store import Association
from msgin5g.service.redis_store import open_registration_store
from msgin5g.store.redis import StoreSelection

UE_SERVICE_ID = "sensor-race"
UE_IDS = ("msisdn-491700000011", "msisdn-491700000012", "msisdn-491700000013")
WRITES = 60


def database(selection: StoreSelection, tmp_path: Path) -> Path | None:
    return tmp_path / "db.sqlite3" if not selection.uses_redis else None


# Only the Redis association store writes through `upsert`; provisioning writes the SQLite table directly.
@pytest.mark.parametrize("store_backend", ["redis", "redis-cluster"])
async def test_concurrent_association_moves_keep_owner_indexed(store_selection, tmp_path):
    store = await open_association_store(store_selection, database(store_selection, tmp_path))
    try:
        await asyncio.gather(
            *(store.upsert(Association(UE_SERVICE_ID, UE_IDS[n % len(UE_IDS)])) for n in range(WRITES))
        )
        [stored] = await store.find_by_ue_service_id(UE_SERVICE_ID)
        listed = {ue_id: await store.find_by_ue_id(ue_id) for ue_id in UE_IDS}
    finally:
        await store.close()

    assert [item.ue_service_id for item in listed[stored.ue_id]] == [UE_SERVICE_ID]
    assert all(items == [] for ue_id, items in listed.items() if ue_id != stored.ue_id)


async def test_concurrent_reg_and_dereg_keep_owner_indexed(store_selection, tmp_path):
    store = await open_registration_store(store_selection, database(store_selection, tmp_path))

    async def churn(ue_id: str) -> None:
        for _ in range(WRITES // 6):
            await store.register(UE_SERVICE_ID, ue_id, None)
            await store.deregister(UE_SERVICE_ID, ue_id)
        await store.register(UE_SERVICE_ID, ue_id, None)

    try:
        await asyncio.gather(*(churn(ue_id) for ue_id in UE_IDS))
        registration = await store.get(UE_SERVICE_ID)
        listed = {ue_id: await store.list_by_ue_id(ue_id) for ue_id in UE_IDS}
    finally:
        await store.close()

    assert registration is not None
    assert [item.ue_service_id for item in listed[registration.ue_id]] == [UE_SERVICE_ID]
    assert all(items == [] for ue_id, items in listed.items() if ue_id != registration.ue_id)
