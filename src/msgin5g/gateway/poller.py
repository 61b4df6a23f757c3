"""Moves items from the Gateway UE's upstream inbox into the per-device queues.

Every `poll_interval_seconds` the poller fetches the upstream inbox and stores
each item in the queue of the device whose UE service ID it names. Only then
does it acknowledge the item upstream, with the next fetch, because the INBOX
request applies acks before it fetches. An item stored before a crash but not yet
acknowledged comes again and is recognized by its deliveryId. The same round
sends the IMDNs that devices' acks left pending, and starts the upstream
session again when it failed. While the upstream fails, the rounds are spaced
out by `backoff.Backoff` instead of the poll interval.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable

from msgin5g.gateway.backoff import Backoff, UpstreamStatus, counted
from msgin5g.gateway.config import GatewayConfig
from msgin5g.gateway.service import GatewayService
from msgin5g.gateway.store import GatewayStore
from msgin5g.gateway.upstream import InboxItem, Upstream, UpstreamError

logger = logging.getLogger(__name__)

FETCH_MAX_ITEMS = 100
# Fetches per round while the server reports more items; the rest waits for the next round.
MAX_FETCHES_PER_ROUND = 10

# Waits the given seconds between rounds; tests pass one that records the delays.
Sleep = Callable[[float], Awaitable[None]]


class InboxPoller:
    """One gateway's loop of upstream fetches, with backoff while the upstream session fails."""

    def __init__(
        self,
        config: GatewayConfig,
        upstream: Upstream,
        store: GatewayStore,
        service: GatewayService,
        *,
        status: UpstreamStatus | None = None,
        backoff: Backoff | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        self._config = config
        self._upstream = upstream
        self._store = store
        self._service = service
        self._to_ack: list[str] = []
        self.status = status if status is not None else UpstreamStatus()
        self._backoff = backoff if backoff is not None else Backoff()
        self._sleep = sleep
        self._delay = config.poll_interval_seconds
        self.started = False
        self.rounds_completed = 0

    async def run(self, shutdown: asyncio.Event) -> None:
        """Poll until `shutdown` is set, then acknowledge what is stored.

        The first round runs at once unless the runner's start of the upstream
        session just failed; then the loop waits for the backoff delay first.
        """
        if self.status.failures == 0:
            await self.poll_once()
        while not shutdown.is_set():
            await self._pause(self._delay, shutdown)
            if shutdown.is_set():
                break
            await self.poll_once()
        await self.flush_acks()

    async def _pause(self, seconds: float, shutdown: asyncio.Event) -> None:
        if self._sleep is not None:
            await self._sleep(seconds)
            return
        try:
            async with asyncio.timeout(seconds):
                await shutdown.wait()
        except TimeoutError:
            pass

    async def start_upstream(self) -> bool:
        """Start the upstream session; return False (and log why) when it failed."""
        try:
            await self._upstream.start()
        except UpstreamError as error:
            self._record_failure("upstream session not available", error)
            return False
        self.started = True
        self._record_success()
        return True

    async def poll_once(self) -> int:
        """Run one round; return how many new items were queued. Errors are logged, not raised."""
        if not self.started and not await self.start_upstream():
            self.rounds_completed += 1
            return 0
        added = 0
        try:
            for _ in range(MAX_FETCHES_PER_ROUND):
                items, more = await self._upstream.fetch(self._to_ack, FETCH_MAX_ITEMS)
                self._to_ack = []
                added += await self._store_items(items)
                if not more:
                    break
            await self._service.send_pending_reports()
            await self._store.prune()
        except UpstreamError as error:
            self._record_failure("upstream inbox fetch failed", error)
        else:
            self._record_success()
        self.rounds_completed += 1
        return added

    def _record_failure(self, failed_step: str, error: UpstreamError) -> None:
        """Set the next delay from the backoff, and log the failure unless it only repeats."""
        self._delay = max(self._config.poll_interval_seconds, self._backoff.next_delay())
        if not self.status.record_failure(error.cause, self._delay):
            return
        logger.warning(
            "%s (%s), %s in a row; next attempt in %.0f s: %s",
            failed_step, error.cause, counted(self.status.failures, "failure"), self._delay, error.detail,
        )

    def _record_success(self) -> None:
        self._backoff.reset()
        self._delay = self._config.poll_interval_seconds
        failures = self.status.record_success()
        if failures:
            logger.info("upstream session available again after %s", counted(failures, "failed attempt"))

    async def flush_acks(self) -> None:
        """Acknowledge the stored items upstream now (used at shutdown)."""
        if not self._to_ack or not self.started:
            return
        try:
            items, _ = await self._upstream.fetch(self._to_ack, FETCH_MAX_ITEMS)
            self._to_ack = []
            await self._store_items(items)
        except UpstreamError as error:
            logger.info("final acknowledgement upstream failed (%s); the server delivers again", error.cause)

    async def _store_items(self, items: list[InboxItem]) -> int:
        routed = []
        for item in items:
            device = self._config.device_for_service_id(item.ue_service_id)
            if device is None:
                # NOTE: the gateway has no local recipient for its own UE service ID or an
                # unknown one, so the item is acknowledged and dropped.
                logger.warning(
                    "inbox item %s is for %s, which no device has; dropped", item.delivery_id, item.ue_service_id
                )
                continue
            routed.append((item.delivery_id, device.device_id, item.message))
        added = await self._store.enqueue(routed)
        # Only after the items are stored does the next fetch acknowledge them.
        self._to_ack = [item.delivery_id for item in items]
        if added:
            logger.info("queued new items for devices: %d", added)
        return added
