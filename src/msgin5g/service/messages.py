"""MSGin5G-1 messages over CoAP: operations, paths, JSON bodies and causes.

TS 24.538 clause 7.1 gives every message a message type (REG, DEREG, MSG,
MSGRESP, IMDN, ...) and Annex A.3 carries JSON (CoAP Content-Format 50), but
the copies read name no CoAP paths or JSON members. This module is the single
definition of both for this project. The JSON Schemas in `schemas/` are the
normative form, and docs/msgin5g-1.md publishes them.

Every operation is a POST with a JSON body:

| operation | CoAP request                          | response type | success |
| --------- | ------------------------------------- | ------------- | ------- |
| REG       | POST /msgin5g/v1/registrations        | REG           | 2.01 Created, or 2.04 Changed for a repeated REG |
| DEREG     | POST /msgin5g/v1/deregistrations      | DEREG         | 2.02 Deleted |
| BULK_REG  | POST /msgin5g/v1/bulk-registrations   | REG           | 2.04 Changed |
| MSG       | POST /msgin5g/v1/messages             | MSGRESP       | 2.01 Created |
| IMDN      | POST /msgin5g/v1/delivery-reports     | IMDN          | 2.04 Changed |
| INBOX     | POST /msgin5g/v1/inbox                | INBOX         | 2.04 Changed |

INBOX is this project's own message type: the Ua* profiles carry requests from
the UE only, so the UE fetches what the server queued for it.
"""

import dataclasses
import enum
import functools
import json
from datetime import datetime
from importlib import resources
from typing import Any

import jsonschema
import referencing
from aiocoap import Message
from aiocoap.numbers.codes import Code
from aiocoap.numbers.contentformat import ContentFormat

API_ROOT = ("msgin5g", "v1")
REGISTRATIONS_PATH = (*API_ROOT, "registrations")
DEREGISTRATIONS_PATH = (*API_ROOT, "deregistrations")
BULK_REGISTRATIONS_PATH = (*API_ROOT, "bulk-registrations")
MESSAGES_PATH = (*API_ROOT, "messages")
DELIVERY_REPORTS_PATH = (*API_ROOT, "delivery-reports")
INBOX_PATH = (*API_ROOT, "inbox")

CONTENT_FORMAT_JSON = ContentFormat.JSON  # 50, application/json

SCHEMA_PACKAGE = "msgin5g.service.schemas"
RESPONSE_SCHEMA_FILE = "response.json"
COMMON_SCHEMA_FILE = "common.json"

DEFAULT_INBOX_ITEMS = 20
# Lengths of one invalidParams reason and of a MALFORMED_MESSAGE detail, within the schemas' limits.
MAX_REASON_LENGTH = 200
MAX_DETAIL_LENGTH = 1500


class MessageType(enum.StrEnum):
    """Message types of TS 24.538 clause 7.1 that this module defines, and the project's INBOX."""

    REG = "REG"
    DEREG = "DEREG"
    MSG = "MSG"
    MSGRESP = "MSGRESP"
    IMDN = "IMDN"
    INBOX = "INBOX"


@dataclasses.dataclass(frozen=True)
class OperationSpec:
    """One MSGin5G-1 resource: its path, message types, schema files and success code."""

    path: tuple[str, ...]
    request_type: MessageType
    response_type: MessageType
    request_schema: str
    response_schema: str
    success_code: Code


class Operation(enum.StrEnum):
    """One MSGin5G-1 resource. BULK_REG shares the message type REG with REG."""

    REG = "REG"
    DEREG = "DEREG"
    BULK_REG = "BULK_REG"
    MSG = "MSG"
    IMDN = "IMDN"
    INBOX = "INBOX"

    @property
    def spec(self) -> OperationSpec:
        return OPERATIONS[self]

    @property
    def path(self) -> tuple[str, ...]:
        return OPERATIONS[self].path

    @property
    def request_type(self) -> MessageType:
        return OPERATIONS[self].request_type

    @property
    def response_type(self) -> MessageType:
        return OPERATIONS[self].response_type


