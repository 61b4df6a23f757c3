"""MSGin5G-1 message bodies: schemas, builders, parsers and the published description."""

import json
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
    RegistrationRequest,
)

DOCUMENT = Path(__file__).resolve().parents[1] / "docs" / "msgin5g-1.md"


def json_examples() -> list[dict]:
    text = DOCUMENT.read_text(encoding="utf-8")
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", text, re.DOTALL)]


@pytest.mark.parametrize("message_type", list(MessageType))
def test_request_schemas_are_valid_draft_2020_12(message_type):
    schema = messages.request_schema(message_type)

    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_response_schema_is_valid_draft_2020_12():
    jsonschema.Draft202012Validator.check_schema(messages.response_schema())


def test_document_examples_match_schemas():
    examples = json_examples()

    assert len(examples) >= 4
    for example in examples:
        if "result" in example:
            jsonschema.validate(example, messages.response_schema())
        else:
            jsonschema.validate(example, messages.request_schema(MessageType(example["messageType"])))


def test_document_lists_paths_and_causes():
    text = DOCUMENT.read_text(encoding="utf-8")

    for path in messages.REQUEST_PATHS.values():
        assert "POST /" + "/".join(path) in text
    for cause, code in CAUSE_RESPONSE_CODES.items():
        assert f"| `{cause}` | {code.dotted}" in text


def test_every_cause_has_a_response_code():
    assert set(CAUSE_RESPONSE_CODES) == set(Cause)
    assert set(messages.response_schema()["properties"]["cause"]["enum"]) == set(Cause)


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
        jsonschema.validate(document, messages.response_schema())


def test_success_with_cause_violates_schema():
    document = {"messageType": "REG", "result": "SUCCESS", "detail": "x", "cause": "NOT_REGISTERED"}

    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, messages.response_schema())


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
