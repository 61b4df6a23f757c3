"""Every store on SQLite, single Redis and Redis Cluster: the same behaviour on each.

`store_selection` (tests/redis_servers.py) runs each test once per backend,
with a key prefix of its own on the shared test servers.
"""

import asyncio
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from redis_servers import free_port

from msgin5g.nf.aanf.redis_store import open_context_store
from msgin5g.nf.aanf.store import AkmaContext
from msgin5g.nf.ausf.redis_store import open_auth_context_store
from msgin5g.nf.ausf.store import AuthContext
from msgin5g.nf.cm import store as cm_store
from msgin5g.nf.cm.redis_store import open_association_store
from msgin5g.nf.cm.store import Association
from msgin5g.nf.udm import store as udm_store
from msgin5g.nf.udm.redis_store import open_subscriber_store
from msgin5g.nf.udm.store import SQN_MAX, Subscriber
from msgin5g.service.redis_store import open_registration_store
from msgin5g.service.store import RegistrationStore, SqliteRegistrationStore
from msgin5g.store.redis import RedisConnection, StoreSelection, make_client
from msgin5g.store.sqlite import StoreError, connect, transaction

SUPI = "imsi-001010000000001"
OTHER_SUPI = "imsi-001010000000002"
GPSI = "msisdn-12025550101"
PROCESSES = 4
ADVANCES_PER_PROCESS = 25


def database(selection: StoreSelection, tmp_path: Path) -> Path | None:
    return tmp_path / "db.sqlite3" if not selection.uses_redis else None


# UDM subscribers


def subscriber(sqn: int = 0, supi: str = SUPI) -> Subscriber:
    return Subscriber(
        supi=supi,
        gpsi=GPSI,
        k=os.urandom(16),
        opc=os.urandom(16),
        amf=bytes.fromhex("8000"),
        sqn=sqn,
        akma_allowed=True,
        routing_indicator="0",
    )


async def provisioned_subscribers(selection: StoreSelection, path: Path | None, *subscribers: Subscriber):
    """Write `subscribers` the way each backend is provisioned, then open the UDM store."""
    if path is not None:
        connection = connect(path)
        with transaction(connection):
            udm_store.create_tables(connection)
            for item in subscribers:
                udm_store.upsert_subscriber(connection, item)
        connection.close()
    store = await open_subscriber_store(selection, path)
    for item in subscribers if path is None else ():
        await store.upsert(item)
    return store


def advance_in_another_process(selection: dict, path: str | None, count: int) -> list[int]:
    """Run in a child process: advance the SQN `count` times, return the SQNs handed out."""

    async def advance() -> list[int]:
        store = await open_subscriber_store(StoreSelection(**selection), path and Path(path))
        try:
            return [(await store.advance_sqn(SUPI)).sqn for _ in range(count)]
        finally:
            await store.close()

    return asyncio.run(advance())


def test_sqn_is_atomic_across_processes(store_selection, tmp_path):
    path = database(store_selection, tmp_path)
    asyncio.run(close_after(provisioned_subscribers(store_selection, path, subscriber())))

    context = multiprocessing.get_context("spawn")
    arguments = (store_selection.model_dump(), path and str(path), ADVANCES_PER_PROCESS)
    with ProcessPoolExecutor(max_workers=PROCESSES, mp_context=context) as pool:
        futures = [pool.submit(advance_in_another_process, *arguments) for _ in range(PROCESSES)]
        sqns = [sqn for future in futures for sqn in future.result(timeout=60)]

    total = PROCESSES * ADVANCES_PER_PROCESS
    assert sorted(sqns) == [32 * step for step in range(1, total + 1)]


async def close_after(opening) -> None:
    store = await opening
    await store.close()


async def test_concurrent_advances_from_two_clients(store_selection, tmp_path):
    path = database(store_selection, tmp_path)
    first = await provisioned_subscribers(store_selection, path, subscriber())
    second = await open_subscriber_store(store_selection, path)
    try:
        results = await asyncio.gather(*(store.advance_sqn(SUPI) for store in [first, second] * 25))
        final = await first.find(SUPI)
    finally:
        await first.close()
        await second.close()

    sqns = [result.sqn for result in results]
    assert len(set(sqns)) == 50
    assert sorted(sqns) == [32 * step for step in range(1, 51)]
    assert final.sqn == 32 * 50


async def test_subscriber_fields_round_trip(store_selection, tmp_path):
    provisioned = subscriber(sqn=32 * 7 + 3)
    store = await provisioned_subscribers(store_selection, database(store_selection, tmp_path), provisioned)
    try:
        found = await store.find(SUPI)
        missing = await store.find(OTHER_SUPI)
    finally:
        await store.close()

    assert found == provisioned
    assert missing is None


