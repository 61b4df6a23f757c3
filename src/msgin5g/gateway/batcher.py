"""NORMAL registrations of devices, collected for `bulk_wait_ms` and sent as one BULK_REG.

TS 23.554 clause 8.11 lets a Gateway UE register the constrained UEs behind it
in bulk. The first NORMAL request starts a timer; every request that arrives
before it fires joins the same BULK_REG, which is sent at once when it reaches
MAX_BULK_ENTRIES. Each caller gets the result of its own entry.
"""

import asyncio
import logging
from typing import Any

from msgin5g.gateway.upstream import BulkEntry, Upstream, UpstreamError

logger = logging.getLogger(__name__)

# A BULK_REG request carries 1 to 100 entries.
MAX_BULK_ENTRIES = 100


# Marks a per-entry result whose BULK_REG got no response at all, so that the service returns 5.03.
# Only the gateway reads it: the response to the device is built from the other members.
UPSTREAM_FAILED = "_upstreamFailed"


def entry_failure(ue_service_id: str, cause: str, detail: str) -> dict[str, Any]:
    """Build a per-entry result that reports a failure."""
    return {"ueServiceId": ue_service_id, "result": "FAILURE", "cause": cause, "detail": detail}


class RegistrationBatcher:
    """Collects BulkEntry requests and resolves each with its per-entry result document."""

    def __init__(self, upstream: Upstream, wait_ms: int, max_entries: int = MAX_BULK_ENTRIES) -> None:
        self._upstream = upstream
        self._wait = wait_ms / 1000.0
        self._max_entries = max_entries
        self._pending: dict[str, tuple[BulkEntry, list[asyncio.Future[dict[str, Any]]]]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.bulks_sent = 0

    async def register(self, entry: BulkEntry) -> dict[str, Any]:
        """Add `entry` to the next BULK_REG and return its result once the server has responded."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        if entry.ue_service_id in self._pending:
            # The same device asked twice within the wait: one entry, both callers get its result.
            self._pending[entry.ue_service_id][1].append(future)
        else:
            self._pending[entry.ue_service_id] = (entry, [future])

        if len(self._pending) >= self._max_entries:
            self._start_flush()
        elif self._timer is None:
            self._timer = loop.call_later(self._wait, self._start_flush)
        return await future

    async def close(self) -> None:
        """Send what is collected now and wait for the BULK_REGs in flight."""
        if self._pending:
            self._start_flush()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _start_flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, {}
        if not batch:
            return
        task = asyncio.create_task(self._flush(batch), name="gateway BULK_REG")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush(self, batch: dict[str, tuple[BulkEntry, list[asyncio.Future[dict[str, Any]]]]]) -> None:
        entries = [entry for entry, _ in batch.values()]
        results = await self._send(entries)
        for ue_service_id, (_, futures) in batch.items():
            result = results.get(ue_service_id) or entry_failure(
                ue_service_id, "MALFORMED_MESSAGE", "the server's BULK_REG response has no entry for this UE service ID"
            )
            for future in futures:
                if not future.done():
                    future.set_result(result)

    async def _send(self, entries: list[BulkEntry]) -> dict[str, dict[str, Any]]:
        self.bulks_sent += 1
        logger.info("sending BULK_REG, entries: %d", len(entries))
        try:
            reply = await self._upstream.register_bulk(entries)
        except UpstreamError as error:
            logger.warning("BULK_REG failed (%s), entries: %d: %s", error.cause, len(entries), error.detail)
            return {
                entry.ue_service_id: {
                    **entry_failure(entry.ue_service_id, error.cause, error.detail),
                    UPSTREAM_FAILED: True,
                }
                for entry in entries
            }
        except Exception:
            logger.exception("BULK_REG failed, entries: %d", len(entries))
            return {
                entry.ue_service_id: entry_failure(
                    entry.ue_service_id, "GATEWAY_ERROR", "the gateway failed to send the BULK_REG"
                )
                for entry in entries
            }

        listed = reply.document.get("registrations")
        if not isinstance(listed, list):
            cause = reply.cause or "MALFORMED_MESSAGE"
            detail = f"the server rejected the BULK_REG as a whole: {reply.detail}"
            return {entry.ue_service_id: entry_failure(entry.ue_service_id, cause, detail) for entry in entries}
        return {
            item["ueServiceId"]: item
            for item in listed
            if isinstance(item, dict) and isinstance(item.get("ueServiceId"), str)
        }
