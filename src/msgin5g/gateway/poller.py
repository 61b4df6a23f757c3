"""Moves items from the Gateway UE's upstream inbox into the per-device queues.

Every `poll_interval_seconds` the poller fetches the upstream inbox and stores
each item in the queue of the device whose UE service ID it names. Only then
does it acknowledge the item upstream, with the next fetch, because the INBOX
request applies acks before it fetches. An item stored before a crash but not yet
acknowledged comes again and is recognized by its deliveryId. The same round
sends the IMDNs that devices' acks left pending, and starts the upstream
session again when it failed.
"""

import asyncio
import logging

from msgin5g.gateway.config import GatewayConfig
from msgin5g.gateway.service import GatewayService
from msgin5g.gateway.store import GatewayStore
from msgin5g.gateway.upstream import InboxItem, Upstream, UpstreamError

logger = logging.getLogger(__name__)

FETCH_MAX_ITEMS = 100
# Fetches per round while the server reports more items; the rest waits for the next round.
MAX_FETCHES_PER_ROUND = 10


class InboxPoller:
    """One gateway's loop of upstream fetches."""

    def __init__(self, config: GatewayConfig, upstream: Upstream, store: GatewayStore, service: GatewayService) -> None:
        self._config = config
        self._upstream = upstream
        self._store = store
        self._service = service
        self._to_ack: list[str] = []
        self.started = False
        self.rounds_completed = 0

    async def run(self, shutdown: asyncio.Event) -> None:
        """Poll until `shutdown` is set, then acknowledge what is stored."""
        interval = self._config.poll_interval_seconds
        while not shutdown.is_set():
            await self.poll_once()
            try:
                async with asyncio.timeout(interval):
                    await shutdown.wait()
            except TimeoutError:
                pass
        await self.flush_acks()

    async def start_upstream(self) -> bool:
        """Start the upstream session; return False (and log why) when it failed."""
        try:
            await self._upstream.start()
        except UpstreamError as error:
            logger.warning("upstream session not available (%s): %s", error.cause, error.detail)
            return False
        self.started = True
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
            logger.warning("upstream inbox fetch failed (%s): %s", error.cause, error.detail)
        self.rounds_completed += 1
        return added

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
            logger.info("queued %d new items for devices", added)
        return added
