"""The Gateway UE's local resources (a stand-in for MSGin5G-5), independent of the transport.

| resource                            | request body                                       | response messageType, success |
| ----------------------------------- | -------------------------------------------------- | ---------------- |
| POST /msgin5g-gw/v1/registrations   | applicationId, layer2Id?, urgency?, expirationTime? | REG, 2.01       |
| POST /msgin5g-gw/v1/deregistrations | applicationId                                      | DEREG, as relayed |
| POST /msgin5g-gw/v1/messages        | destAddr, payload, msgId?, oriAddr?, delivStReqInd?, stoAndFwInd?, stoAndFwParams? | MSGRESP, as relayed |
| POST /msgin5g-gw/v1/inbox           | ack?, maxItems?                                    | INBOX, 2.04     |

Every JSON response carries the messageType of its resource, failures too.

The listener authenticates the device (DTLS PSK identity = device_id) and
passes its device ID to `GatewayService.handle`. Before anything goes
upstream, the service checks that the request's applicationId is the one
configured for that device (the Application ID <-> local device identity
authorization), and messages carry the device's own UE service ID as oriAddr.
"""

import enum
import functools
import json
import logging
import secrets
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import jsonschema
from aiocoap import Message
from aiocoap.numbers.codes import Code
from aiocoap.numbers.contentformat import ContentFormat
from aiocoap.numbers.optionnumbers import OptionNumber

from msgin5g.gateway.backoff import UpstreamStatus, counted
from msgin5g.gateway.batcher import UPSTREAM_FAILED, RegistrationBatcher
from msgin5g.gateway.config import DeviceConfig, GatewayConfig
from msgin5g.gateway.store import GatewayStore
from msgin5g.gateway.upstream import (
    NORMAL,
    URGENT,
    BulkEntry,
    Upstream,
    UpstreamError,
    UpstreamReply,
    UpstreamRequestTooLarge,
)

logger = logging.getLogger(__name__)

API_ROOT = ("msgin5g-gw", "v1")
REGISTRATIONS = "registrations"
DEREGISTRATIONS = "deregistrations"
MESSAGES = "messages"
INBOX = "inbox"
SCHEMA_FILES = {
    REGISTRATIONS: "registration.json",
    DEREGISTRATIONS: "deregistration.json",
    MESSAGES: "message.json",
    INBOX: "inbox.json",
}
# The messageType of every JSON response of each resource.
RESPONSE_TYPES = {
    REGISTRATIONS: "REG",
    DEREGISTRATIONS: "DEREG",
    MESSAGES: "MSGRESP",
    INBOX: "INBOX",
}
DEFAULT_MAX_ITEMS = 20
# A schema error quotes at most this much of the jsonschema message (a payload may hold 8192 characters).
MAX_REASON_LENGTH = 200

# Uri-Query names the device on the unsecured test transport; DTLS ignores it.
UNDERSTOOD_OPTIONS = frozenset(
    {
        OptionNumber.URI_HOST,
        OptionNumber.URI_PORT,
        OptionNumber.URI_PATH,
        OptionNumber.URI_QUERY,
        OptionNumber.CONTENT_FORMAT,
        OptionNumber.ACCEPT,
    }
)


class GatewayCause(enum.StrEnum):
    """Causes that the gateway itself returns; causes relayed from the server keep their names."""

    MALFORMED_MESSAGE = "MALFORMED_MESSAGE"
    DEVICE_UNKNOWN = "DEVICE_UNKNOWN"
    DEVICE_NOT_AUTHORIZED = "DEVICE_NOT_AUTHORIZED"
    DEVICE_NOT_REGISTERED = "DEVICE_NOT_REGISTERED"
    ORIGINATOR_MISMATCH = "ORIGINATOR_MISMATCH"
    REQUEST_EXPIRED = "REQUEST_EXPIRED"
    UPSTREAM_UNAVAILABLE = "UPSTREAM_UNAVAILABLE"
    MESSAGE_TOO_LARGE = "MESSAGE_TOO_LARGE"


