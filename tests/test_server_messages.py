"""MSGin5G-1 message bodies: schemas, builders, parsers and the published description."""

import json
from datetime import UTC, datetime
import re
from pathlib import Path

import jsonschema
import pytest
from aiocoap import Message
from aiocoap.numbers.codes import Code

from msgin5g.service import messages
from msgin5g.service.messages import (
    CAUSE_RESPONSE_CODES,
    Cause,
    DeregistrationRequest,
    InvalidParam,
    MalformedMessage,
    MessageType,
    Operation,
    RegistrationRequest,
)

DOCUMENT = Path(__file__).resolve().parents[1] / "docs" / "msgin5g-1.md"


def json_examples() -> list[dict]:
    text = DOCUMENT.read_text(encoding="utf-8")
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", text, re.DOTALL)]


@pytest.mark.parametrize("operation", list(Operation))
def test_request_schemas_are_valid_draft_2020_12(operation):
    schema = messages.request_schema(operation)

    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("operation", list(Operation))
def test_response_schemas_are_valid_draft_2020_12(operation):
    jsonschema.Draft202012Validator.check_schema(messages.response_schema(operation))


def test_schema_ids_are_unique_and_match_files():
    folder = Path(messages.__file__).parent / "schemas"
    ids = {}
    for path in sorted(folder.glob("*.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        ids[schema["$id"]] = path.name

    assert len(ids) == len(list(folder.glob("*.json")))
    for schema_id, name in ids.items():
        assert schema_id == "urn:msgin5g:msgin5g-1:v1:" + name.removesuffix(".json")


def example_matches(example: dict) -> bool:
    """Return whether a documented body matches a request or response schema of its message type."""
    if "result" in example:
        validators = [
            messages.response_validator(operation)
            for operation in Operation
            if operation.response_type == example["messageType"]
        ]
    else:
        validators = [
            messages.request_validator(operation)
            for operation in Operation
            if operation.request_type == example["messageType"]
        ]
    return any(validator.is_valid(example) for validator in validators)


def test_document_examples_match_schemas():
    examples = json_examples()

    assert len(examples) >= 12
    for example in examples:
        assert example_matches(example), example


def test_document_lists_paths_and_causes():
    text = DOCUMENT.read_text(encoding="utf-8")

    for operation in Operation:
        assert "POST /" + "/".join(operation.path) in text
    for cause, code in CAUSE_RESPONSE_CODES.items():
        assert f"| `{cause}` | {code.dotted}" in text


def test_document_links_every_schema():
    text = DOCUMENT.read_text(encoding="utf-8")

    for path in sorted((Path(messages.__file__).parent / "schemas").glob("*.json")):
        assert f"(../src/msgin5g/service/schemas/{path.name})" in text


def test_every_cause_has_a_response_code():
    assert set(CAUSE_RESPONSE_CODES) == set(Cause)
    assert set(messages.common_causes()) == set(Cause)


def test_build_registration_request():
    request = messages.build_request(RegistrationRequest("ue-svc-1", {"maxSegmentSize": 100}))

    assert request.code == Code.POST
    assert request.opt.uri_path == ("msgin5g", "v1", "registrations")
    assert request.opt.content_format == 50
    assert json.loads(request.payload) == {
        "messageType": "REG",
        "ueServiceId": "ue-svc-1",
        "clientProfile": {"maxSegmentSize": 100},
    }


def test_build_deregistration_request():
    request = messages.build_request(DeregistrationRequest("ue-svc-1"))

    assert request.opt.uri_path == ("msgin5g", "v1", "deregistrations")
    assert json.loads(request.payload) == {"messageType": "DEREG", "ueServiceId": "ue-svc-1"}


def test_parse_request_round_trip():
    request = RegistrationRequest("ue-svc-1", {"maxSegmentSize": 100})
    payload = messages.build_request(request).payload

    assert messages.parse_request(MessageType.REG, payload) == request


def test_parse_request_not_utf8():
    with pytest.raises(MalformedMessage, match="not UTF-8") as error:
        messages.parse_request(MessageType.REG, b"\xff\xfe")

    assert error.value.invalid_params == (InvalidParam("/", "not UTF-8"),)


def test_parse_request_names_nested_member():
    payload = json.dumps(
        {
            "messageType": "REG",
            "ueServiceId": "a",
            "clientProfile": {"triggeringInfo": {"ueIdentifier": "msisdn-12345", "protocol": "MMS"}},
        }
    ).encode()

    with pytest.raises(MalformedMessage) as error:
        messages.parse_request(MessageType.REG, payload)

    assert error.value.invalid_params[0].param == "/clientProfile/triggeringInfo/protocol"
    assert "/clientProfile/triggeringInfo/protocol" in error.value.detail


def success(message_type=MessageType.REG, code=Code.CREATED) -> Message:
    return messages.build_response(message_type, code, "done", ue_service_id="ue-svc-1")


def test_success_response_parsed():
    result = messages.parse_response(MessageType.REG, success())

    assert result.accepted
    assert result.cause is None
    assert result.code == Code.CREATED
    assert result.detail == "done"


def test_failure_response_parsed():
    response = messages.failure_response(
        MessageType.DEREG, Cause.NOT_REGISTERED, "no such registration", ue_service_id="x"
    )

    result = messages.parse_response(MessageType.DEREG, response)

    assert response.code == Code.NOT_FOUND
    assert not result.accepted
    assert result.cause is Cause.NOT_REGISTERED


def test_failure_without_cause_violates_schema():
    document = {"messageType": "REG", "result": "FAILURE", "detail": "x"}

    with pytest.raises(jsonschema.ValidationError):
        messages.response_validator().validate(document)


def test_success_with_cause_violates_schema():
    document = {"messageType": "REG", "result": "SUCCESS", "detail": "x", "cause": "NOT_REGISTERED"}

    with pytest.raises(jsonschema.ValidationError):
        messages.response_validator().validate(document)


def test_response_of_other_type_refused():
    with pytest.raises(ValueError, match="responded to a DEREG request with messageType REG"):
        messages.parse_response(MessageType.DEREG, success(MessageType.REG))


def test_response_without_json_refused():
    response = Message(code=Code.NOT_FOUND, payload=b"no resource")

    with pytest.raises(ValueError, match="4.04 Not Found without an MSGin5G-1 JSON body: no resource"):
        messages.parse_response(MessageType.REG, response)


def test_response_body_not_matching_schema_refused():
    response = Message(code=Code.CREATED, payload=b'{"messageType": "REG"}', content_format=50)

    with pytest.raises(ValueError, match="does not match response.json"):
        messages.parse_response(MessageType.REG, response)


def test_message_request_round_trip():
    request = messages.MessageRequest(
        "ue-a", "ue-b", "m.1:x~y-z_", "hello", app_id="app", deliv_st_req_ind=True, sto_and_fw_ind=True,
        expiry_time=datetime(2030, 1, 31, 12, tzinfo=UTC),
    )
    built = messages.build_request(request)

    assert built.opt.uri_path == ("msgin5g", "v1", "messages")
    assert json.loads(built.payload)["stoAndFwParams"] == {"exprTime": "2030-01-31T12:00:00Z"}
    assert messages.parse_request(Operation.MSG, built.payload) == request


def test_inbox_and_report_round_trip():
    inbox = messages.InboxRequest(("d1",), 5, ("ue-a",), 1024)
    report = messages.DeliveryReport("ue-b", "ue-a", "m1", messages.ReportStatus.REPT_DELY_FAILED, "EXPIRED")

    assert messages.parse_request(Operation.INBOX, messages.build_request(inbox).payload) == inbox
    assert messages.parse_request(Operation.IMDN, messages.build_request(report).payload) == report


def test_bulk_request_round_trip():
    bulk = messages.BulkRegistrationRequest(
        (
            messages.BulkRegistrationEntry("m-1"),
            messages.BulkRegistrationEntry(
                "m-2", urgency=messages.Urgency.URGENT, expiration_time=datetime(2030, 1, 1, tzinfo=UTC)
            ),
        )
    )
    built = messages.build_request(bulk)

    assert built.opt.uri_path == ("msgin5g", "v1", "bulk-registrations")
    assert messages.parse_request(Operation.BULK_REG, built.payload) == bulk


def test_bulk_request_with_repeated_service_id_names_entry():
    payload = json.dumps(
        {"messageType": "REG", "registrations": [{"ueServiceId": "m-1"}, {"ueServiceId": "m-1"}]}
    ).encode()

    with pytest.raises(MalformedMessage) as error:
        messages.parse_request(Operation.BULK_REG, payload)

    assert error.value.invalid_params == (InvalidParam("/registrations/1/ueServiceId", "duplicate ueServiceId"),)


def test_constrained_registration_round_trip():
    request = RegistrationRequest("meter-7", constrained_ue=True)
    payload = messages.build_request(request).payload

    assert json.loads(payload)["constrainedUe"] is True
    assert messages.parse_request(Operation.REG, payload) == request


def test_long_value_not_echoed_in_reason():
    payload = json.dumps(
        {"messageType": "MSG", "oriAddr": "a", "destAddr": "b", "msgId": "m", "payload": "p" * 9000}
    ).encode()

    with pytest.raises(MalformedMessage) as error:
        messages.parse_request(Operation.MSG, payload)

    assert error.value.invalid_params == (InvalidParam("/payload", "longer than 8192 characters"),)
    assert len(error.value.detail) < 300


def test_message_failure_matches_msgresp_schema():
    request = messages.MessageRequest("ue-a", "ue-b", "m1", "x")

    response = messages.message_failure(request, Cause.RECIPIENT_NOT_REGISTERED, "offline")
    result = messages.parse_response(Operation.MSG, response)

    assert response.code == Code.NOT_FOUND
    assert result.status is messages.DeliveryStatus.DELY_FAILED
    assert result.document["msgId"] == "m1"


def test_bulk_response_lists_entries():
    entries = [
        messages.BulkEntryResult("m-1", "registered"),
        messages.BulkEntryResult("m-2", "expired", Cause.REQUEST_EXPIRED),
    ]

    result = messages.parse_response(Operation.BULK_REG, messages.bulk_registration_response(entries, "1 of 2"))

    assert result.code == Code.CHANGED
    assert result.entries == entries


def test_success_status_with_failure_violates_msgresp_schema():
    document = {"messageType": "MSGRESP", "result": "FAILURE", "detail": "x", "status": "DELY_QUEUED",
                "cause": "STORE_FULL"}

    with pytest.raises(jsonschema.ValidationError):
        messages.response_validator(Operation.MSG).validate(document)


def test_message_type_without_single_operation_refused():
    with pytest.raises(ValueError, match="pass an Operation"):
        messages.request_schema(MessageType.MSGRESP)
