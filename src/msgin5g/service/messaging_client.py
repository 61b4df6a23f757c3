"""The MSGin5G Client's messaging: MSG, IMDN and inbox fetch over any Ua* profile.

`MessagingSession` extends `UeSession` (AKMA keys, channel, re-authentication
at K_AF expiry) with the messaging operations. Over `psk-tls1.3` and
`psk-tls1.2` it keeps one channel open; over `psk-dtls1.2` and `https-digest`
each request is its own exchange.

The server delivers by fetch: `listen()` fetches the inbox every `interval`
seconds, hands every new item to the handler, sends an IMDN for each MSG that
requests one, and acknowledges the items in the next fetch. Items stay queued
on the server until acknowledged, so the session drops repeated items by
(message type, oriAddr, msgId, UE service ID).

    async with MessagingSession(http, profile, usim) as session:
        await session.register()
        result = await session.send("ue-b", "hello", delivery_report=True)
        await session.listen(print_item, interval=1.0, duration=30.0)
"""

import asyncio
import collections
import inspect
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime

import httpx

from msgin5g.coap import tcp as coap_tcp
from msgin5g.service import messages
from msgin5g.service.channel import ChannelError
from msgin5g.service.client import describe_http_error
from msgin5g.service.messages import (
    DEFAULT_INBOX_ITEMS,
    DeliveryReport,
    InboxItem,
    InboxRequest,
    MessageRequest,
    MessageType,
    ReportStatus,
    Result,
)
from msgin5g.service.primary_auth import PrimaryAuthenticationError
from msgin5g.service.session import CHANNEL_PROFILES, ROUND_OK, UeSession, _Attempts
from msgin5g.ua import dtls12_psk

logger = logging.getLogger(__name__)

DEFAULT_LISTEN_INTERVAL = 1.0
# Largest INBOX response body that each profile's client receives (maxOctets):
# over TLS the Max-Message-Size of the client's CSM less the CoAP header, over
# DTLS one datagram of the default MTU less the DTLS record and CoAP header.
# HTTPS carries any size, so the server's default applies.
RESPONSE_OCTETS = {
    "psk-tls1.3": coap_tcp.DEFAULT_MAX_MESSAGE_SIZE - 64,
    "psk-tls1.2": coap_tcp.DEFAULT_MAX_MESSAGE_SIZE - 64,
    # 93 octets cover the largest DTLS 1.2 record overhead (CBC with SHA-384), 17 the CoAP header.
    "psk-dtls1.2": dtls12_psk.DEFAULT_MTU - 110,
}
# Items remembered to drop repeated deliveries; older ones are forgotten first.
SEEN_ITEMS_LIMIT = 10_000

ItemHandler = Callable[[InboxItem], Awaitable[None] | None]


class MessagingError(Exception):
    """A messaging request that got no MSGin5G-1 response, or an INBOX the server rejected."""

    def __init__(self, cause: str, detail: str) -> None:
        super().__init__(f"{cause}: {detail}")
        self.cause = cause
        self.detail = detail


class MessageTooLargeError(MessagingError):
    """A request that the transport cannot carry; nothing was sent. `limit` may be unknown (None)."""

    def __init__(self, detail: str, size: int | None, limit: int | None) -> None:
        super().__init__("MESSAGE_TOO_LARGE", detail)
        self.size = size
        self.limit = limit


def new_msg_id() -> str:
    """Return a random msgId (16 hex digits)."""
    return secrets.token_hex(8)


def item_key(item: InboxItem) -> tuple[str, str, str, str]:
    """Return the key that identifies an item across repeated deliveries."""
    message = item.message
    return (message["messageType"], message["oriAddr"], message["msgId"], item.ue_service_id)