OPERATIONS: dict[Operation, OperationSpec] = {
    Operation.REG: OperationSpec(
        REGISTRATIONS_PATH, MessageType.REG, MessageType.REG, "reg.json", "response.json", Code.CREATED
    ),
    Operation.DEREG: OperationSpec(
        DEREGISTRATIONS_PATH, MessageType.DEREG, MessageType.DEREG, "dereg.json", "response.json", Code.DELETED
    ),
    Operation.BULK_REG: OperationSpec(
        BULK_REGISTRATIONS_PATH,
        MessageType.REG,
        MessageType.REG,
        "bulk-reg.json",
        "bulk-reg-response.json",
        Code.CHANGED,
    ),
    Operation.MSG: OperationSpec(
        MESSAGES_PATH, MessageType.MSG, MessageType.MSGRESP, "msg.json", "msgresp.json", Code.CREATED
    ),
    Operation.IMDN: OperationSpec(
        DELIVERY_REPORTS_PATH, MessageType.IMDN, MessageType.IMDN, "imdn.json", "response.json", Code.CHANGED
    ),
    Operation.INBOX: OperationSpec(
        INBOX_PATH, MessageType.INBOX, MessageType.INBOX, "inbox.json", "inbox-response.json", Code.CHANGED
    ),
}

# Kept for callers that address REG and DEREG by message type.
REQUEST_PATHS = {MessageType.REG: REGISTRATIONS_PATH, MessageType.DEREG: DEREGISTRATIONS_PATH}
OPERATION_BY_PATH = {spec.path: operation for operation, spec in OPERATIONS.items()}


class ResultKind(enum.StrEnum):
    """The `result` member of every response."""

    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"


class Cause(enum.StrEnum):
    """Reason for a failed request. Each cause maps to one CoAP response code."""

    # The AAnF does not know the A-KID. The TLS handshake fails first in this
    # profile, so no CoAP response carries it; kept for other Ua* profiles.
    UNKNOWN_A_KID = "UNKNOWN_A_KID"
    UE_SERVICE_ID_NOT_ASSOCIATED = "UE_SERVICE_ID_NOT_ASSOCIATED"
    MALFORMED_MESSAGE = "MALFORMED_MESSAGE"
    NOT_REGISTERED = "NOT_REGISTERED"
    AUTHORIZATION_UNAVAILABLE = "AUTHORIZATION_UNAVAILABLE"
    # oriAddr is not registered by the UE ID of this channel: spoofed, or de-registered.
    ORIGINATOR_NOT_REGISTERED = "ORIGINATOR_NOT_REGISTERED"
    # The recipient is not registered and the MSG did not allow store-and-forward.
    RECIPIENT_NOT_REGISTERED = "RECIPIENT_NOT_REGISTERED"
    RECIPIENT_UNKNOWN = "RECIPIENT_UNKNOWN"
    DUPLICATE_MESSAGE_ID = "DUPLICATE_MESSAGE_ID"
    # An IMDN for a MSG that the server never delivered to the reporter.
    UNKNOWN_MESSAGE = "UNKNOWN_MESSAGE"
    # A bulk registration entry whose expirationTime had passed; only per entry.
    REQUEST_EXPIRED = "REQUEST_EXPIRED"
    # The recipient's queue contains the configured maximum of items.
    STORE_FULL = "STORE_FULL"


