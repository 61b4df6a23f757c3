"""MSG, IMDN and INBOX of an authenticated UE (TS 23.554 clause 8.3), independent of the Ua* profile.

A UE sends a MSG from a UE service ID that it registered itself: the server
compares oriAddr with the registrations of the UE ID that AKMA authenticated
on this channel, so neither spoofing nor sending after DEREG works. The server
queues the MSG for destAddr (DELY_QUEUED when destAddr is registered,
DELY_STORED when it is not and the MSG allows store-and-forward) and the
recipient's UE fetches it with INBOX. A constrained UE's items go to its
Gateway UE, because the gateway's UE ID registered that UE service ID.

A periodic task removes expired items. A MSG that expires before any fetch
returned it, and that asked for a delivery report, produces an IMDN
REPT_DELY_FAILED with failureCause EXPIRED for its originator.
"""

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from aiocoap import Message
from aiocoap.numbers.codes import Code

from msgin5g.service import messages
from msgin5g.service.config import MessagingConfig
from msgin5g.service.message_store import EnqueueResult, FetchResult, MessageStore, QueuedItem
from msgin5g.service.messages import (
    Cause,
    DeliveryReport,
    DeliveryStatus,
    InboxRequest,
    MessageRequest,
    MessageType,
    Operation,
    ReportStatus,
)
from msgin5g.service.router import Handler
from msgin5g.service.store import RegistrationStore

logger = logging.getLogger(__name__)

EXPIRED_FAILURE_CAUSE = "EXPIRED"
# Octets of an INBOX response body besides its items: about 70 for the other
# members and at most about 230 for the detail text.
INBOX_ENVELOPE_OCTETS = 320

Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


def new_delivery_id() -> str:
    """Return a random deliveryId (16 characters of the URL-safe base64 alphabet)."""
    return secrets.token_urlsafe(12)


