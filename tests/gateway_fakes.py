"""Gateway test support: a configuration builder and a recording fake of the upstream session.

The fake replaces the MSGin5G Server only in tests whose subject is the
gateway's local side; test_gateway_e2e.py runs the real server.
"""

import dataclasses
import json
from pathlib import Path
from typing import Any

from msgin5g.gateway.config import GatewayConfig, gateway_config_from_mapping
from msgin5g.gateway.upstream import BulkEntry, InboxItem, UpstreamError, UpstreamReply, UpstreamRequestTooLarge

CREATED, DELETED, CHANGED, FORBIDDEN, NOT_FOUND = 65, 66, 68, 131, 132

GATEWAY_UE = {
    "supi": "imsi-001010000000001",
    "k": "465b5ce8b199b49faa5f0a2ee238a6bc",
    "op": "cdc202d5123e20f62b6d676ac72cb318",
    "home_network": {"mcc": "001", "mnc": "01"},
    "ue_service_id": "gateway-001",
    "ausf": {"uri": "http://127.0.0.1:8002"},
    "server": {"host": "127.0.0.1", "port": 5684, "fqdn": "msgin5g.mnc001.mcc001.example.test"},
}


def device_psk(number: int) -> bytes:
    """Return the test PSK of device `number`: 16 octets, obviously not random."""
    return bytes([number]) * 16


def device_entry(number: int) -> dict[str, Any]:
    return {
        "device_id": f"dev-{number:02d}",
        "psk": device_psk(number).hex(),
        "application_id": f"app.meter.{number:02d}",
        "ue_service_id": f"meter-{number:02d}",
    }


def gateway_document(tmp_path: Path, *, devices: int = 3, transport: str = "dtls", **top: Any) -> dict[str, Any]:
    return {
        "ue": GATEWAY_UE,
        "listener": {"transport": transport, "host": "127.0.0.1", "port": 0},
        "database": str(tmp_path / "gateway.sqlite3"),
        "bulk_wait_ms": 100,
        "poll_interval_seconds": 0.1,
        "devices": [device_entry(number) for number in range(1, devices + 1)],
        **top,
    }


def gateway_config(tmp_path: Path, **options: Any) -> GatewayConfig:
    return gateway_config_from_mapping(gateway_document(tmp_path, **options), tmp_path)


@dataclasses.dataclass
class FakeUpstream:
    """Record every upstream call and respond as a server that accepts every UE service ID not in `rejected`.

    A MSG to a UE service ID in `offline` without stoAndFwInd fails with RECIPIENT_NOT_REGISTERED,
    and a MSG whose JSON is longer than `max_message_octets` is not sent, as over a transport
    with that Max-Message-Size.
    """

    rejected: set[str] = dataclasses.field(default_factory=set)
    offline: set[str] = dataclasses.field(default_factory=set)
    max_message_octets: int | None = None
    available: bool = True
    start_cause: str = "SERVER_UNREACHABLE"
    calls: list[tuple[str, Any]] = dataclasses.field(default_factory=list)
    inbox: list[InboxItem] = dataclasses.field(default_factory=list)
    acked: list[str] = dataclasses.field(default_factory=list)
    started: bool = False
    starts: int = 0

    @property
    def state(self) -> str:
        return "registered" if self.started else "unavailable"

    def calls_of(self, name: str) -> list[Any]:
        return [argument for call, argument in self.calls if call == name]

    def _check(self) -> None:
        if not self.available:
            raise UpstreamError("SERVER_UNREACHABLE", "fake server is down")

    async def start(self) -> None:
        self.starts += 1
        if not self.available:
            raise UpstreamError(self.start_cause, "fake server rejects the gateway")
        self.started = True

    async def close(self) -> None:
        self.started = False

    def _entry(self, ue_service_id: str) -> dict[str, Any]:
        if ue_service_id in self.rejected:
            return {
                "ueServiceId": ue_service_id, "result": "FAILURE",
                "cause": "UE_SERVICE_ID_NOT_ASSOCIATED", "detail": "not associated with this gateway",
            }
        return {"ueServiceId": ue_service_id, "result": "SUCCESS", "detail": "registered"}

    async def register(self, ue_service_id: str) -> UpstreamReply:
        self._check()
        self.calls.append(("register", ue_service_id))
        entry = self._entry(ue_service_id)
        code = CREATED if entry["result"] == "SUCCESS" else FORBIDDEN
        return UpstreamReply(code, {"messageType": "REG", **entry})

    async def register_bulk(self, entries: list[BulkEntry]) -> UpstreamReply:
        self._check()
        self.calls.append(("register_bulk", list(entries)))
        document = {
            "messageType": "REG", "result": "SUCCESS", "detail": f"{len(entries)} entries",
            "registrations": [self._entry(entry.ue_service_id) for entry in entries],
        }
        return UpstreamReply(CHANGED, document)

    async def deregister(self, ue_service_id: str) -> UpstreamReply:
        self._check()
        self.calls.append(("deregister", ue_service_id))
        return UpstreamReply(DELETED, {"messageType": "DEREG", "result": "SUCCESS", "detail": "deregistered"})

    async def send(self, message: dict[str, Any]) -> UpstreamReply:
        self._check()
        size = len(json.dumps(message).encode("utf-8"))
        if self.max_message_octets is not None and size > self.max_message_octets:
            raise UpstreamRequestTooLarge("MSG", size, self.max_message_octets)
        self.calls.append(("send", message))
        if message["destAddr"] in self.offline and not message.get("stoAndFwInd"):
            document = {
                "messageType": "MSGRESP", "result": "FAILURE", "cause": "RECIPIENT_NOT_REGISTERED",
                "detail": f"destAddr {message['destAddr']!r} is not registered; set stoAndFwInd to store the message",
                "oriAddr": message["oriAddr"], "msgId": message["msgId"], "status": "DELY_FAILED",
            }
            return UpstreamReply(NOT_FOUND, document)
        document = {
            "messageType": "MSGRESP", "result": "SUCCESS", "detail": "queued",
            "oriAddr": message["oriAddr"], "msgId": message["msgId"], "status": "DELY_QUEUED",
        }
        return UpstreamReply(CREATED, document)

    async def fetch(self, ack: list[str], max_items: int) -> tuple[list[InboxItem], bool]:
        self._check()
        self.calls.append(("fetch", list(ack)))
        self.acked.extend(ack)
        self.inbox = [item for item in self.inbox if item.delivery_id not in ack]
        return self.inbox[:max_items], len(self.inbox) > max_items

    async def report(self, report: dict[str, Any]) -> UpstreamReply:
        self._check()
        self.calls.append(("report", report))
        return UpstreamReply(CHANGED, {"messageType": "IMDN", "result": "SUCCESS", "detail": "queued"})
