"""MSGin5G-1 registration messages over CoAP: paths, JSON bodies and causes.

TS 24.538 clause 7.1 gives every message a message type (REG, DEREG, ...) and
Annex A.3 carries JSON (CoAP Content-Format 50), but the copies read name no
CoAP paths or JSON members. This module is the single definition of both for
this project. The JSON Schemas in `schemas/` are the normative form, and
docs/msgin5g-1.md publishes them.

| message | CoAP request                         | success          |
| ------- | ------------------------------------ | ---------------- |
| REG     | POST /msgin5g/v1/registrations       | 2.01 Created, or 2.04 Changed for a repeated REG |
| DEREG   | POST /msgin5g/v1/deregistrations     | 2.02 Deleted     |
"""

import dataclasses
import enum
import functools
import json
from importlib import resources
from typing import Any

import jsonschema
from aiocoap import Message
from aiocoap.numbers.codes import Code
from aiocoap.numbers.contentformat import ContentFormat

API_ROOT = ("msgin5g", "v1")
REGISTRATIONS_PATH = (*API_ROOT, "registrations")
DEREGISTRATIONS_PATH = (*API_ROOT, "deregistrations")

CONTENT_FORMAT_JSON = ContentFormat.JSON  # 50, application/json


class MessageType(enum.StrEnum):
    """Message types of TS 24.538 clause 7.1 that this module defines."""

    REG = "REG"
    DEREG = "DEREG"


REQUEST_PATHS = {
    MessageType.REG: REGISTRATIONS_PATH,
    MessageType.DEREG: DEREGISTRATIONS_PATH,
}

SCHEMA_FILES = {
    MessageType.REG: "reg.json",
    MessageType.DEREG: "dereg.json",
}
RESPONSE_SCHEMA_FILE = "response.json"


class Result(enum.StrEnum):
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"


class Cause(enum.StrEnum):
    """Reason for a failed REG or DEREG. Each cause maps to one CoAP response code."""

    # The AAnF does not know the A-KID. The TLS handshake fails first in this
    # profile, so no CoAP response carries it; kept for other Ua* profiles.
    UNKNOWN_A_KID = "UNKNOWN_A_KID"
    UE_SERVICE_ID_NOT_ASSOCIATED = "UE_SERVICE_ID_NOT_ASSOCIATED"
    MALFORMED_MESSAGE = "MALFORMED_MESSAGE"
    NOT_REGISTERED = "NOT_REGISTERED"
    AUTHORIZATION_UNAVAILABLE = "AUTHORIZATION_UNAVAILABLE"


CAUSE_RESPONSE_CODES = {
    Cause.UNKNOWN_A_KID: Code.UNAUTHORIZED,
    Cause.UE_SERVICE_ID_NOT_ASSOCIATED: Code.FORBIDDEN,
    Cause.MALFORMED_MESSAGE: Code.BAD_REQUEST,
    Cause.NOT_REGISTERED: Code.NOT_FOUND,
    Cause.AUTHORIZATION_UNAVAILABLE: Code.SERVICE_UNAVAILABLE,
}


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


@dataclasses.dataclass(frozen=True)
class RegistrationRequest:
    """REG (TS 23.554 Table 8.2.1-1): the UE service ID and an optional client profile."""

    ue_service_id: str
    client_profile: dict[str, Any] | None = None

    message_type = MessageType.REG

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"messageType": "REG", "ueServiceId": self.ue_service_id}
        if self.client_profile is not None:
            document["clientProfile"] = self.client_profile
        return document


@dataclasses.dataclass(frozen=True)
class DeregistrationRequest:
    """DEREG: the UE service ID to de-register."""

    ue_service_id: str

    message_type = MessageType.DEREG

    def to_json(self) -> dict[str, Any]:
        return {"messageType": "DEREG", "ueServiceId": self.ue_service_id}


Request = RegistrationRequest | DeregistrationRequest


@dataclasses.dataclass(frozen=True)
class RegistrationResult:
    """The server's response to a REG or DEREG, as the UE receives it."""

    message_type: MessageType
    accepted: bool
    code: Code
    detail: str
    cause: Cause | None = None
    ue_service_id: str | None = None
    invalid_params: tuple[InvalidParam, ...] = ()