async def test_advance_sqn_unknown_supi(store_selection, tmp_path):
    store = await provisioned_subscribers(store_selection, database(store_selection, tmp_path), subscriber())
    try:
        assert await store.advance_sqn(OTHER_SUPI) is None
        assert await store.resynchronize_sqn(OTHER_SUPI, 32) is None
    finally:
        await store.close()


async def test_advance_sqn_wraps_at_48_bits(store_selection, tmp_path):
    store = await provisioned_subscribers(store_selection, database(store_selection, tmp_path), subscriber(SQN_MAX - 31))
    try:
        wrapped = await store.advance_sqn(SUPI)
        after = await store.advance_sqn(SUPI)
    finally:
        await store.close()

    assert wrapped.sqn == 0
    assert after.sqn == 32


async def test_resynchronize_sqn_after_sqn_ms(store_selection, tmp_path):
    store = await provisioned_subscribers(store_selection, database(store_selection, tmp_path), subscriber(32 * 900))
    try:
        resynchronized = await store.resynchronize_sqn(SUPI, 32 * 40 + 9)
        large = await store.resynchronize_sqn(SUPI, (1 << 47) + 32 * 5 + 1)
    finally:
        await store.close()

    assert resynchronized.sqn == 32 * 41
    assert resynchronized.k is not None and len(resynchronized.k) == 16
    assert large.sqn == (1 << 47) + 32 * 6


# AUSF 5G AKA contexts


def auth_context(auth_ctx_id: str, expires_at: float, supi: str = SUPI) -> AuthContext:
    return AuthContext(
        auth_ctx_id=auth_ctx_id,
        supi=supi,
        serving_network_name="5G:mnc001.mcc001.3gppnetwork.org",
        rand=os.urandom(16),
        xres_star=os.urandom(16),
        k_ausf=os.urandom(32),
        akma_ind=True,
        routing_id="0",
        expires_at=expires_at,
    )


async def test_auth_context_is_taken_once(store_selection, tmp_path):
    store = await open_auth_context_store(store_selection, database(store_selection, tmp_path))
    now = time.time()
    added = auth_context("a", now + 60)
    try:
        await store.add(added, now)
        first, second = await store.take("a", now), await store.take("a", now)
    finally:
        await store.close()

    assert first == added
    assert second is None


async def test_auth_context_concurrent_takes(store_selection, tmp_path):
    path = database(store_selection, tmp_path)
    stores = [await open_auth_context_store(store_selection, path) for _ in range(4)]
    now = time.time()
    try:
        await stores[0].add(auth_context("shared", now + 60), now)
        results = await asyncio.gather(*(store.take("shared", now) for store in stores))
    finally:
        for store in stores:
            await store.close()

    assert sum(result is not None for result in results) == 1


async def test_expired_auth_context_is_not_returned(store_selection, tmp_path):
    store = await open_auth_context_store(store_selection, database(store_selection, tmp_path))
    now = time.time()
    try:
        await store.add(auth_context("old", now - 1), now - 10)
        assert await store.take("old", now) is None
    finally:
        await store.close()


async def test_auth_context_discard(store_selection, tmp_path):
    store = await open_auth_context_store(store_selection, database(store_selection, tmp_path))
    now = time.time()
    try:
        await store.add(auth_context("a", now + 60), now)
        discarded, discarded_again = await store.discard("a"), await store.discard("a")
        taken = await store.take("a", now)
    finally:
        await store.close()

    assert (discarded, discarded_again) == (True, False)
    assert taken is None


async def test_purge_by_supi(store_selection, tmp_path):
    store = await open_auth_context_store(store_selection, database(store_selection, tmp_path))
    now = time.time()
    try:
        for auth_ctx_id in ("a1", "a2", "a3"):
            await store.add(auth_context(auth_ctx_id, now + 60), now)
        await store.add(auth_context("b1", now + 60, supi=OTHER_SUPI), now)
        await store.take("a3", now)

        purged = await store.purge_supi(SUPI)
        purged_again = await store.purge_supi(SUPI)
        left = [await store.take(auth_ctx_id, now) for auth_ctx_id in ("a1", "a2", "b1")]
    finally:
        await store.close()

    assert purged == 2
    assert purged_again == 0
    assert left[:2] == [None, None]
    assert left[2] is not None and left[2].supi == OTHER_SUPI


