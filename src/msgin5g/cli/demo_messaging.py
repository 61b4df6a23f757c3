"""The demo's message round: MSG, MSGRESP and delivery reports between UEs and devices.

Four messages, each requesting a delivery report (IMDN):

1. the first UE to the second (both registered), when the plan has two;
2. the first UE to the offline UE, stored by the server (store-and-forward)
   and delivered once that UE registers;
3. the first UE to a constrained device, delivered through its gateway;
4. a constrained device to the first UE, relayed by the gateway.

Each recipient fetches its inbox and sends the IMDN; the originator then
fetches the reports. The round returns one row per message with its MSGRESP status,
whether it was delivered and its delivery report.
"""

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from msgin5g.deployment.plan import REGISTERED, DemoPlan, PlannedDevice, PlannedUe
from msgin5g.gateway.device import DeviceClient, DeviceError
from msgin5g.service.messages import InboxItem, MessageType
from msgin5g.service.messaging_client import MessagingError, MessagingSession, new_msg_id
from msgin5g.service.ue_profile import UeProfile
from msgin5g.service.usim import Usim

DELIVERED = "delivered"
REPORT_SUCCESS = "REPT_DELY_SUCCESS"
# Bounds of each fetch loop; the gateway polls its upstream inbox every 0.3 s.
FETCH_DEADLINE_SECONDS = 8.0
FETCH_INTERVAL_SECONDS = 0.3

BuildProfile = Callable[[PlannedUe], UeProfile]


@dataclass
class _Message:
    """One message of the round and what became of it."""

    sender: str
    recipient: str
    msg_id: str = field(default_factory=new_msg_id)
    status: str | None = None
    cause: str | None = None
    delivered: bool = False
    delivery_report: str | None = None
    expected_status: str = "DELY_QUEUED"

    def row(self) -> dict[str, Any]:
        outcome = DELIVERED if self.delivered else (self.status or "failed")
        as_expected = self.status == self.expected_status and self.delivered and self.delivery_report == REPORT_SUCCESS
        return {
            "from": self.sender,
            "to": self.recipient,
            "msg_id": self.msg_id,
            "status": self.status,
            "outcome": outcome,
            "cause": self.cause,
            "delivery_report": self.delivery_report,
            "as_expected": as_expected,
        }


async def run_message_round(
    plan: DemoPlan, gateway_address: tuple[str, int], build_profile: BuildProfile
) -> list[dict[str, Any]]:
    """Send the round's messages, deliver them, collect the reports; return one row per message."""
    if plan.gateway is None or plan.offline_ue is None:
        raise ValueError("the message round needs the plan's gateway and offline UE")
    first = plan.ues[0]
    second = plan.ues[1] if len(plan.ues) > 1 and plan.ues[1].expected == REGISTERED else None
    offline = plan.offline_ue
    to_device, from_device = plan.gateway.devices[0], plan.gateway.devices[1]

    async with httpx.AsyncClient(http1=False, http2=True, timeout=10.0) as http:
        sender = _Ue(http, build_profile(first))
        async with sender.session:
            await sender.register()
            messages = []
            if second is not None:
                messages.append(await sender.send(second.ue_service_id))
            messages.append(await sender.send(offline.ue_service_id, store_and_forward=True))
            messages.append(await sender.send(to_device.ue_service_id))
            from_gateway = await _device_send(from_device, gateway_address, first.ue_service_id)
            messages.append(from_gateway)

            if second is not None:
                await _receive(_Ue(http, build_profile(second)), messages)
            await _receive(_Ue(http, build_profile(offline)), messages)
            await _device_receive(to_device, gateway_address, messages)
            await sender.collect(messages)
            await _device_reports(from_device, gateway_address, from_gateway)
    return [message.row() for message in messages]