class MessagingService:
    """Decide MSG, IMDN and INBOX requests; run the expiry task between `start()` and `stop()`."""

    def __init__(
        self,
        registrations: RegistrationStore,
        store: MessageStore,
        config: MessagingConfig | None = None,
        *,
        clock: Clock = _now,
    ) -> None:
        self._registrations = registrations
        self._store = store
        self._config = config or MessagingConfig()
        self._clock = clock
        self._expiry_task: asyncio.Task[None] | None = None

    def routes(self) -> dict[Operation, Handler]:
        """Return the handlers of the messaging operations, for `Msgin5gRouter.add_routes`."""
        return {
            Operation.MSG: self.send_message,
            Operation.IMDN: self.report_delivery,
            Operation.INBOX: self.fetch_inbox,
        }

    # MSG

    async def send_message(self, request: MessageRequest, ue_id: str, connection_id: str) -> Message:
        """Queue a MSG for its recipient; return a MSGRESP with DELY_QUEUED, DELY_STORED or DELY_FAILED."""
        if not await self._registered_by(request.ori_addr, ue_id):
            logger.info("connection %s: MSG %s rejected: originator not registered by this UE",
                        connection_id, request.msg_id)
            return messages.message_failure(
                request,
                Cause.ORIGINATOR_NOT_REGISTERED,
                f"oriAddr {request.ori_addr!r} is not registered by this UE; send REG for it first, "
                "and send only from a UE service ID that this UE registered",
            )
        if await self._store.message_id_used(request.ori_addr, request.msg_id):
            return self._duplicate(request, connection_id)

        now = self._clock()
        expiry = self._expiry_of(request, now)
        if expiry <= now:
            return messages.message_failure(
                request,
                Cause.REQUEST_EXPIRED,
                f"stoAndFwParams.exprTime {messages.format_time(expiry)} has passed; send a later time",
            )

        status = await self._delivery_status(request)
        if status is None:
            logger.info("connection %s: MSG %s rejected: recipient not registered", connection_id, request.msg_id)
            return messages.message_failure(
                request,
                Cause.RECIPIENT_NOT_REGISTERED,
                f"destAddr {request.dest_addr!r} is not registered; set stoAndFwInd to true to store "
                "the message until the recipient registers",
            )
        return await self._enqueue_message(request, status, now, expiry, connection_id)

    async def _enqueue_message(
        self,
        request: MessageRequest,
        status: DeliveryStatus,
        now: datetime,
        expiry: datetime,
        connection_id: str,
    ) -> Message:
        item = QueuedItem(
            delivery_id=new_delivery_id(),
            recipient=request.dest_addr,
            document=request.to_json(),
            expires_at=expiry,
            report_requested=request.deliv_st_req_ind,
        )
        claim_until = max(expiry, now + timedelta(seconds=self._config.max_expiry))
        result = await self._store.enqueue(
            item, max_queued=self._config.max_queued_per_recipient, claim_until=claim_until
        )
        if result is EnqueueResult.DUPLICATE:
            return self._duplicate(request, connection_id)
        if result is EnqueueResult.STORE_FULL:
            logger.warning("connection %s: MSG %s rejected: the recipient's queue is full",
                           connection_id, request.msg_id)
            return messages.message_failure(
                request,
                Cause.STORE_FULL,
                f"{self._config.max_queued_per_recipient} items are queued for {request.dest_addr!r}; "
                "retry after the recipient has fetched them",
            )

        logger.info("connection %s: MSG %s accepted (%s)", connection_id, request.msg_id, status)
        if status is DeliveryStatus.DELY_STORED:
            return messages.message_response(
                request,
                status,
                f"destAddr {request.dest_addr!r} is not registered; the message is stored until "
                f"{messages.format_time(expiry)}",
                expiry_time=expiry,
            )
        return messages.message_response(
            request, status, f"queued for {request.dest_addr!r} until its next inbox fetch"
        )

    def _duplicate(self, request: MessageRequest, connection_id: str) -> Message:
        logger.info("connection %s: MSG %s rejected: msgId used before", connection_id, request.msg_id)
        return messages.message_failure(
            request,
            Cause.DUPLICATE_MESSAGE_ID,
            f"oriAddr {request.ori_addr!r} already sent a MSG with msgId {request.msg_id!r}; "
            "use a new msgId for each message",
        )

    def _expiry_of(self, request: MessageRequest, now: datetime) -> datetime:
        """Return the requested exprTime shortened to the maximum, or the default expiry."""
        latest = now + timedelta(seconds=self._config.max_expiry)
        if request.sto_and_fw_ind and request.expiry_time is not None:
            return min(request.expiry_time, latest)
        return now + timedelta(seconds=self._config.default_expiry)

    async def _delivery_status(self, request: MessageRequest) -> DeliveryStatus | None:
        """Return DELY_QUEUED or DELY_STORED, or None when the MSG cannot be accepted."""
        if await self._registrations.get(request.dest_addr) is not None:
            return DeliveryStatus.DELY_QUEUED
        if request.sto_and_fw_ind:
            return DeliveryStatus.DELY_STORED
        return None

    async def _registered_by(self, ue_service_id: str, ue_id: str) -> bool:
        registration = await self._registrations.get(ue_service_id)
        return registration is not None and registration.ue_id == ue_id

    # IMDN

    async def report_delivery(self, request: DeliveryReport, ue_id: str, connection_id: str) -> Message:
        """Queue the recipient's delivery report for the MSG's originator."""
        if not await self._registered_by(request.ori_addr, ue_id):
            return messages.failure_response(
                Operation.IMDN,
                Cause.ORIGINATOR_NOT_REGISTERED,
                f"oriAddr {request.ori_addr!r} is not registered by this UE; report only for a UE "
                "service ID that this UE registered",
                ue_service_id=request.ori_addr,
            )
        # The reported MSG went from destAddr (its originator) to oriAddr (the reporter).
        if not await self._store.was_delivered(request.dest_addr, request.ori_addr, request.msg_id):
            logger.info("connection %s: IMDN for %s rejected: no such delivery", connection_id, request.msg_id)
            return messages.failure_response(
                Operation.IMDN,
                Cause.UNKNOWN_MESSAGE,
                f"no MSG {request.msg_id!r} from {request.dest_addr!r} was delivered to "
                f"{request.ori_addr!r}; report only messages fetched from the inbox",
                ue_service_id=request.ori_addr,
            )
        if await self._store.was_reported(request.dest_addr, request.ori_addr, request.msg_id):
            return messages.build_response(
                Operation.IMDN,
                Code.CHANGED,
                f"the delivery of {request.msg_id!r} was reported before; nothing more is queued",
                ue_service_id=request.ori_addr,
            )
        return await self._enqueue_report(request, connection_id)

    async def _enqueue_report(self, request: DeliveryReport, connection_id: str) -> Message:
        item = QueuedItem(
            delivery_id=new_delivery_id(),
            recipient=request.dest_addr,
            document=request.to_json(),
            expires_at=self._clock() + timedelta(seconds=self._config.default_expiry),
        )
        result = await self._store.enqueue(item, max_queued=self._config.max_queued_per_recipient)
        if result is EnqueueResult.STORE_FULL:
            return messages.failure_response(
                Operation.IMDN,
                Cause.STORE_FULL,
                f"{self._config.max_queued_per_recipient} items are queued for {request.dest_addr!r}; "
                "retry later",
                ue_service_id=request.ori_addr,
            )

        await self._store.mark_reported(request.dest_addr, request.ori_addr, request.msg_id)
        logger.info("connection %s: IMDN for %s queued (%s)", connection_id, request.msg_id, request.deliv_st)
        return messages.build_response(
            Operation.IMDN,
            Code.CHANGED,
            f"the report on {request.msg_id!r} is queued for {request.dest_addr!r}",
            ue_service_id=request.ori_addr,
        )

    # INBOX

    async def fetch_inbox(self, request: InboxRequest, ue_id: str, connection_id: str) -> Message:
        """Remove the acknowledged items, then return the queued items of this UE's UE service IDs."""
        registered = [item.ue_service_id for item in await self._registrations.list_by_ue_id(ue_id)]
        unknown = [name for name in request.ue_service_ids or () if name not in registered]
        if unknown:
            return messages.failure_response(
                Operation.INBOX,
                Cause.NOT_REGISTERED,
                f"this UE has no registration of {', '.join(repr(name) for name in unknown)}; "
                "send REG first, or leave out ueServiceIds to fetch for every registered UE service ID",
            )

        acknowledged = await self._store.ack(registered, request.ack)
        scope = list(request.ue_service_ids) if request.ue_service_ids is not None else registered
        record_until = self._clock() + timedelta(seconds=self._config.max_expiry)
        budget = (request.max_octets or self._config.max_inbox_octets) - INBOX_ENVELOPE_OCTETS
        fetched = await self._store.fetch(
            scope, request.max_items, record_until=record_until, max_octets=budget
        )

        detail = self._inbox_detail(request, fetched, acknowledged)
        logger.debug("connection %s: INBOX: %s", connection_id, detail)
        return messages.inbox_response([item.to_inbox_item() for item in fetched.items], fetched.more, detail)

    @staticmethod
    def _inbox_detail(request: InboxRequest, fetched: FetchResult, acknowledged: int) -> str:
        detail = f"{len(fetched.items)} item(s), {acknowledged} acknowledged"
        ignored = len(request.ack) - acknowledged
        if ignored:
            detail += f", {ignored} deliveryId(s) ignored (not queued for this UE)"
        if fetched.oversized:
            detail += (
                f", {fetched.oversized} item(s) too large for maxOctets left queued; fetch them "
                "over a transport that carries larger responses"
            )
        return detail

    # Expiry

    def start(self) -> None:
        """Start the task that expires items every `expiry_interval` seconds."""
        if self._expiry_task is None:
            self._expiry_task = asyncio.create_task(self._expire_periodically())

    async def stop(self) -> None:
        task, self._expiry_task = self._expiry_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _expire_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._config.expiry_interval)
            try:
                await self.expire_once()
            except Exception:
                logger.exception("expiring queued messages failed; retrying in %s s", self._config.expiry_interval)

    async def expire_once(self) -> int:
        """Remove the expired items and queue a failure IMDN for each unfetched MSG that asked for one.

        Returns the number of items removed.
        """
        now = self._clock()
        expired = await self._store.expire(now)
        for item in expired:
            if item.message_type is MessageType.MSG and item.report_requested and not item.fetched:
                await self._report_expiry(item, now)
        if expired:
            logger.info("%d queued item(s) expired", len(expired))
        return len(expired)

    async def _report_expiry(self, item: QueuedItem, now: datetime) -> None:
        report = DeliveryReport(
            ori_addr=item.recipient,
            dest_addr=item.ori_addr,
            msg_id=item.msg_id,
            deliv_st=ReportStatus.REPT_DELY_FAILED,
            failure_cause=EXPIRED_FAILURE_CAUSE,
        )
        # The failure report bypasses the queue limit: it stands for a MSG the server accepted.
        await self._store.enqueue(
            QueuedItem(
                delivery_id=new_delivery_id(),
                recipient=report.dest_addr,
                document=report.to_json(),
                expires_at=now + timedelta(seconds=self._config.default_expiry),
            ),
            max_queued=None,
        )
