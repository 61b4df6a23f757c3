"""The shared K_AF cache: two server instances share entries through Redis until expiry."""

import asyncio
from datetime import timedelta

import pytest

from af_helpers import AF_FQDN, AanfStub, k_af_for, serving, supi_for
from msgin5g.crypto.akma import UA_TLS13, af_id
from msgin5g.sbi.client import SbiClient
from msgin5g.service.kaf import AanfClient, KafCache, KafProvider
from msgin5g.service.kaf_redis import RedisKafLayer

pytestmark = pytest.mark.parametrize("store_backend", ["redis", "redis-cluster"])
AF_ID = af_id(AF_FQDN, UA_TLS13)


async def test_second_instance_reads_shared_k_af(store_selection):
    aanf = AanfStub()
    a_kid = aanf.add_ue(1)
    first_cache = KafCache(shared=await RedisKafLayer.open(store_selection))
    second_cache = KafCache(shared=await RedisKafLayer.open(store_selection))
    try:
        async with serving(aanf.app) as uri, SbiClient(uri) as sbi:
            first = KafProvider(AF_FQDN, AanfClient(sbi), first_cache)
            second = KafProvider(AF_FQDN, AanfClient(sbi), second_cache)
            obtained_first = await first.obtain(a_kid)
            looked_up_before = second.lookup(a_kid)
            obtained_second = await second.obtain(a_kid)
            looked_up_after = second.lookup(a_kid)
    finally:
        await first_cache.aclose()
        await second_cache.aclose()

    assert len(aanf.requests) == 1
    assert looked_up_before is None
    assert obtained_second.k_af == obtained_first.k_af == k_af_for(1)
    assert obtained_second.supi == supi_for(1)
    assert obtained_second.expiry == obtained_first.expiry
    assert looked_up_after is not None and looked_up_after.k_af == k_af_for(1)


async def test_shared_k_af_expires_in_redis(store_selection):
    aanf = AanfStub()
    a_kid = aanf.add_ue(2, lifetime=timedelta(seconds=0.5))
    first_cache = KafCache(shared=await RedisKafLayer.open(store_selection))
    second_cache = KafCache(shared=await RedisKafLayer.open(store_selection))
    try:
        async with serving(aanf.app) as uri, SbiClient(uri) as sbi:
            await KafProvider(AF_FQDN, AanfClient(sbi), first_cache).obtain(a_kid)
            shared_before = await second_cache.shared.get(a_kid, AF_ID)
            await asyncio.sleep(0.6)
            shared_after = await second_cache.shared.get(a_kid, AF_ID)
    finally:
        await first_cache.aclose()
        await second_cache.aclose()

    assert shared_before is not None
    assert shared_after is None


async def test_shared_entry_repr_hides_k_af(store_selection):
    aanf = AanfStub()
    a_kid = aanf.add_ue(3)
    cache = KafCache(shared=await RedisKafLayer.open(store_selection))
    try:
        async with serving(aanf.app) as uri, SbiClient(uri) as sbi:
            await KafProvider(AF_FQDN, AanfClient(sbi), cache).obtain(a_kid)
            shared = await cache.shared.get(a_kid, AF_ID)
    finally:
        await cache.aclose()

    assert k_af_for(3).hex() not in repr(shared)
    assert supi_for(3) not in repr(shared)