class _Ue:
    """One UE's messaging session in the round."""

    def __init__(self, http: httpx.AsyncClient, profile: UeProfile) -> None:
        self.profile = profile
        self.session = MessagingSession(http, profile, Usim(k=profile.k, opc=profile.opc))

    async def register(self) -> None:
        outcome = await self.session.register()
        if outcome.outcome != REGISTERED:
            raise MessagingError(outcome.cause or "REGISTRATION_FAILED", outcome.detail)

    async def send(self, recipient: str, *, store_and_forward: bool = False) -> _Message:
        message = _Message(self.profile.ue_service_id, recipient)
        if store_and_forward:
            message.expected_status = "DELY_STORED"
        result = await self.session.send(
            recipient, f"demo message to {recipient}", msg_id=message.msg_id,
            delivery_report=True, store_and_forward=store_and_forward,
        )
        message.status = str(result.status) if result.status is not None else None
        message.cause = result.cause.value if result.cause is not None else None
        return message

    async def collect(self, messages: list["_Message"]) -> None:
        """Fetch until every message to this UE arrived and every report on its messages came back."""
        me = self.profile.ue_service_id

        def handle(item: InboxItem) -> None:
            _record(item.message, me, messages)

        def done() -> bool:
            mine = [m for m in messages if m.sender == me and m.status is not None and m.cause is None]
            incoming = [m for m in messages if m.recipient == me]
            return all(m.delivery_report for m in mine) and all(m.delivered for m in incoming)

        deadline = time.monotonic() + FETCH_DEADLINE_SECONDS
        while not done() and time.monotonic() < deadline:
            await self.session.listen(handle, interval=FETCH_INTERVAL_SECONDS, duration=FETCH_INTERVAL_SECONDS)


async def _receive(recipient: _Ue, messages: list[_Message]) -> None:
    """Register the recipient and let it fetch; its session sends the IMDNs."""
    async with recipient.session:
        await recipient.register()
        await recipient.collect(messages)


def _record(document: dict[str, Any], me: str, messages: list[_Message]) -> None:
    for message in messages:
        if document.get("msgId") != message.msg_id:
            continue
        if document["messageType"] == MessageType.MSG and message.recipient == me:
            message.delivered = True
        elif document["messageType"] == MessageType.IMDN and message.sender == me:
            message.delivery_report = document.get("delivSt")


async def _device_send(device: PlannedDevice, address: tuple[str, int], recipient: str) -> _Message:
    message = _Message(device.ue_service_id, recipient)
    try:
        async with DeviceClient(*address, device.device_id, device.psk) as client:
            result = await client.send(
                recipient, f"reading from {device.device_id}", msg_id=message.msg_id, delivery_report=True
            )
        message.status = result.document.get("status")
        message.cause = result.cause
    except DeviceError as error:
        message.cause = error.cause
    return message


async def _device_fetch_until(
    device: PlannedDevice, address: tuple[str, int], messages: list[_Message]
) -> None:
    """Fetch from the gateway until a message to or a report for this device arrives; ack what came."""
    deadline = time.monotonic() + FETCH_DEADLINE_SECONDS
    async with DeviceClient(*address, device.device_id, device.psk) as client:
        acks: list[str] = []
        while time.monotonic() < deadline:
            result = await client.fetch(acks)
            acks = [item["deliveryId"] for item in result.items]
            for item in result.items:
                _record(item["message"], device.ue_service_id, messages)
            if acks:
                # The acknowledgement makes the gateway send the IMDN upstream.
                await client.fetch(acks, max_items=1)
                return
            await asyncio.sleep(FETCH_INTERVAL_SECONDS)


async def _device_receive(device: PlannedDevice, address: tuple[str, int], messages: list[_Message]) -> None:
    """Fetch as the device; a gateway that fails leaves the message undelivered in its row."""
    try:
        await _device_fetch_until(device, address, messages)
    except DeviceError:
        return


async def _device_reports(device: PlannedDevice, address: tuple[str, int], message: _Message) -> None:
    if message.cause is None:
        await _device_receive(device, address, [message])