CAUSE_RESPONSE_CODES = {
    Cause.UNKNOWN_A_KID: Code.UNAUTHORIZED,
    Cause.UE_SERVICE_ID_NOT_ASSOCIATED: Code.FORBIDDEN,
    Cause.MALFORMED_MESSAGE: Code.BAD_REQUEST,
    Cause.NOT_REGISTERED: Code.NOT_FOUND,
    Cause.AUTHORIZATION_UNAVAILABLE: Code.SERVICE_UNAVAILABLE,
    Cause.ORIGINATOR_NOT_REGISTERED: Code.FORBIDDEN,
    Cause.RECIPIENT_NOT_REGISTERED: Code.NOT_FOUND,
    Cause.RECIPIENT_UNKNOWN: Code.NOT_FOUND,
    Cause.DUPLICATE_MESSAGE_ID: Code.CONFLICT,
    Cause.UNKNOWN_MESSAGE: Code.NOT_FOUND,
    # NOTE: only a bulk entry carries REQUEST_EXPIRED, and the bulk response stays 2.04.
    Cause.REQUEST_EXPIRED: Code.BAD_REQUEST,
    Cause.STORE_FULL: Code.SERVICE_UNAVAILABLE,
}


class Urgency(enum.StrEnum):
    NORMAL = "NORMAL"
    URGENT = "URGENT"


class DeliveryStatus(enum.StrEnum):
    """`status` of a MSGRESP."""

    DELY_QUEUED = "DELY_QUEUED"
    DELY_STORED = "DELY_STORED"
    DELY_FAILED = "DELY_FAILED"


class ReportStatus(enum.StrEnum):
    """`delivSt` of an IMDN."""

    REPT_DELY_SUCCESS = "REPT_DELY_SUCCESS"
    REPT_DELY_FAILED = "REPT_DELY_FAILED"


@dataclasses.dataclass(frozen=True)
class InvalidParam:
    """A request member at fault, as a JSON Pointer (RFC 6901) into the request."""

    param: str
    reason: str


class MalformedMessage(ValueError):
    """A request body that does not match its schema; names the member and the fix."""

    def __init__(self, detail: str, invalid_params: tuple[InvalidParam, ...] = ()) -> None:
        super().__init__(detail)
        self.detail = detail
        self.invalid_params = invalid_params


# Requests


@dataclasses.dataclass(frozen=True)
class RegistrationRequest:
    """REG (TS 23.554 Table 8.2.1-1): the UE service ID and an optional client profile.

    `constrained_ue` marks a constrained UE behind the sending Gateway UE.
    """

    ue_service_id: str
    client_profile: dict[str, Any] | None = None
    constrained_ue: bool = False

    operation = Operation.REG
    message_type = MessageType.REG

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"messageType": "REG", "ueServiceId": self.ue_service_id}
        if self.client_profile is not None:
            document["clientProfile"] = self.client_profile
        if self.constrained_ue:
            document["constrainedUe"] = True
        return document


@dataclasses.dataclass(frozen=True)
class DeregistrationRequest:
    """DEREG: the UE service ID to de-register."""

    ue_service_id: str

    operation = Operation.DEREG
    message_type = MessageType.DEREG

    def to_json(self) -> dict[str, Any]:
        return {"messageType": "DEREG", "ueServiceId": self.ue_service_id}


@dataclasses.dataclass(frozen=True)
class BulkRegistrationEntry:
    """One constrained UE in a bulk registration (TS 23.554 clause 8.2.7)."""

    ue_service_id: str
    client_profile: dict[str, Any] | None = None
    urgency: Urgency = Urgency.NORMAL
    # Timezone-aware; the server fails the entry with REQUEST_EXPIRED after it.
    expiration_time: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"ueServiceId": self.ue_service_id}
        if self.client_profile is not None:
            document["clientProfile"] = self.client_profile
        if self.urgency is not Urgency.NORMAL:
            document["urgency"] = str(self.urgency)
        if self.expiration_time is not None:
            document["expirationTime"] = format_time(self.expiration_time)
        return document


@dataclasses.dataclass(frozen=True)
class BulkRegistrationRequest:
    """REG of several constrained UEs at once, sent by their Gateway UE."""

    registrations: tuple[BulkRegistrationEntry, ...]

    operation = Operation.BULK_REG
    message_type = MessageType.REG

    def to_json(self) -> dict[str, Any]:
        return {"messageType": "REG", "registrations": [entry.to_json() for entry in self.registrations]}


