"""A constrained UE's client for its Gateway UE: CoAP over DTLS 1.2 PSK, or plain CoAP for tests.

    async with DeviceClient("127.0.0.1", 5690, "meter-01", psk) as device:
        await device.register("com.example.meter", urgency="URGENT")
        await device.send("meter-02", "21.5 C", delivery_report=True)
        result = await device.fetch(ack=["..."])

Over DTLS the device offers its device ID as PSK identity and keeps one
session for all its requests. With `plain=True` (unsecured CoAP over UDP,
loopback only) it names itself in the query `?device=DEVICE_ID` instead.
"""

import asyncio
import contextlib
import dataclasses
import json
import logging
import secrets
from typing import Any, Self

from aiocoap import Message
from aiocoap.numbers.codes import Code
from aiocoap.numbers.contentformat import ContentFormat

from msgin5g.coap import udp
from msgin5g.gateway.service import API_ROOT, DEREGISTRATIONS, INBOX, MESSAGES, REGISTRATIONS
from msgin5g.service.channel import ChannelError
from msgin5g.service.dtls_channel import DtlsClientSession
from msgin5g.ua import dtls12_psk as dtls
from msgin5g.ua.alerts import AlertDescription

logger = logging.getLogger(__name__)

DEFAULT_HANDSHAKE_TIMEOUT = 10.0
DEFAULT_MAX_RETRANSMISSIONS = 4
TOKEN_OCTETS = 4


class DeviceError(Exception):
    """The gateway could not be reached or refused the session; `cause` is a short code."""

    def __init__(self, cause: str, detail: str) -> None:
        super().__init__(detail)
        self.cause = cause
        self.detail = detail


@dataclasses.dataclass(frozen=True)
class DeviceResult:
    """The gateway's response: CoAP code, whether it succeeded, and the JSON body."""

    code: Code
    document: dict[str, Any]

    @property
    def accepted(self) -> bool:
        return self.code.is_successful() and self.document.get("result", "SUCCESS") == "SUCCESS"

    @property
    def cause(self) -> str | None:
        return self.document.get("cause")

    @property
    def detail(self) -> str:
        return str(self.document.get("detail", ""))

    @property
    def items(self) -> list[dict[str, Any]]:
        return list(self.document.get("items", []))


class _DeviceDtlsSession(DtlsClientSession):
    """DtlsClientSession whose failure text speaks of the device's PSK, not of K_AF."""

    def __init__(self, host: str, port: int, engine: dtls.Dtls12PskClient, device_id: str, **options: Any) -> None:
        super().__init__(host, port, engine, **options)
        self._device_id = device_id

    def _no_answer_cause(self) -> str:
        count = self._engine.retransmissions
        if self._engine.cipher_suite is None:
            return (
                f"no DTLS answer from {self.address} after {count} retransmissions; "
                "check that the gateway listens there"
            )
        return (
            f"the DTLS handshake with the gateway at {self.address} got no answer after {count} "
            f"retransmissions; the likely cause is a PSK that differs from the one configured "
            f"for device {self._device_id!r} at the gateway"
        )


