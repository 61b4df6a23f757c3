"""The Gateway UE's upstream over `MessagingSession`: 5G AKA, AKMA, and MSGin5G-1 to the server.

The gateway is a UE like any other (TS 33.501 Annex Y): it authenticates with
its own SUPI and USIM, derives K_AF, and registers its own UE service ID.
Then it sends, in its own session, the REG with constrainedUe and the BULK_REG
of its devices, their MSGs and IMDNs, and the INBOX fetches of their items.
"""

import asyncio
import logging
from datetime import datetime
from typing import Any

import httpx

from msgin5g.gateway.upstream import BulkEntry, InboxItem, UpstreamError, UpstreamReply, UpstreamRequestTooLarge
from msgin5g.service import messages
from msgin5g.service.client import REGISTERED, new_http_client
from msgin5g.service.messaging_client import MessageTooLargeError, MessagingError, MessagingSession
from msgin5g.service.ue_profile import UeProfile
from msgin5g.service.usim import Usim

logger = logging.getLogger(__name__)

NOT_STARTED = "NOT_STARTED"


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text is not None else None


class MessagingUpstream:
    """Implements `gateway.upstream.Upstream` with one MessagingSession of the Gateway UE."""

    def __init__(self, profile: UeProfile, *, http: httpx.AsyncClient | None = None) -> None:
        self._profile = profile
        self._http = http
        self._own_http = http is None
        self._session: MessagingSession | None = None
        self._registered = False
        # NOTE: requests go upstream one at a time, because one TLS channel carries them all
        # and the session opens it lazily. So devices wait for each other here.
        self._lock = asyncio.Lock()
        self._state = "not started"

    @property
    def state(self) -> str:
        return self._state

    async def start(self) -> None:
        """Authenticate and register the gateway's own UE service ID."""
        if self._http is None:
            self._http = new_http_client()
        if self._session is None:
            usim = Usim(k=self._profile.k, opc=self._profile.opc)
            self._session = MessagingSession(self._http, self._profile, usim)

        async with self._lock:
            outcome = await self._session.register()
        if outcome.outcome != REGISTERED:
            self._state = f"unavailable ({outcome.cause or outcome.outcome})"
            raise UpstreamError(outcome.cause or outcome.outcome.upper(), outcome.detail)
        self._registered = True
        self._state = f"registered as {self._profile.ue_service_id} over {self._profile.security_profile}"
        logger.info("gateway %s", self._state)

    async def close(self) -> None:
        session, self._session = self._session, None
        self._registered = False
        if session is not None:
            await session.close()
        if self._own_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    # Operations

    async def register(self, ue_service_id: str) -> UpstreamReply:
        return await self._request(messages.RegistrationRequest(ue_service_id, constrained_ue=True))

    async def register_bulk(self, entries: list[BulkEntry]) -> UpstreamReply:
        registrations = tuple(
            messages.BulkRegistrationEntry(
                entry.ue_service_id,
                urgency=messages.Urgency(entry.urgency),
                expiration_time=_time(entry.expiration_time),
            )
            for entry in entries
        )
        return await self._request(messages.BulkRegistrationRequest(registrations))

    async def deregister(self, ue_service_id: str) -> UpstreamReply:
        return await self._request(messages.DeregistrationRequest(ue_service_id))

    async def send(self, message: dict[str, Any]) -> UpstreamReply:
        request = messages.MessageRequest(
            ori_addr=message["oriAddr"],
            dest_addr=message["destAddr"],
            msg_id=message["msgId"],
            payload=message["payload"],
            app_id=message.get("appId"),
            deliv_st_req_ind=bool(message.get("delivStReqInd", False)),
            sto_and_fw_ind=bool(message.get("stoAndFwInd", False)),
            expiry_time=_time(message.get("stoAndFwParams", {}).get("exprTime")),
        )
        return await self._request(request)

    async def fetch(self, ack: list[str], max_items: int) -> tuple[list[InboxItem], bool]:
        reply = await self._request(messages.InboxRequest(tuple(ack), max_items))
        if not reply.accepted:
            raise UpstreamError(reply.cause or str(reply.code), f"the server rejected the INBOX fetch: {reply.detail}")
        items = [
            InboxItem(item["deliveryId"], item["ueServiceId"], item["message"])
            for item in reply.document.get("items", ())
        ]
        return items, bool(reply.document.get("more", False))

    async def report(self, report: dict[str, Any]) -> UpstreamReply:
        request = messages.DeliveryReport(
            ori_addr=report["oriAddr"],
            dest_addr=report["destAddr"],
            msg_id=report["msgId"],
            deliv_st=messages.ReportStatus(report["delivSt"]),
            failure_cause=report.get("failureCause"),
        )
        return await self._request(request)

    async def _request(self, request: messages.Request) -> UpstreamReply:
        session = self._session
        if session is None or not self._registered:
            raise UpstreamError(NOT_STARTED, f"the gateway's upstream session is {self._state}")
        async with self._lock:
            try:
                result = await session.request(request)
            except MessageTooLargeError as error:
                raise _too_large(request, error) from None
            except MessagingError as error:
                self._state = f"unavailable ({error.cause})"
                raise UpstreamError(error.cause, error.detail) from None
        return UpstreamReply(int(result.code), result.document)


def _too_large(request: messages.Request, error: MessageTooLargeError) -> UpstreamRequestTooLarge:
    """Translate the session's oversize error; the upstream session stays usable."""
    logger.warning(
        "%s request of %s octets not sent: the server accepts at most %s octets",
        request.operation, error.size or "unknown", error.limit or "an unknown number of",
    )
    return UpstreamRequestTooLarge(str(request.operation), error.size, error.limit)