class MessagingSession(UeSession):
    """A UE's session with the MSGin5G Server for registration and messaging."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._seen: collections.OrderedDict[tuple[str, str, str, str], None] = collections.OrderedDict()
        self._pending_acks: list[str] = []

    async def request(self, request: messages.Request) -> Result:
        """Send any MSGin5G-1 request; return the server's response, accepted or not.

        Re-authenticates when K_AF expired or the A-KID was rejected, as
        `UeSession` does. Raises MessagingError when no response arrives.
        """
        attempts = _Attempts(self.max_reauthentications)
        while True:
            try:
                if self.keys is None:
                    self.keys = await self._authenticator(self._http, self.profile, self._usim)
                result = await self._send(request)
            except PrimaryAuthenticationError as error:
                raise MessagingError(error.cause, f"primary authentication failed: {error}") from None
            except httpx.HTTPError as error:
                raise MessagingError(
                    "AUSF_UNREACHABLE",
                    f"the request to the AUSF at {self.profile.ausf_uri} failed: {describe_http_error(error)}",
                ) from None
            except coap_tcp.MessageTooLarge as error:
                raise MessageTooLargeError(
                    f"{error}; send a shorter payload", error.size, error.limit
                ) from None
            except OSError as error:
                raise MessagingError(
                    "SERVER_UNREACHABLE",
                    f"cannot reach the MSGin5G Server: {error} (check the address and that it is the "
                    f"server's {self.profile.security_profile} listener)",
                ) from None
            except ChannelError as error:
                failure = await self._recover(error, attempts)
                if failure is not None:
                    _, cause, detail = failure
                    raise MessagingError(cause or "CHANNEL_FAILED", detail) from None
                continue

            if attempts.kind is not None:
                self._finish_round(attempts, ROUND_OK)
            return result

    async def _send(self, request: messages.Request) -> Result:
        """Send `request` on the open channel, or as one exchange over DTLS and HTTPS."""
        keys = self.keys
        if keys is None:
            raise RuntimeError("_send needs AKMA keys; authenticate first")
        if self.profile.security_profile not in CHANNEL_PROFILES:
            return await self._exchange(keys, request)
        channel = await self._open_channel(keys)
        return await channel.send(request)

    # Operations

    async def send(
        self,
        dest_addr: str,
        payload: str,
        *,
        msg_id: str | None = None,
        ori_addr: str | None = None,
        delivery_report: bool = False,
        store_and_forward: bool = False,
        expiry_time: datetime | None = None,
        app_id: str | None = None,
    ) -> Result:
        """Send a MSG; return the MSGRESP (`result.status` is DELY_QUEUED, DELY_STORED or DELY_FAILED).

        `ori_addr` defaults to the profile's UE service ID; a Gateway UE passes
        the constrained UE's.
        """
        request = MessageRequest(
            ori_addr=ori_addr or self.profile.ue_service_id,
            dest_addr=dest_addr,
            msg_id=msg_id or new_msg_id(),
            payload=payload,
            app_id=app_id,
            deliv_st_req_ind=delivery_report,
            sto_and_fw_ind=store_and_forward,
            expiry_time=expiry_time,
        )
        return await self.request(request)

    async def fetch(
        self,
        ack: Iterable[str] = (),
        *,
        max_items: int = DEFAULT_INBOX_ITEMS,
        ue_service_ids: Iterable[str] | None = None,
    ) -> list[InboxItem]:
        """Acknowledge `ack`, then return the queued items; raise MessagingError if the server rejects it."""
        result = await self.fetch_result(ack, max_items=max_items, ue_service_ids=ue_service_ids)
        return result.items

    async def fetch_result(
        self,
        ack: Iterable[str] = (),
        *,
        max_items: int = DEFAULT_INBOX_ITEMS,
        ue_service_ids: Iterable[str] | None = None,
    ) -> Result:
        """Send INBOX and return the whole response (`items`, `more`)."""
        request = InboxRequest(
            tuple(ack),
            max_items,
            tuple(ue_service_ids) if ue_service_ids is not None else None,
            RESPONSE_OCTETS.get(self.profile.security_profile),
        )
        result = await self.request(request)
        if not result.accepted:
            cause = result.cause.value if result.cause is not None else str(result.code)
            raise MessagingError(cause, result.detail)
        return result

    async def report(
        self,
        item: InboxItem,
        status: ReportStatus = ReportStatus.REPT_DELY_SUCCESS,
        failure_cause: str | None = None,
    ) -> Result:
        """Send an IMDN on a received MSG to its originator."""
        if item.message_type is not MessageType.MSG:
            raise ValueError(f"item {item.delivery_id} is a {item.message_type}; report only on a MSG")
        report = DeliveryReport(
            ori_addr=item.ue_service_id,
            dest_addr=item.message["oriAddr"],
            msg_id=item.message["msgId"],
            deliv_st=status,
            failure_cause=failure_cause,
        )
        return await self.request(report)

    # Listening

    async def listen(
        self,
        handler: ItemHandler,
        *,
        interval: float = DEFAULT_LISTEN_INTERVAL,
        duration: float | None = None,
        max_items: int = DEFAULT_INBOX_ITEMS,
    ) -> int:
        """Fetch, handle, report and acknowledge items until `duration` seconds pass (None: until cancelled).

        Returns the number of new items handed to `handler`. An exception from
        `handler` stops listening, and that item stays queued on the server.
        """
        if interval <= 0:
            raise ValueError(f"interval must be more than 0 seconds, got {interval}")
        deadline = None if duration is None else time.monotonic() + duration
        handled = 0
        while True:
            result = await self.fetch_result(self._take_acks(), max_items=max_items)
            for item in result.items:
                handled += await self._process(item, handler)
            if result.more:
                continue
            if deadline is not None and time.monotonic() + interval > deadline:
                break
            await asyncio.sleep(interval)

        await self.flush_acks()
        return handled

    async def flush_acks(self) -> None:
        """Send the acknowledgements not sent yet; the items this INBOX returns stay queued."""
        if self._pending_acks:
            await self.fetch_result(self._take_acks(), max_items=1)

    def _take_acks(self) -> list[str]:
        acks, self._pending_acks = self._pending_acks, []
        return acks

    async def _process(self, item: InboxItem, handler: ItemHandler) -> int:
        """Hand a new item to `handler` and report on it; return 1, or 0 for a repeated item."""
        key = item_key(item)
        if key in self._seen:
            self._pending_acks.append(item.delivery_id)
            return 0

        outcome = handler(item)
        if inspect.isawaitable(outcome):
            await outcome
        if item.message_type is MessageType.MSG and item.message.get("delivStReqInd", False):
            await self._report_success(item)

        self._remember(key)
        self._pending_acks.append(item.delivery_id)
        return 1

    async def _report_success(self, item: InboxItem) -> None:
        result = await self.report(item)
        if not result.accepted:
            logger.warning(
                "IMDN on MSG %s not accepted: %s (%s)", item.message["msgId"], result.cause, result.detail
            )

    def _remember(self, key: tuple[str, str, str, str]) -> None:
        self._seen[key] = None
        while len(self._seen) > SEEN_ITEMS_LIMIT:
            self._seen.popitem(last=False)