class _PlainSession:
    """CON requests over an unsecured, connected UDP socket."""

    def __init__(self, host: str, port: int) -> None:
        self.address = f"{host}:{port}"
        self._host = host
        self._port = port
        self._ids = udp.MessageIds()
        self._inbox: asyncio.Queue[bytes] = asyncio.Queue(64)
        self._transport: asyncio.DatagramTransport | None = None

    async def connect(self) -> None:
        inbox = self._inbox

        class Protocol(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple) -> None:
                with contextlib.suppress(asyncio.QueueFull):
                    inbox.put_nowait(data)

        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(Protocol, remote_addr=(self._host, self._port))

    async def request(self, message: Message, *, policy: udp.RetransmissionPolicy) -> Message:
        message.mtype, message.mid = udp.CON, self._ids.next()
        message.token = secrets.token_bytes(TOKEN_OCTETS)
        octets = udp.encode(message)
        assert self._transport is not None
        for wait in policy.timeouts():
            self._transport.sendto(octets)
            try:
                async with asyncio.timeout(wait):
                    while True:
                        reply = self._decode(await self._inbox.get())
                        if reply is None or not reply.code.is_response():
                            continue
                        if bytes(reply.token) == bytes(message.token):
                            return reply
            except TimeoutError:
                continue
        raise ChannelError(f"no CoAP response from {self.address} after {policy.max_retransmit} retransmissions")

    def _decode(self, datagram: bytes) -> Message | None:
        try:
            return udp.decode(datagram)
        except udp.CoapUdpError as error:
            logger.info("datagram from %s ignored: %s", self.address, error)
            return None

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class DeviceClient:
    """One device's requests to its Gateway UE over one session."""

    def __init__(
        self,
        host: str,
        port: int,
        device_id: str,
        psk: bytes | None = None,
        *,
        plain: bool = False,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        max_retransmissions: int = DEFAULT_MAX_RETRANSMISSIONS,
        coap_policy: udp.RetransmissionPolicy = udp.RetransmissionPolicy(),
    ) -> None:
        if not plain and not psk:
            raise ValueError("a DTLS device needs its PSK; pass psk=, or plain=True for the unsecured test transport")
        self.device_id = device_id
        self._host = host
        self._port = port
        self._psk = psk
        self._plain = plain
        self._handshake_timeout = handshake_timeout
        self._max_retransmissions = max_retransmissions
        self._policy = coap_policy
        self._session: _DeviceDtlsSession | _PlainSession | None = None

    def __repr__(self) -> str:
        transport = "coap" if self._plain else "coaps"
        return f"DeviceClient({self.device_id!r}, {transport}://{self._host}:{self._port})"

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    async def connect(self) -> None:
        """Open the session (the DTLS handshake); raise DeviceError with the cause."""
        if self._plain:
            session: _DeviceDtlsSession | _PlainSession = _PlainSession(self._host, self._port)
        else:
            psk = self._psk
            assert psk is not None
            engine = dtls.Dtls12PskClient(self.device_id.encode("ascii"), lambda suite: psk)
            session = _DeviceDtlsSession(
                self._host, self._port, engine, self.device_id,
                handshake_timeout=self._handshake_timeout, max_retransmissions=self._max_retransmissions,
            )
        try:
            await session.connect()
        except ChannelError as error:
            session.close()
            raise self._error(error) from None
        except OSError as error:
            session.close()
            detail = f"cannot reach the gateway at {self._host}:{self._port}: {error}"
            raise DeviceError("GATEWAY_UNREACHABLE", detail) from None
        self._session = session

    def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.close()

    # Operations

    async def register(
        self, application_id: str, urgency: str = "NORMAL", expiration: str | None = None, layer2_id: str | None = None
    ) -> DeviceResult:
        """Ask the gateway to register this device (URGENT at once, NORMAL in the next BULK_REG)."""
        body: dict[str, Any] = {"applicationId": application_id, "urgency": urgency}
        if expiration is not None:
            body["expirationTime"] = expiration
        if layer2_id is not None:
            body["layer2Id"] = layer2_id
        return await self._post(REGISTRATIONS, body)

    async def deregister(self, application_id: str) -> DeviceResult:
        return await self._post(DEREGISTRATIONS, {"applicationId": application_id})

    async def send(
        self,
        dest: str,
        payload: str,
        *,
        msg_id: str | None = None,
        delivery_report: bool = False,
        store_and_forward: bool = False,
        expiry: str | None = None,
        ori_addr: str | None = None,
    ) -> DeviceResult:
        """Send a message to the UE service ID `dest`; the result is the server's MSGRESP as relayed."""
        body: dict[str, Any] = {"destAddr": dest, "payload": payload}
        if msg_id is not None:
            body["msgId"] = msg_id
        if delivery_report:
            body["delivStReqInd"] = True
        if store_and_forward:
            body["stoAndFwInd"] = True
        if expiry is not None:
            body["stoAndFwParams"] = {"exprTime": expiry}
        if ori_addr is not None:
            body["oriAddr"] = ori_addr
        return await self._post(MESSAGES, body)

    async def fetch(self, ack: list[str] | tuple[str, ...] = (), max_items: int | None = None) -> DeviceResult:
        """Acknowledge `ack`, then return the queued items (`result.items`) and `more`."""
        body: dict[str, Any] = {}
        if ack:
            body["ack"] = list(ack)
        if max_items is not None:
            body["maxItems"] = max_items
        return await self._post(INBOX, body)

    async def post(self, resource: str, body: Any) -> DeviceResult:
        """POST any JSON body to a gateway resource, for requests the other methods do not build."""
        return await self._post(resource, body)

    # CoAP

    async def _post(self, resource: str, body: Any) -> DeviceResult:
        if self._session is None:
            await self.connect()
        assert self._session is not None
        message = Message(code=Code.POST, payload=json.dumps(body).encode("utf-8"))
        message.opt.uri_path = (*API_ROOT, resource)
        message.opt.content_format = ContentFormat.JSON
        if self._plain:
            message.opt.uri_query = (f"device={self.device_id}",)
        try:
            response = await self._session.request(message, policy=self._policy)
        except ChannelError as error:
            self.close()
            raise self._error(error) from None
        return self._result(response)

    @staticmethod
    def _result(response: Message) -> DeviceResult:
        code = Code(int(response.code))
        payload = bytes(response.payload)
        if response.opt.content_format == ContentFormat.JSON:
            try:
                document = json.loads(payload.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                document = None
            if isinstance(document, dict):
                return DeviceResult(code, document)
        text = payload.decode("utf-8", errors="replace")
        result = "SUCCESS" if code.is_successful() else "FAILURE"
        return DeviceResult(code, {"result": result, "detail": text or str(code)})

    def _error(self, error: ChannelError) -> DeviceError:
        if error.alert is AlertDescription.unknown_psk_identity:
            return DeviceError(
                "DEVICE_UNKNOWN",
                f"the gateway does not know device {self.device_id!r} (alert unknown_psk_identity); "
                "check --device-id against the gateway configuration",
            )
        if error.alert is not None:
            return DeviceError(error.alert.name.upper(), f"the gateway ended the DTLS handshake: {error.cause}")
        return DeviceError("GATEWAY_UNREACHABLE", error.cause)