# Schemas


@functools.cache
def _validator(file_name: str) -> jsonschema.Draft202012Validator:
    text = resources.files("msgin5g.service.schemas").joinpath(file_name).read_text("utf-8")
    schema = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def request_schema(message_type: MessageType) -> dict[str, Any]:
    """Return the JSON Schema of a request type."""
    return dict(_validator(SCHEMA_FILES[message_type]).schema)


def response_schema() -> dict[str, Any]:
    return dict(_validator(RESPONSE_SCHEMA_FILE).schema)


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
    return [InvalidParam(pointer or "/", error.message)]


# Requests


def build_request(request: Request) -> Message:
    """Build the CoAP request that carries a REG or DEREG."""
    payload = json.dumps(request.to_json(), separators=(",", ":")).encode("utf-8")
    message = Message(code=Code.POST, payload=payload)
    message.opt.uri_path = REQUEST_PATHS[request.message_type]
    message.opt.content_format = CONTENT_FORMAT_JSON
    return message


def parse_request(message_type: MessageType, payload: bytes) -> Request:
    """Parse and validate a request body; raise MalformedMessage naming the member at fault."""
    document = _decode_json(payload)
    invalid = _schema_errors(_validator(SCHEMA_FILES[message_type]), document)
    if invalid:
        problems = "; ".join(f"{item.param}: {item.reason}" for item in invalid)
        raise MalformedMessage(
            f"{message_type} body is invalid ({problems}); send a body that matches the "
            f"{message_type} JSON Schema",
            tuple(invalid),
        )

    if message_type is MessageType.REG:
        return RegistrationRequest(document["ueServiceId"], document.get("clientProfile"))
    return DeregistrationRequest(document["ueServiceId"])


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


# Responses


def build_response(
    message_type: MessageType,
    code: Code,
    detail: str,
    *,
    cause: Cause | None = None,
    ue_service_id: str | None = None,
    invalid_params: tuple[InvalidParam, ...] = (),
) -> Message:
    """Build a response whose payload matches response.json."""
    document: dict[str, Any] = {
        "messageType": str(message_type),
        "result": str(Result.FAILURE if cause else Result.SUCCESS),
        "detail": detail,
    }
    if ue_service_id is not None:
        document["ueServiceId"] = ue_service_id
    if cause is not None:
        document["cause"] = str(cause)
    if invalid_params:
        document["invalidParams"] = [dataclasses.asdict(item) for item in invalid_params]

    message = Message(code=code, payload=json.dumps(document).encode("utf-8"))
    message.opt.content_format = CONTENT_FORMAT_JSON
    return message


def failure_response(
    message_type: MessageType,
    cause: Cause,
    detail: str,
    *,
    ue_service_id: str | None = None,
    invalid_params: tuple[InvalidParam, ...] = (),
) -> Message:
    return build_response(
        message_type,
        CAUSE_RESPONSE_CODES[cause],
        detail,
        cause=cause,
        ue_service_id=ue_service_id,
        invalid_params=invalid_params,
    )


def parse_response(message_type: MessageType, response: Message) -> RegistrationResult:
    """Validate a REG or DEREG response; raise ValueError if it is not an MSGin5G-1 response."""
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
    invalid = _schema_errors(_validator(RESPONSE_SCHEMA_FILE), document)
    if invalid:
        raise ValueError(
            f"server responded {code} with a body that does not match response.json at "
            f"{invalid[0].param}: {invalid[0].reason}"
        )
    if document["messageType"] != message_type:
        raise ValueError(
            f"server responded to a {message_type} request with messageType {document['messageType']}"
        )
    return _result_from_document(message_type, code, document)


def _result_from_document(
    message_type: MessageType, code: Code, document: dict[str, Any]
) -> RegistrationResult:
    return RegistrationResult(
        message_type=message_type,
        accepted=document["result"] == Result.SUCCESS,
        code=code,
        detail=document["detail"],
        cause=Cause(document["cause"]) if "cause" in document else None,
        ue_service_id=document.get("ueServiceId"),
        invalid_params=tuple(
            InvalidParam(item["param"], item.get("reason", ""))
            for item in document.get("invalidParams", ())
        ),
    )