@dataclasses.dataclass(frozen=True)
class MessageRequest:
    """MSG (TS 23.554 clause 8.3.2): a point-to-point message from oriAddr to destAddr."""

    ori_addr: str
    dest_addr: str
    msg_id: str
    payload: str
    app_id: str | None = None
    deliv_st_req_ind: bool = False
    sto_and_fw_ind: bool = False
    # stoAndFwParams.exprTime, timezone-aware; None lets the server apply its default.
    expiry_time: datetime | None = None

    operation = Operation.MSG
    message_type = MessageType.MSG

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "messageType": "MSG",
            "oriAddr": self.ori_addr,
            "destAddr": self.dest_addr,
            "msgId": self.msg_id,
            "payload": self.payload,
        }
        if self.app_id is not None:
            document["appId"] = self.app_id
        if self.deliv_st_req_ind:
            document["delivStReqInd"] = True
        if self.sto_and_fw_ind:
            document["stoAndFwInd"] = True
        if self.expiry_time is not None:
            document["stoAndFwParams"] = {"exprTime": format_time(self.expiry_time)}
        return document


@dataclasses.dataclass(frozen=True)
class DeliveryReport:
    """IMDN: the recipient (ori_addr) reports the delivery of msg_id to its originator (dest_addr)."""

    ori_addr: str
    dest_addr: str
    msg_id: str
    deliv_st: ReportStatus
    failure_cause: str | None = None

    operation = Operation.IMDN
    message_type = MessageType.IMDN

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "messageType": "IMDN",
            "oriAddr": self.ori_addr,
            "destAddr": self.dest_addr,
            "msgId": self.msg_id,
            "delivSt": str(self.deliv_st),
        }
        if self.failure_cause is not None:
            document["failureCause"] = self.failure_cause
        return document


@dataclasses.dataclass(frozen=True)
class InboxRequest:
    """INBOX: acknowledge processed items, then fetch the queued ones."""

    ack: tuple[str, ...] = ()
    max_items: int = DEFAULT_INBOX_ITEMS
    # None fetches for every UE service ID that this UE registered.
    ue_service_ids: tuple[str, ...] | None = None
    # Largest response body the UE's transport carries; None leaves it to the server.
    max_octets: int | None = None

    operation = Operation.INBOX
    message_type = MessageType.INBOX

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"messageType": "INBOX"}
        if self.ack:
            document["ack"] = list(self.ack)
        if self.max_items != DEFAULT_INBOX_ITEMS:
            document["maxItems"] = self.max_items
        if self.ue_service_ids is not None:
            document["ueServiceIds"] = list(self.ue_service_ids)
        if self.max_octets is not None:
            document["maxOctets"] = self.max_octets
        return document


Request = (
    RegistrationRequest
    | DeregistrationRequest
    | BulkRegistrationRequest
    | MessageRequest
    | DeliveryReport
    | InboxRequest
)


def format_time(moment: datetime) -> str:
    """Format a timezone-aware datetime as RFC 3339 with Z for UTC."""
    if moment.tzinfo is None:
        raise ValueError(f"time {moment.isoformat()} has no time zone; pass a timezone-aware datetime")
    return moment.isoformat().replace("+00:00", "Z")


# Schemas


@functools.cache
def _registry() -> referencing.Registry:
    """Return a registry of every schema file by its $id, so that schemas can refer to each other."""
    registry: referencing.Registry = referencing.Registry()
    for entry in resources.files(SCHEMA_PACKAGE).iterdir():
        if entry.name.endswith(".json"):
            schema = json.loads(entry.read_text("utf-8"))
            resource = referencing.Resource.from_contents(schema)
            registry = registry.with_resource(schema["$id"], resource)
    return registry


@functools.cache
def _validator(file_name: str) -> jsonschema.Draft202012Validator:
    text = resources.files(SCHEMA_PACKAGE).joinpath(file_name).read_text("utf-8")
    schema = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, registry=_registry())