# Response codes of the gateway's causes, and of server causes in per-entry BULK_REG results.
CAUSE_CODES = {
    "MALFORMED_MESSAGE": Code.BAD_REQUEST,
    "DEVICE_UNKNOWN": Code.UNAUTHORIZED,
    "DEVICE_NOT_AUTHORIZED": Code.FORBIDDEN,
    "DEVICE_NOT_REGISTERED": Code.FORBIDDEN,
    "ORIGINATOR_MISMATCH": Code.FORBIDDEN,
    "REQUEST_EXPIRED": Code.BAD_REQUEST,
    "UPSTREAM_UNAVAILABLE": Code.SERVICE_UNAVAILABLE,
    "MESSAGE_TOO_LARGE": Code.REQUEST_ENTITY_TOO_LARGE,
    "UE_SERVICE_ID_NOT_ASSOCIATED": Code.FORBIDDEN,
    "NOT_REGISTERED": Code.NOT_FOUND,
    "AUTHORIZATION_UNAVAILABLE": Code.SERVICE_UNAVAILABLE,
}
DEFAULT_FAILURE_CODE = Code.FORBIDDEN


@functools.cache
def _validator(file_name: str) -> jsonschema.Draft202012Validator:
    text = resources.files("msgin5g.gateway.schemas").joinpath(file_name).read_text("utf-8")
    schema = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def json_response(code: Code, document: dict[str, Any]) -> Message:
    """Build a response with a JSON body (Content-Format 50)."""
    message = Message(code=code, payload=json.dumps(document).encode("utf-8"))
    message.opt.content_format = ContentFormat.JSON
    return message


def failure(cause: str, detail: str, code: Code | None = None, **members: Any) -> Message:
    """Build a FAILURE response; the code comes from CAUSE_CODES unless given."""
    document = {"result": "FAILURE", "cause": cause, "detail": detail, **members}
    return json_response(code or CAUSE_CODES.get(cause, DEFAULT_FAILURE_CODE), document)


def diagnostic(code: Code, text: str) -> Message:
    # RFC 7252 clause 5.5.2: a diagnostic payload is UTF-8 text without Content-Format.
    return Message(code=code, payload=text.encode("utf-8"))


def with_message_type(response: Message, message_type: str) -> Message:
    """Add `messageType` to a JSON response body that has none (diagnostic payloads stay as they are)."""
    if response.opt.content_format != ContentFormat.JSON:
        return response
    document = json.loads(bytes(response.payload))
    if not isinstance(document, dict) or "messageType" in document:
        return response
    document = {"messageType": message_type, **document}
    response.payload = json.dumps(document).encode("utf-8")
    return response


def schema_reason(error: jsonschema.ValidationError) -> str:
    """Describe a failed schema keyword without quoting a long value back to the device."""
    keyword, limit = error.validator, error.validator_value
    if keyword == "maxLength":
        return f"longer than {limit} characters"
    if keyword == "minLength":
        return f"shorter than {limit} characters"
    if keyword == "pattern":
        return f"does not match the pattern {limit}"
    if keyword == "maxItems":
        return f"more than {limit} entries"
    if keyword == "type":
        return f"is not of type {limit}"
    message = error.message
    return message if len(message) <= MAX_REASON_LENGTH else message[: MAX_REASON_LENGTH - 3] + "..."


def local_schema(file_name: str) -> dict[str, Any]:
    """Return one of the gateway's JSON Schemas (gateway/schemas/), for checks made before a request is sent."""
    return dict(_validator(file_name).schema)


