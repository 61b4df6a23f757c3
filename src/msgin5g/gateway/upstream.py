"""The Gateway UE's view of its MSGin5G-1 session to the MSGin5G Server.

The local side of the gateway depends only on the `Upstream` protocol below;
`messaging_upstream.MessagingUpstream` implements it over the UE's secured
session (primary authentication, AKMA, MSGin5G-1), and unit tests can pass a
fake. Every method returns the server's response document as received, or
raises UpstreamError when no response came (no session, channel failure).
"""

import dataclasses
from typing import Any, Protocol

NORMAL = "NORMAL"
URGENT = "URGENT"
MESSAGE_TOO_LARGE = "MESSAGE_TOO_LARGE"


class UpstreamError(Exception):
    """No response from the MSGin5G Server; `cause` is a short code, the message names what to check."""

    def __init__(self, cause: str, detail: str) -> None:
        super().__init__(detail)
        self.cause = cause
        self.detail = detail


class UpstreamRequestTooLarge(UpstreamError):
    """A request that the upstream transport cannot carry; nothing was sent, and the session stays usable."""

    def __init__(self, operation: str, size: int | None, limit: int | None) -> None:
        encoded = f"{size} octets once encoded" if size is not None else "too large once encoded"
        accepted = (
            f"accepts at most {limit} octets per CoAP message (its Max-Message-Size)"
            if limit is not None
            else "rejected it as too large"
        )
        super().__init__(
            MESSAGE_TOO_LARGE,
            f"the {operation} request is {encoded}, and the MSGin5G Server {accepted}; send a shorter payload",
        )
        self.size = size
        self.limit = limit


@dataclasses.dataclass(frozen=True)
class UpstreamReply:
    """One MSGin5G-1 response: the CoAP code as an integer (65 is 2.01) and the JSON body."""

    code: int
    document: dict[str, Any]

    @property
    def accepted(self) -> bool:
        return self.document.get("result") == "SUCCESS"

    @property
    def cause(self) -> str | None:
        return self.document.get("cause")

    @property
    def detail(self) -> str:
        return str(self.document.get("detail", ""))


@dataclasses.dataclass(frozen=True)
class BulkEntry:
    """One constrained UE in a BULK_REG request."""

    ue_service_id: str
    urgency: str = NORMAL
    expiration_time: str | None = None

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"ueServiceId": self.ue_service_id, "urgency": self.urgency}
        if self.expiration_time is not None:
            document["expirationTime"] = self.expiration_time
        return document


@dataclasses.dataclass(frozen=True)
class InboxItem:
    """An item fetched from the upstream inbox: a MSG or IMDN document for one UE service ID."""

    delivery_id: str
    ue_service_id: str
    message: dict[str, Any]


class Upstream(Protocol):
    """The operations the gateway needs from its MSGin5G-1 session."""

    @property
    def state(self) -> str:
        """A one-line description of the session, for the ready line and logs."""
        ...

    async def start(self) -> None:
        """Authenticate and register the Gateway UE's own UE service ID; raise UpstreamError."""
        ...

    async def close(self) -> None: ...

    async def register(self, ue_service_id: str) -> UpstreamReply:
        """Send REG with constrainedUe for one device's UE service ID."""
        ...

    async def register_bulk(self, entries: list[BulkEntry]) -> UpstreamReply:
        """Send one BULK_REG; the reply lists a result per entry in request order."""
        ...

    async def deregister(self, ue_service_id: str) -> UpstreamReply: ...

    async def send(self, message: dict[str, Any]) -> UpstreamReply:
        """Send one MSG document; the reply is the MSGRESP."""
        ...

    async def fetch(self, ack: list[str], max_items: int) -> tuple[list[InboxItem], bool]:
        """Acknowledge `ack`, then fetch queued items; return (items, more)."""
        ...

    async def report(self, report: dict[str, Any]) -> UpstreamReply:
        """Send one IMDN document."""
        ...