def _as_operation(operation: "Operation | MessageType") -> Operation:
    """Return the operation; REG and DEREG may still be named by their message type."""
    if isinstance(operation, Operation):
        return operation
    if operation in (MessageType.REG, MessageType.DEREG):
        return Operation(str(operation))
    raise ValueError(f"message type {operation} names no single operation; pass an Operation")


def request_schema(operation: Operation | MessageType) -> dict[str, Any]:
    """Return the JSON Schema of an operation's request body."""
    return dict(_validator(_as_operation(operation).spec.request_schema).schema)


def invalid_msg_id(msg_id: str) -> str | None:
    """Return why `msg_id` breaks the MsgId rule of common.json, or None when it is valid."""
    rule = _validator(COMMON_SCHEMA_FILE).schema["$defs"]["MsgId"]
    errors = list(jsonschema.Draft202012Validator(rule).iter_errors(msg_id))
    if not errors:
        return None
    return (
        f"use {rule['minLength']} to {rule['maxLength']} characters from A-Z, a-z, 0-9 and . _ ~ : -"
    )


def response_schema(operation: Operation | MessageType | None = None) -> dict[str, Any]:
    """Return the JSON Schema of an operation's response body (response.json without one)."""
    file_name = RESPONSE_SCHEMA_FILE if operation is None else _as_operation(operation).spec.response_schema
    return dict(_validator(file_name).schema)


def schema_validator(file_name: str) -> jsonschema.Draft202012Validator:
    """Return the validator of one schema file, with references to the others resolved."""
    return _validator(file_name)


def request_validator(operation: Operation | MessageType) -> jsonschema.Draft202012Validator:
    """Return the validator of an operation's request body."""
    return _validator(_as_operation(operation).spec.request_schema)


def response_validator(operation: Operation | MessageType | None = None) -> jsonschema.Draft202012Validator:
    """Return the validator of an operation's response body (response.json without one)."""
    file_name = RESPONSE_SCHEMA_FILE if operation is None else _as_operation(operation).spec.response_schema
    return _validator(file_name)


def common_causes() -> list[str]:
    """Return the cause names that the schemas accept."""
    return list(_validator(COMMON_SCHEMA_FILE).schema["$defs"]["Cause"]["enum"])


def _schema_errors(validator: jsonschema.Draft202012Validator, document: Any) -> list[InvalidParam]:
    invalid = []
    for error in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path)):
        invalid.extend(_describe_schema_error(error))
    return invalid