def parse_time(text: str) -> datetime | None:
    """Parse an RFC 3339 date-time with an offset; return None if it is not one."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo is not None else None


class GatewayService:
    """Decides the local requests of authenticated devices and relays them upstream."""

    def __init__(
        self,
        config: GatewayConfig,
        upstream: Upstream,
        store: GatewayStore,
        *,
        status: UpstreamStatus | None = None,
    ) -> None:
        self._config = config
        self._upstream = upstream
        self._store = store
        self._status = status if status is not None else UpstreamStatus()
        self.batcher = RegistrationBatcher(upstream, config.bulk_wait_ms)

    async def close(self) -> None:
        await self.batcher.close()

    async def handle(self, request: Message, device_id: str | None) -> Message:
        """Return the response to one CoAP request of the device authenticated as `device_id`.

        `device_id` is None when a request on the unsecured test transport has no `?device=` query.
        """
        rejection = self._check_coap(request)
        if rejection is not None:
            return rejection
        resource = request.opt.uri_path[-1]
        response = await self._handle_resource(resource, bytes(request.payload), device_id)
        return with_message_type(response, RESPONSE_TYPES[resource])

    async def _handle_resource(self, resource: str, payload: bytes, device_id: str | None) -> Message:
        if device_id is None:
            return failure(
                GatewayCause.DEVICE_UNKNOWN,
                "the unsecured test transport needs the query ?device=DEVICE_ID",
                Code.UNAUTHORIZED,
            )
        device = self._config.device(device_id)
        if device is None:
            return failure(GatewayCause.DEVICE_UNKNOWN, f"device {device_id!r} is not configured at this gateway")
        try:
            body = self._parse_body(resource, payload)
        except ValueError as error:
            return failure(GatewayCause.MALFORMED_MESSAGE, str(error))

        try:
            if resource == REGISTRATIONS:
                return await self._register(device, body)
            if resource == DEREGISTRATIONS:
                return await self._deregister(device, body)
            if resource == MESSAGES:
                return await self._relay_message(device, body)
            return await self._inbox(device, body)
        except UpstreamRequestTooLarge as error:
            logger.info("device %s: %s not relayed: %s", device.device_id, resource, error.detail)
            return failure(GatewayCause.MESSAGE_TOO_LARGE, error.detail)
        except UpstreamError as error:
            logger.warning("device %s: %s not relayed (%s): %s", device.device_id, resource, error.cause, error.detail)
            return failure(GatewayCause.UPSTREAM_UNAVAILABLE, self._unavailable_detail(error))

    def _unavailable_detail(self, error: UpstreamError) -> str:
        """Describe the failed relay and the upstream session's state, so that a device can tell how long to wait."""
        state = f"Upstream session: {self._upstream.state}"
        if self._status.failures:
            state += f"; {self._status.describe()}"
        return (
            f"the gateway has no working session to the MSGin5G Server ({error.cause}): {error.detail.rstrip('.')}. "
            f"{state}. Try again later"
        )

    # CoAP checks

    def _check_coap(self, request: Message) -> Message | None:
        for option in request.opt.option_list():
            number = OptionNumber(option.number)
            if number.is_critical() and number not in UNDERSTOOD_OPTIONS:
                return diagnostic(Code.BAD_OPTION, f"critical option {int(number)} is not supported")
        path = tuple(request.opt.uri_path)
        if len(path) != 3 or path[:2] != API_ROOT or path[2] not in SCHEMA_FILES:
            known = ", ".join("/" + "/".join((*API_ROOT, name)) for name in SCHEMA_FILES)
            return diagnostic(Code.NOT_FOUND, f"no resource /{'/'.join(path)}; the gateway serves {known}")
        if request.code != Code.POST:
            return diagnostic(Code.METHOD_NOT_ALLOWED, f"use POST on /{'/'.join(path)}, not {request.code}")
        if request.opt.content_format != ContentFormat.JSON:
            return diagnostic(
                Code.UNSUPPORTED_CONTENT_FORMAT, "send the body as application/json (Content-Format 50)"
            )
        if request.opt.accept is not None and request.opt.accept != ContentFormat.JSON:
            return diagnostic(Code.NOT_ACCEPTABLE, "the gateway responds with application/json (Accept 50) only")
        return None

    def _parse_body(self, resource: str, payload: bytes) -> dict[str, Any]:
        try:
            document = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"the body is not UTF-8 JSON ({error}); send a JSON object") from None
        errors = sorted(_validator(SCHEMA_FILES[resource]).iter_errors(document), key=lambda e: list(e.absolute_path))
        if errors:
            first = errors[0]
            pointer = "".join(f"/{part}" for part in first.absolute_path) or "/"
            raise ValueError(
                f"the {resource} body is invalid at {pointer}: {schema_reason(first)}; see "
                f"POST /msgin5g-gw/v1/{resource} in docs/msgin5g-1.md for the members and their limits"
            )
        return document

    def _authorize(self, device: DeviceConfig, body: dict[str, Any], resource: str) -> Message | None:
        if body["applicationId"] == device.application_id:
            return None
        logger.warning(
            "device %s: %s rejected, its applicationId is not the configured one; nothing relayed",
            device.device_id,
            resource,
        )
        return failure(
            GatewayCause.DEVICE_NOT_AUTHORIZED,
            f"device {device.device_id!r} is not authorized for applicationId {body['applicationId']!r}; "
            "use the Application ID configured for this device at the gateway",
        )

    # Registration

    async def _register(self, device: DeviceConfig, body: dict[str, Any]) -> Message:
        rejection = self._authorize(device, body, REGISTRATIONS)
        if rejection is not None:
            return rejection
        urgency = body.get("urgency", NORMAL)
        expiration = body.get("expirationTime")
        if expiration is not None:
            expires = parse_time(expiration)
            if expires is None:
                return failure(
                    GatewayCause.MALFORMED_MESSAGE,
                    f"expirationTime {expiration!r} is not an RFC 3339 date-time with an offset, "
                    "for example 2030-01-01T00:00:00Z",
                )
            if expires <= datetime.now(UTC):
                return failure(GatewayCause.REQUEST_EXPIRED, f"expirationTime {expiration} has passed; nothing relayed")

        if urgency == URGENT:
            reply = await self._upstream.register(device.ue_service_id)
            result, code = self._single_result(device, reply)
        else:
            result = await self.batcher.register(BulkEntry(device.ue_service_id, NORMAL, expiration))
            code = None
        return await self._registration_response(device, result, urgency, code)

    def _single_result(self, device: DeviceConfig, reply: UpstreamReply) -> tuple[dict[str, Any], Code]:
        result = {
            "ueServiceId": device.ue_service_id,
            "result": reply.document.get("result", "FAILURE"),
            "detail": reply.detail,
        }
        if reply.cause is not None:
            result["cause"] = reply.cause
        return result, Code(reply.code)

    async def _registration_response(
        self, device: DeviceConfig, result: dict[str, Any], urgency: str, code: Code | None
    ) -> Message:
        detail = str(result.get("detail", ""))
        if result.get("result") == "SUCCESS":
            await self._store.set_registered(device.device_id, device.ue_service_id)
            logger.info("device %s registered as %s (%s)", device.device_id, device.ue_service_id, urgency)
            document = {"result": "SUCCESS", "detail": detail, "ueServiceId": device.ue_service_id, "urgency": urgency}
            return json_response(Code.CREATED, document)

        if result.get(UPSTREAM_FAILED):
            error = UpstreamError(str(result.get("cause")), detail)
            return failure(GatewayCause.UPSTREAM_UNAVAILABLE, self._unavailable_detail(error), urgency=urgency)
        cause = str(result.get("cause") or "REJECTED")
        logger.info("device %s: registration of %s rejected (%s)", device.device_id, device.ue_service_id, cause)
        failure_code = code if code is not None and code.class_ in (4, 5) else None
        return failure(cause, detail, failure_code, ueServiceId=device.ue_service_id, urgency=urgency)

    async def _deregister(self, device: DeviceConfig, body: dict[str, Any]) -> Message:
        rejection = self._authorize(device, body, DEREGISTRATIONS)
        if rejection is not None:
            return rejection
        reply = await self._upstream.deregister(device.ue_service_id)
        if reply.accepted or reply.cause == "NOT_REGISTERED":
            await self._store.clear_registered(device.device_id)
        return self._relayed(reply)

    # Messages

    async def _relay_message(self, device: DeviceConfig, body: dict[str, Any]) -> Message:
        claimed = body.get("oriAddr")
        if claimed is not None and claimed != device.ue_service_id:
            logger.warning("device %s: message with a foreign oriAddr rejected; nothing relayed", device.device_id)
            return failure(
                GatewayCause.ORIGINATOR_MISMATCH,
                f"oriAddr {claimed!r} is not this device's UE service ID {device.ue_service_id!r}; "
                "omit oriAddr, the gateway sets it",
            )
        if not await self._store.is_registered(device.device_id, device.ue_service_id):
            return failure(
                GatewayCause.DEVICE_NOT_REGISTERED,
                f"device {device.device_id!r} is not registered through this gateway; "
                "POST /msgin5g-gw/v1/registrations first",
            )

        message = {
            "messageType": "MSG",
            "oriAddr": device.ue_service_id,
            "destAddr": body["destAddr"],
            "msgId": body.get("msgId") or f"gw-{secrets.token_hex(8)}",
            "payload": body["payload"],
            "appId": device.application_id,
        }
        for member in ("delivStReqInd", "stoAndFwInd", "stoAndFwParams"):
            if member in body:
                message[member] = body[member]
        reply = await self._upstream.send(message)
        logger.info("device %s: MSG %s relayed (%s)", device.device_id, message["msgId"], reply.document.get("status"))
        return self._relayed(reply)

    @staticmethod
    def _relayed(reply: UpstreamReply) -> Message:
        return json_response(Code(reply.code), reply.document)

    # Inbox

    async def _inbox(self, device: DeviceConfig, body: dict[str, Any]) -> Message:
        acked = 0
        if body.get("ack"):
            acked = await self._store.acknowledge(
                device.device_id, body["ack"], functools.partial(delivery_report, device)
            )
            await self.send_pending_reports()
        items, more = await self._store.fetch(device.device_id, body.get("maxItems", DEFAULT_MAX_ITEMS))
        document = {
            "result": "SUCCESS",
            "detail": f"{counted(len(items), 'item')}, {acked} acknowledged",
            "items": [{"deliveryId": delivery_id, "message": message} for delivery_id, message in items],
            "more": more,
        }
        return json_response(Code.CHANGED, document)

    async def send_pending_reports(self) -> int:
        """Send the stored IMDNs upstream; return how many the server took. Failures stay stored."""
        sent = 0
        for row_id, report in await self._store.pending_reports():
            try:
                reply = await self._upstream.report(report)
            except UpstreamError as error:
                logger.info("IMDN for %s kept for a later attempt: %s", report.get("msgId"), error.detail)
                return sent
            if not reply.accepted:
                # NOTE: a rejected IMDN is dropped, because sending it again gets the same response.
                logger.warning(
                    "the server rejected the IMDN for %s: %s %s", report.get("msgId"), reply.cause, reply.detail
                )
            await self._store.remove_report(row_id)
            sent += reply.accepted
        return sent


def delivery_report(device: DeviceConfig, message: dict[str, Any]) -> dict[str, Any] | None:
    """Build the IMDN for a MSG that the device acknowledged, if its originator requested one."""
    if message.get("messageType") != "MSG" or not message.get("delivStReqInd"):
        return None
    return {
        "messageType": "IMDN",
        "oriAddr": device.ue_service_id,
        "destAddr": message["oriAddr"],
        "msgId": message["msgId"],
        "delivSt": "REPT_DELY_SUCCESS",
    }
