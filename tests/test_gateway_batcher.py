"""RegistrationBatcher: which NORMAL registrations share one BULK_REG, and who gets which result."""

import asyncio

from gateway_fakes import FakeUpstream
from msgin5g.gateway.batcher import RegistrationBatcher
from msgin5g.gateway.upstream import BulkEntry, UpstreamReply


async def test_window_collects_one_bulk():
    upstream = FakeUpstream()
    batcher = RegistrationBatcher(upstream, wait_ms=50)

    results = await asyncio.gather(*(batcher.register(BulkEntry(f"meter-{n}")) for n in range(5)))

    assert [result["ueServiceId"] for result in results] == [f"meter-{n}" for n in range(5)]
    assert len(upstream.calls_of("register_bulk")) == 1


async def test_later_request_starts_new_bulk():
    upstream = FakeUpstream()
    batcher = RegistrationBatcher(upstream, wait_ms=20)

    await batcher.register(BulkEntry("meter-1"))
    await batcher.register(BulkEntry("meter-2"))

    bulks = upstream.calls_of("register_bulk")
    assert [[entry.ue_service_id for entry in bulk] for bulk in bulks] == [["meter-1"], ["meter-2"]]


async def test_full_bulk_sent_at_once():
    upstream = FakeUpstream()
    batcher = RegistrationBatcher(upstream, wait_ms=60_000, max_entries=3)

    async with asyncio.timeout(5):
        results = await asyncio.gather(*(batcher.register(BulkEntry(f"meter-{n}")) for n in range(3)))

    assert all(result["result"] == "SUCCESS" for result in results)
    assert len(upstream.calls_of("register_bulk")) == 1


async def test_repeated_device_one_entry():
    upstream = FakeUpstream()
    batcher = RegistrationBatcher(upstream, wait_ms=30)

    first, second = await asyncio.gather(batcher.register(BulkEntry("meter-1")), batcher.register(BulkEntry("meter-1")))

    assert first == second
    assert len(upstream.calls_of("register_bulk")[0]) == 1


async def test_rejected_entry_keeps_own_cause():
    upstream = FakeUpstream(rejected={"meter-2"})
    batcher = RegistrationBatcher(upstream, wait_ms=30)

    results = await asyncio.gather(*(batcher.register(BulkEntry(f"meter-{n}")) for n in (1, 2, 3)))

    assert [result["result"] for result in results] == ["SUCCESS", "FAILURE", "SUCCESS"]
    assert results[1]["cause"] == "UE_SERVICE_ID_NOT_ASSOCIATED"


async def test_whole_bulk_rejection_reaches_everyone():
    class RejectingUpstream(FakeUpstream):
        async def register_bulk(self, entries):
            document = {"messageType": "REG", "result": "FAILURE", "cause": "MALFORMED_MESSAGE", "detail": "bad"}
            return UpstreamReply(128, document)

    batcher = RegistrationBatcher(RejectingUpstream(), wait_ms=10)

    results = await asyncio.gather(batcher.register(BulkEntry("meter-1")), batcher.register(BulkEntry("meter-2")))

    assert [result["cause"] for result in results] == ["MALFORMED_MESSAGE", "MALFORMED_MESSAGE"]
    assert "as a whole" in results[0]["detail"]


async def test_unreachable_upstream_fails_entries():
    upstream = FakeUpstream(available=False)
    batcher = RegistrationBatcher(upstream, wait_ms=10)

    result = await batcher.register(BulkEntry("meter-1", expiration_time="2030-01-01T00:00:00Z"))

    assert result["result"] == "FAILURE"
    assert result["cause"] == "SERVER_UNREACHABLE"


async def test_close_flushes_pending():
    upstream = FakeUpstream()
    batcher = RegistrationBatcher(upstream, wait_ms=60_000)

    pending = asyncio.create_task(batcher.register(BulkEntry("meter-1")))
    await asyncio.sleep(0)
    await batcher.close()

    assert (await pending)["result"] == "SUCCESS"
