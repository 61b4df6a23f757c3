"""K_AF retrieval: the cache, the AAnF consumer, expiry and a non-blocking event loop."""

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest

from af_helpers import (
    AF_FQDN,
    AanfStub,
    CmStub,
    k_af_for,
    make_a_kid,
    make_k_akma,
    running_server,
    serving,
    supi_for,
)
from msgin5g.crypto.akma import UA_TLS13, af_id, k_af, ua_tls12
from msgin5g.sbi.client import SbiClient
from msgin5g.service.channel import SecureChannel
from msgin5g.service.kaf import AanfClient, AanfError, KafCache, KafEntry, KafProvider

AF_ID = af_id(AF_FQDN, UA_TLS13)
NOW = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    """Wall-clock stand-in in seconds since the epoch."""

    def __init__(self, moment: datetime = NOW) -> None:
        self.now = moment.timestamp()

    def __call__(self) -> float:
        return self.now


def entry(a_kid: str = "a", seconds: float = 60, moment: datetime = NOW) -> KafEntry:
    return KafEntry(
        a_kid=a_kid,
        af_id=AF_ID,
        k_af=bytes(32),
        expiry=moment + timedelta(seconds=seconds),
        supi=supi_for(1),
    )


# Cache


def test_cache_returns_entry_before_expiry():
    clock = Clock()
    cache = KafCache(clock)
    cache.put(entry(seconds=60))
    clock.now += 59

    assert cache.get("a", AF_ID) is not None


def test_cache_drops_entry_at_expiry():
    clock = Clock()
    cache = KafCache(clock)
    cache.put(entry(seconds=60))
    clock.now += 60

    assert cache.get("a", AF_ID) is None
    assert len(cache) == 0


def test_cache_keyed_by_af_id():
    cache = KafCache(Clock())
    cache.put(entry())

    assert cache.get("a", af_id("other.example.test", UA_TLS13)) is None


def test_cache_full_drops_expired_then_oldest():
    clock = Clock()
    cache = KafCache(clock, max_entries=2)
    cache.put(entry("old", seconds=10))
    cache.put(entry("live", seconds=100))
    clock.now += 20
    cache.put(entry("new", seconds=100))

    assert cache.get("live", AF_ID) is not None
    assert cache.get("new", AF_ID) is not None
    cache.put(entry("newest", seconds=100))
    assert cache.get("live", AF_ID) is None
    assert len(cache) == 2


def test_entry_repr_hides_key_and_supi():
    text = repr(entry())

    assert bytes(32).hex() not in text
    assert "k_af" not in text
    assert supi_for(1) not in text


def test_entry_ue_id_prefers_supi():
    both = KafEntry("a", AF_ID, bytes(32), NOW, supi="imsi-001010000000001", gpsi="msisdn-123456")
    gpsi_only = KafEntry("a", AF_ID, bytes(32), NOW, gpsi="msisdn-123456")

    assert both.ue_id == "imsi-001010000000001"
    assert gpsi_only.ue_id == "msisdn-123456"


# Provider against a real HTTP/2 AAnF stand-in


async def test_provider_caches_k_af():
    aanf = AanfStub()
    a_kid = aanf.add_ue(1)
    async with serving(aanf.app) as uri, SbiClient(uri) as sbi:
        provider = KafProvider(AF_FQDN, AanfClient(sbi))
        first = await provider.obtain(a_kid)
        second = await provider.obtain(a_kid)

    assert first.k_af == k_af_for(1)
    assert first.ue_id == supi_for(1)
    assert second is first
    assert len(aanf.requests) == 1
    assert provider.lookup(a_kid) is first


async def test_provider_sends_wire_af_id():
    aanf = AanfStub()
    a_kid = aanf.add_ue(1)
    async with serving(aanf.app) as uri, SbiClient(uri) as sbi:
        await KafProvider(AF_FQDN, AanfClient(sbi)).obtain(a_kid)

    assert aanf.requests == [
        {"afId": "msgin5g.example.test;ua-protocol-id=0100000007", "aKId": a_kid, "anonInd": False}
    ]


async def test_provider_keys_by_ua_protocol_id():
    aanf = AanfStub()
    a_kid = aanf.add_ue(1)
    tls12 = ua_tls12(0x00A8)  # TLS_PSK_WITH_AES_128_GCM_SHA256
    async with serving(aanf.app) as uri, SbiClient(uri) as sbi:
        provider = KafProvider(AF_FQDN, AanfClient(sbi))
        for_tls13 = await provider.obtain(a_kid)
        for_tls12 = await provider.obtain(a_kid, tls12)

    assert for_tls12.k_af == k_af(make_k_akma(1), af_id(AF_FQDN, tls12))
    assert for_tls12.k_af != for_tls13.k_af
    assert provider.lookup(a_kid, tls12) is for_tls12
    assert provider.lookup(a_kid) is for_tls13
    assert aanf.requests[1]["afId"] == "msgin5g.example.test;ua-protocol-id=01000100a8"