def _describe_schema_error(error: jsonschema.ValidationError) -> list[InvalidParam]:
    pointer = "".join(f"/{part}" for part in error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [name for name in error.validator_value if name not in error.instance]
        return [InvalidParam(f"{pointer}/{name}", "missing") for name in missing]
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        extra = [name for name in error.instance if name not in allowed]
        return [InvalidParam(f"{pointer}/{name}", "unexpected member") for name in extra]
    return [InvalidParam(pointer or "/", _schema_reason(error))]


def _schema_reason(error: jsonschema.ValidationError) -> str:
    """Describe a failed keyword without echoing a long value (a payload may hold 8192 characters)."""
    if error.validator == "maxLength":
        return f"longer than {error.validator_value} characters"
    return _shorten(error.message, MAX_REASON_LENGTH)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# Requests on the wire


def build_request(request: Request) -> Message:
    """Build the CoAP POST that carries any MSGin5G-1 request."""
    payload = json.dumps(request.to_json(), separators=(",", ":")).encode("utf-8")
    message = Message(code=Code.POST, payload=payload)
    message.opt.uri_path = request.operation.path
    message.opt.content_format = CONTENT_FORMAT_JSON
    return message


def parse_request(operation: Operation | MessageType, payload: bytes) -> Request:
    """Parse and validate a request body; raise MalformedMessage naming the member at fault."""
    operation = _as_operation(operation)
    document = _decode_json(payload)
    invalid = _schema_errors(_validator(operation.spec.request_schema), document)
    if invalid:
        problems = _shorten("; ".join(f"{item.param}: {item.reason}" for item in invalid), MAX_DETAIL_LENGTH)
        raise MalformedMessage(
            f"{operation.request_type} body is invalid ({problems}); send a body that matches "
            f"the {operation.spec.request_schema} JSON Schema",
            tuple(invalid[:100]),
        )
    return _REQUEST_READERS[operation](document)


def _read_registration(document: dict[str, Any]) -> RegistrationRequest:
    return RegistrationRequest(
        document["ueServiceId"], document.get("clientProfile"), document.get("constrainedUe", False)
    )


def _read_deregistration(document: dict[str, Any]) -> DeregistrationRequest:
    return DeregistrationRequest(document["ueServiceId"])


def _read_bulk_registration(document: dict[str, Any]) -> BulkRegistrationRequest:
    entries = []
    seen: dict[str, int] = {}
    for index, item in enumerate(document["registrations"]):
        ue_service_id = item["ueServiceId"]
        if ue_service_id in seen:
            pointer = f"/registrations/{index}/ueServiceId"
            raise MalformedMessage(
                f"REG body is invalid ({pointer}: {ue_service_id!r} repeats entry {seen[ue_service_id]}); "
                "list each UE service ID once",
                (InvalidParam(pointer, "duplicate ueServiceId"),),
            )
        seen[ue_service_id] = index
        expiration = item.get("expirationTime")
        entries.append(
            BulkRegistrationEntry(
                ue_service_id,
                item.get("clientProfile"),
                Urgency(item.get("urgency", "NORMAL")),
                _parse_time(expiration, f"/registrations/{index}/expirationTime") if expiration else None,
            )
        )
    return BulkRegistrationRequest(tuple(entries))


def _read_message(document: dict[str, Any]) -> MessageRequest:
    expiry_text = document.get("stoAndFwParams", {}).get("exprTime")
    return MessageRequest(
        ori_addr=document["oriAddr"],
        dest_addr=document["destAddr"],
        msg_id=document["msgId"],
        payload=document["payload"],
        app_id=document.get("appId"),
        deliv_st_req_ind=document.get("delivStReqInd", False),
        sto_and_fw_ind=document.get("stoAndFwInd", False),
        expiry_time=_parse_time(expiry_text, "/stoAndFwParams/exprTime") if expiry_text else None,
    )


def _read_delivery_report(document: dict[str, Any]) -> DeliveryReport:
    return DeliveryReport(
        document["oriAddr"],
        document["destAddr"],
        document["msgId"],
        ReportStatus(document["delivSt"]),
        document.get("failureCause"),
    )


def _read_inbox(document: dict[str, Any]) -> InboxRequest:
    ue_service_ids = document.get("ueServiceIds")
    return InboxRequest(
        tuple(document.get("ack", ())),
        document.get("maxItems", DEFAULT_INBOX_ITEMS),
        tuple(ue_service_ids) if ue_service_ids is not None else None,
        document.get("maxOctets"),
    )


_REQUEST_READERS = {
    Operation.REG: _read_registration,
    Operation.DEREG: _read_deregistration,
    Operation.BULK_REG: _read_bulk_registration,
    Operation.MSG: _read_message,
    Operation.IMDN: _read_delivery_report,
    Operation.INBOX: _read_inbox,
}


def _parse_time(text: str, pointer: str) -> datetime:
    """Parse an RFC 3339 date-time that already matched the schema's pattern."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise MalformedMessage(
            f"{pointer}: {text!r} is not a valid date-time; use RFC 3339, for example "
            "2030-01-31T12:00:00Z",
            (InvalidParam(pointer, "not a valid RFC 3339 date-time"),),
        ) from None


def _decode_json(payload: bytes) -> Any:
    try:
        return json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise MalformedMessage(
            f"body is not UTF-8 (invalid octet at position {error.start}); send UTF-8 JSON",
            (InvalidParam("/", "not UTF-8"),),
        ) from None
    except json.JSONDecodeError as error:
        raise MalformedMessage(
            f"body is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}",
            (InvalidParam("/", "not JSON"),),
        ) from None


# Responses on the server


def build_response(
    message_type: MessageType | Operation,
    code: Code,
    detail: str,
    *,
    cause: Cause | None = None,
    ue_service_id: str | None = None,
    invalid_params: tuple[InvalidParam, ...] = (),
    members: dict[str, Any] | None = None,
) -> Message:
    """Build a response: result, detail and cause, plus the operation's own `members`.

    An Operation selects its response message type (MSG gets MSGRESP).
    """
    response_type = message_type.response_type if isinstance(message_type, Operation) else message_type
    document: dict[str, Any] = {
        "messageType": str(response_type),
        "result": str(ResultKind.FAILURE if cause else ResultKind.SUCCESS),
        "detail": detail,
    }
    if ue_service_id is not None:
        document["ueServiceId"] = ue_service_id
    if cause is not None:
        document["cause"] = str(cause)
    if invalid_params:
        document["invalidParams"] = [dataclasses.asdict(item) for item in invalid_params]
    document.update(members or {})

    message = Message(code=code, payload=json.dumps(document, separators=(",", ":")).encode("utf-8"))
    message.opt.content_format = CONTENT_FORMAT_JSON
    return message


def failure_response(
    message_type: MessageType | Operation,
    cause: Cause,
    detail: str,
    *,
    ue_service_id: str | None = None,
    invalid_params: tuple[InvalidParam, ...] = (),
    members: dict[str, Any] | None = None,
) -> Message:
    """Build the failure response that the operation's response schema allows.

    A MSG failure is a MSGRESP with status DELY_FAILED.
    """
    members = dict(members or {})
    if message_type is Operation.MSG:
        members.setdefault("status", str(DeliveryStatus.DELY_FAILED))
    return build_response(
        message_type,
        CAUSE_RESPONSE_CODES[cause],
        detail,
        cause=cause,
        ue_service_id=ue_service_id,
        invalid_params=invalid_params,
        members=members,
    )


def message_response(
    request: MessageRequest, status: DeliveryStatus, detail: str, *, expiry_time: datetime | None = None
) -> Message:
    """Build the MSGRESP that accepts a MSG: 2.01 with DELY_QUEUED or DELY_STORED."""
    members: dict[str, Any] = {"oriAddr": request.ori_addr, "msgId": request.msg_id, "status": str(status)}
    if expiry_time is not None:
        members["exprTime"] = format_time(expiry_time)
    return build_response(Operation.MSG, Code.CREATED, detail, members=members)


def message_failure(request: MessageRequest, cause: Cause, detail: str) -> Message:
    """Build the MSGRESP that rejects a MSG: DELY_FAILED with `cause`."""
    return failure_response(
        Operation.MSG, cause, detail, members={"oriAddr": request.ori_addr, "msgId": request.msg_id}
    )


@dataclasses.dataclass(frozen=True)
class BulkEntryResult:
    """The outcome of one bulk registration entry."""

    ue_service_id: str
    detail: str
    cause: Cause | None = None

    @property
    def accepted(self) -> bool:
        return self.cause is None

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "ueServiceId": self.ue_service_id,
            "result": str(ResultKind.FAILURE if self.cause else ResultKind.SUCCESS),
            "detail": self.detail,
        }
        if self.cause is not None:
            document["cause"] = str(self.cause)
        return document


def bulk_registration_response(entries: list[BulkEntryResult], detail: str) -> Message:
    """Build the 2.04 response to a well-formed bulk registration, entries in request order."""
    members = {"registrations": [entry.to_json() for entry in entries]}
    return build_response(Operation.BULK_REG, Code.CHANGED, detail, members=members)


@dataclasses.dataclass(frozen=True)
class InboxItem:
    """One queued MSG or IMDN document for `ue_service_id`."""

    delivery_id: str
    ue_service_id: str
    message: dict[str, Any]

    @property
    def message_type(self) -> MessageType:
        return MessageType(self.message["messageType"])

    def to_json(self) -> dict[str, Any]:
        return {"deliveryId": self.delivery_id, "ueServiceId": self.ue_service_id, "message": self.message}


def inbox_response(items: list[InboxItem], more: bool, detail: str) -> Message:
    """Build the 2.04 response to INBOX."""
    members = {"items": [item.to_json() for item in items], "more": more}
    return build_response(Operation.INBOX, Code.CHANGED, detail, members=members)


# Responses in the client


@dataclasses.dataclass(frozen=True)
class Result:
    """The server's response to any request, as the UE receives it.

    `message_type` is the response's message type (MSGRESP for a MSG);
    `document` is the whole response body.
    """

    message_type: MessageType
    accepted: bool
    code: Code
    detail: str
    cause: Cause | None = None
    ue_service_id: str | None = None
    invalid_params: tuple[InvalidParam, ...] = ()
    document: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False)
    operation: Operation | None = None

    @property
    def status(self) -> DeliveryStatus | None:
        """Return the MSGRESP status, or None for other responses."""
        status = self.document.get("status")
        return DeliveryStatus(status) if status is not None else None

    @property
    def items(self) -> list[InboxItem]:
        """Return the items of an INBOX response (empty for other responses)."""
        return [
            InboxItem(item["deliveryId"], item["ueServiceId"], item["message"])
            for item in self.document.get("items", ())
        ]

    @property
    def more(self) -> bool:
        return bool(self.document.get("more", False))

    @property
    def entries(self) -> list[BulkEntryResult]:
        """Return the per-entry results of a bulk registration response."""
        return [
            BulkEntryResult(item["ueServiceId"], item["detail"], Cause(item["cause"]) if "cause" in item else None)
            for item in self.document.get("registrations", ())
        ]


# The name of this type before other operations existed.
RegistrationResult = Result


def parse_response(operation: Operation | MessageType, response: Message) -> Result:
    """Validate a response to `operation`; raise ValueError if it is not an MSGin5G-1 response."""
    operation = _as_operation(operation)
    code = Code(int(response.code))
    if response.opt.content_format != CONTENT_FORMAT_JSON:
        diagnostic = bytes(response.payload).decode("utf-8", errors="replace")
        raise ValueError(
            f"server responded {code} without an MSGin5G-1 JSON body"
            + (f": {diagnostic}" if diagnostic else "")
        )

    try:
        document = _decode_json(bytes(response.payload))
    except MalformedMessage as error:
        raise ValueError(f"server responded {code} with an invalid body: {error}") from None
    schema_file = operation.spec.response_schema
    invalid = _schema_errors(_validator(schema_file), document)
    if invalid:
        raise ValueError(
            f"server responded {code} with a body that does not match {schema_file} at "
            f"{invalid[0].param}: {invalid[0].reason}"
        )
    if document["messageType"] != operation.response_type:
        raise ValueError(
            f"server responded to a {operation.request_type} request with messageType "
            f"{document['messageType']}"
        )
    return _result_from_document(operation, code, document)


def _result_from_document(operation: Operation, code: Code, document: dict[str, Any]) -> Result:
    return Result(
        message_type=MessageType(document["messageType"]),
        accepted=document["result"] == ResultKind.SUCCESS,
        code=code,
        detail=document["detail"],
        cause=Cause(document["cause"]) if "cause" in document else None,
        ue_service_id=document.get("ueServiceId"),
        invalid_params=tuple(
            InvalidParam(item["param"], item.get("reason", ""))
            for item in document.get("invalidParams", ())
        ),
        document=document,
        operation=operation,
    )