async def test_auth_context_repr_hides_keys():
    context = auth_context("a", 0)

    assert context.k_ausf.hex() not in repr(context)
    assert context.xres_star.hex() not in repr(context)
    assert "xres_star" not in repr(context)


# AAnF AKMA contexts


async def test_akma_context_of_a_ue_is_replaced(store_selection, tmp_path):
    store = await open_context_store(store_selection, database(store_selection, tmp_path))
    now = time.time()
    try:
        await store.register(AkmaContext("old-a-kid", SUPI, None, os.urandom(32), now + 60), now)
        await store.register(AkmaContext("new-a-kid", SUPI, None, os.urandom(32), now + 60), now)
        old, new = await store.find("old-a-kid", now), await store.find("new-a-kid", now)
    finally:
        await store.close()

    assert old is None
    assert new is not None and new.supi == SUPI


async def test_expired_registration_still_replaces(store_selection, tmp_path):
    store = await open_context_store(store_selection, database(store_selection, tmp_path))
    now = time.time()
    try:
        await store.register(AkmaContext("old-a-kid", SUPI, None, os.urandom(32), now + 60), now)
        await store.register(AkmaContext("expired-a-kid", SUPI, None, os.urandom(32), now - 1), now)
        old, expired = await store.find("old-a-kid", now), await store.find("expired-a-kid", now)
    finally:
        await store.close()

    assert old is None
    assert expired is None


async def test_akma_contexts_of_two_ues_coexist(store_selection, tmp_path):
    store = await open_context_store(store_selection, database(store_selection, tmp_path))
    now = time.time()
    first = AkmaContext("a-kid-1", SUPI, GPSI, os.urandom(32), now + 60)
    second = AkmaContext("a-kid-2", None, "msisdn-12025550102", os.urandom(32), now + 60)
    try:
        await store.register(first, now)
        await store.register(second, now)
        found = [await store.find("a-kid-1", now), await store.find("a-kid-2", now)]
    finally:
        await store.close()

    assert found == [first, second]


async def test_akma_context_a_kid_reused_by_another_ue(store_selection, tmp_path):
    store = await open_context_store(store_selection, database(store_selection, tmp_path))
    now = time.time()
    try:
        await store.register(AkmaContext("a-kid", SUPI, None, os.urandom(32), now + 60), now)
        await store.register(AkmaContext("a-kid", OTHER_SUPI, None, os.urandom(32), now + 60), now)
        removed_first = await store.remove(SUPI)
        found = await store.find("a-kid", now)
    finally:
        await store.close()

    assert removed_first is False
    assert found is not None and found.supi == OTHER_SUPI


async def test_akma_context_removal_result(store_selection, tmp_path):
    store = await open_context_store(store_selection, database(store_selection, tmp_path))
    now = time.time()
    try:
        await store.register(AkmaContext("a-kid", SUPI, None, os.urandom(32), now + 60), now)
        removed, removed_again = await store.remove(SUPI), await store.remove(SUPI)
        found = await store.find("a-kid", now)
    finally:
        await store.close()

    assert (removed, removed_again) == (True, False)
    assert found is None


async def test_akma_context_expires(store_selection, tmp_path):
    store = await open_context_store(store_selection, database(store_selection, tmp_path))
    now = time.time()
    try:
        await store.register(AkmaContext("short", SUPI, None, os.urandom(32), now + 0.3), now)
        before = await store.find("short", time.time())
        await asyncio.sleep(0.4)
        after = await store.find("short", time.time())
    finally:
        await store.close()

    assert before is not None
    assert after is None


@pytest.mark.parametrize("store_backend", ["redis", "redis-cluster"])
async def test_akma_context_ttl_is_its_lifetime(store_selection):
    """Redis itself drops the context at its expiry, whatever `now` a caller passes."""
    store = await open_context_store(store_selection, None)
    now = time.time()
    lifetime = 0.4
    try:
        await store.register(AkmaContext("a-kid", SUPI, None, os.urandom(32), now + lifetime), now)
        ttls = await key_ttls_ms(store_selection, [
            f"{store_selection.key_prefix}:aanf:ctx:{{a-kid}}",
            f"{store_selection.key_prefix}:aanf:ue:{{{SUPI}}}",
        ])
        await asyncio.sleep(lifetime + 0.1)
        found_with_old_now = await store.find("a-kid", now)
    finally:
        await store.close()

    for ttl in ttls:
        assert 0 < ttl <= lifetime * 1000
    assert found_with_old_now is None


async def key_ttls_ms(selection: StoreSelection, keys: list[str]) -> list[int]:
    """Return PTTL of each key, asking the node that stores it (a cluster node redirects)."""
    client = make_client(selection)
    try:
        return [await client.pttl(key) for key in keys]
    finally:
        await client.aclose()