async def test_provider_unknown_a_kid_returns_none():
    aanf = AanfStub()
    async with serving(aanf.app) as uri, SbiClient(uri) as sbi:
        provider = KafProvider(AF_FQDN, AanfClient(sbi))

        assert await provider.obtain(make_a_kid(5)) is None
        assert provider.lookup(make_a_kid(5)) is None


async def test_concurrent_requests_share_one_aanf_call():
    aanf = AanfStub()
    a_kid = aanf.add_ue(1)
    aanf.hold[a_kid] = asyncio.Event()
    async with serving(aanf.app) as uri, SbiClient(uri) as sbi:
        provider = KafProvider(AF_FQDN, AanfClient(sbi))
        waiters = [asyncio.create_task(provider.obtain(a_kid)) for _ in range(3)]
        await aanf.requested_event(a_kid).wait()
        aanf.hold[a_kid].set()
        results = await asyncio.gather(*waiters)

    assert len(aanf.requests) == 1
    assert all(result is results[0] for result in results)


async def test_expired_entry_fetched_again():
    aanf = AanfStub()
    a_kid = aanf.add_ue(1)
    clock = Clock(datetime.now(UTC))
    async with serving(aanf.app) as uri, SbiClient(uri) as sbi:
        provider = KafProvider(AF_FQDN, AanfClient(sbi), KafCache(clock))
        first = await provider.obtain(a_kid)
        clock.now = first.expiry.timestamp()
        assert provider.lookup(a_kid) is None
        clock.now -= 1
        second = await provider.obtain(a_kid)

    assert len(aanf.requests) == 2
    assert second is not first


async def test_aanf_answer_already_expired_is_an_error():
    aanf = AanfStub()
    a_kid = aanf.add_ue(1, lifetime=timedelta(seconds=-5))
    async with serving(aanf.app) as uri, SbiClient(uri) as sbi:
        with pytest.raises(AanfError, match="expired"):
            await KafProvider(AF_FQDN, AanfClient(sbi)).obtain(a_kid)


async def test_aanf_without_ue_id_is_an_error():
    aanf = AanfStub()
    a_kid = aanf.add_ue(1, supi=None)
    async with serving(aanf.app) as uri, SbiClient(uri) as sbi:
        with pytest.raises(AanfError, match="neither|without a SUPI or GPSI"):
            await KafProvider(AF_FQDN, AanfClient(sbi)).obtain(a_kid)


async def test_aanf_unreachable_is_an_error():
    async with serving(AanfStub().app) as uri:
        pass
    async with SbiClient(uri) as sbi:
        with pytest.raises(AanfError, match="AAnF request failed"):
            await KafProvider(AF_FQDN, AanfClient(sbi)).obtain(make_a_kid(1))


# The server keeps serving while one AAnF response is pending


async def test_slow_aanf_does_not_hold_up_other_clients(tmp_path):
    """The AAnF holds client 1's K_AF until client 2 has registered, and the order shows it."""
    aanf, cm = AanfStub(), CmStub()
    a_kid_1, a_kid_2 = aanf.add_ue(1), aanf.add_ue(2)
    cm.associate(supi_for(1), "ue-svc-1")
    cm.associate(supi_for(2), "ue-svc-2")
    release_client_1 = aanf.hold[a_kid_1] = asyncio.Event()
    order: list[str] = []

    async with serving(aanf.app) as aanf_uri, serving(cm.app) as cm_uri:
        async with running_server(tmp_path / "db.sqlite", aanf_uri, cm_uri) as running:

            async def register(a_kid: str, number: int, ue_service_id: str) -> None:
                async with SecureChannel.open(
                    running.host, running.port, AF_FQDN, a_kid, k_af_for(number), timeout=30
                ) as channel:
                    result = await channel.register(ue_service_id)
                assert result.accepted
                order.append(ue_service_id)

            client_1 = asyncio.create_task(register(a_kid_1, 1, "ue-svc-1"))
            await aanf.requested_event(a_kid_1).wait()

            await register(a_kid_2, 2, "ue-svc-2")
            order.append("released")
            release_client_1.set()
            await client_1

    assert order == ["ue-svc-2", "released", "ue-svc-1"]


async def test_expired_k_af_closes_channel(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    aanf, cm = AanfStub(), CmStub()
    a_kid = aanf.add_ue(1, lifetime=timedelta(seconds=3))

    async with serving(aanf.app) as aanf_uri, serving(cm.app) as cm_uri:
        async with running_server(tmp_path / "db.sqlite", aanf_uri, cm_uri) as running:
            async with SecureChannel.open(
                running.host, running.port, AF_FQDN, a_kid, k_af_for(1)
            ) as channel:
                async with asyncio.timeout(60):
                    reason = await channel.wait_closed()

    assert reason.startswith("the server released the connection: K_AF expired at")
    assert "run primary authentication again" in reason
    assert any("closed: its K_AF expired" in record.getMessage() for record in caplog.records)