# CM associations


async def open_associations(selection: StoreSelection, path: Path | None, *associations: Association):
    """Write `associations` the way each backend is provisioned, then open the CM store."""
    if path is not None:
        connection = connect(path)
        with transaction(connection):
            cm_store.create_tables(connection)
            for item in associations:
                cm_store.upsert_association(connection, item)
        connection.close()
    store = await open_association_store(selection, path)
    for item in associations if path is None else ():
        await store.upsert(item)
    return store


async def test_associations_by_ue_id(store_selection, tmp_path):
    own = Association("svc-b", SUPI)
    gateway = Association("svc-a", SUPI, relation=cm_store.RELATION_GATEWAY)
    other = Association("svc-c", OTHER_SUPI)
    store = await open_associations(store_selection, database(store_selection, tmp_path), own, gateway, other)
    try:
        by_ue_id = await store.find_by_ue_id(SUPI)
        by_service_id = await store.find_by_ue_service_id("svc-a")
        unknown = await store.find_by_ue_id("imsi-001019999999999")
    finally:
        await store.close()

    assert by_ue_id == [gateway, own]
    assert by_service_id == [gateway]
    assert by_service_id[0].relation == "gateway"
    assert unknown == []


async def test_association_moved_to_another_ue_id(store_selection, tmp_path):
    path = database(store_selection, tmp_path)
    store = await open_associations(store_selection, path, Association("svc", SUPI))
    await store.close()
    store = await open_associations(store_selection, path, Association("svc", OTHER_SUPI))
    try:
        old_owner = await store.find_by_ue_id(SUPI)
        new_owner = await store.find_by_ue_id(OTHER_SUPI)
    finally:
        await store.close()

    assert old_owner == []
    assert new_owner == [Association("svc", OTHER_SUPI)]


# MSGin5G Server registrations


async def test_registration_lifecycle(store_selection, tmp_path):
    store = await open_registration_store(store_selection, database(store_selection, tmp_path))
    try:
        created = await store.register("svc-1", SUPI, {"os": "test"})
        created_again = await store.register("svc-1", SUPI, None)
        registration = await store.get("svc-1")
        by_other_ue = await store.deregister("svc-1", OTHER_SUPI)
        by_owner = await store.deregister("svc-1", SUPI)
        after = await store.get("svc-1")
    finally:
        await store.close()

    assert (created, created_again) == (True, False)
    assert registration.ue_id == SUPI
    assert registration.client_profile is None
    assert registration.registered_at.tzinfo is not None
    assert (by_other_ue, by_owner) == (False, True)
    assert after is None


async def test_registrations_list_by_ue_id(store_selection, tmp_path):
    store = await open_registration_store(store_selection, database(store_selection, tmp_path))
    try:
        await store.register("svc-b", SUPI, {"capabilities": ["imdn"]})
        await store.register("svc-a", SUPI, None)
        await store.register("svc-c", OTHER_SUPI, None)
        await store.register("svc-moved", SUPI, None)
        await store.register("svc-moved", OTHER_SUPI, None)
        await store.register("svc-gone", SUPI, None)
        await store.deregister("svc-gone", SUPI)

        mine = await store.list_by_ue_id(SUPI)
        other = await store.list_by_ue_id(OTHER_SUPI)
        nobody = await store.list_by_ue_id("imsi-001019999999999")
    finally:
        await store.close()

    assert [registration.ue_service_id for registration in mine] == ["svc-a", "svc-b"]
    assert mine[1].client_profile == {"capabilities": ["imdn"]}
    assert [registration.ue_service_id for registration in other] == ["svc-c", "svc-moved"]
    assert nobody == []


async def test_redis_registration_store_is_a_registration_store(store_selection, tmp_path):
    store = await open_registration_store(store_selection, database(store_selection, tmp_path))
    try:
        assert isinstance(store, RegistrationStore)
    finally:
        await store.close()


async def test_registration_store_path_builds_sqlite(tmp_path):
    store = await RegistrationStore(tmp_path / "server.sqlite3").open()
    try:
        assert isinstance(store, SqliteRegistrationStore)
        assert await store.register("svc", SUPI, None) is True
    finally:
        await store.close()


async def test_redis_unreachable_names_the_address():
    selection = StoreSelection(backend="redis", url=f"redis://127.0.0.1:{free_port()}/0", timeout=1)
    with pytest.raises(StoreError, match=r"cannot connect to Redis redis://127\.0\.0\.1:\d+/0.*redis-server"):
        await RedisConnection.open(selection)

