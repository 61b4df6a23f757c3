"""The Gateway UE's section of docs/msgin5g-1.md: its examples, resources and causes match the code.

Each example there is fenced as ```json gateway-schema:FILE, naming the schema in
src/msgin5g/gateway/schemas/ that it must match. The plain ```json blocks are the
server's examples, checked by test_server_messages.py.
"""

import json
import re
from pathlib import Path

import jsonschema
import pytest

from msgin5g.gateway.service import CAUSE_CODES, RESPONSE_TYPES, SCHEMA_FILES, GatewayCause, local_schema

DOCUMENT = Path(__file__).resolve().parents[1] / "docs" / "msgin5g-1.md"
SECTION_TITLE = "## Constrained devices and the Gateway UE's local resources (`/msgin5g-gw/v1`)"
EXAMPLE = re.compile(r"```json gateway-schema:(\S+)\n(.*?)```", re.DOTALL)


def section() -> str:
    text = DOCUMENT.read_text(encoding="utf-8")
    assert SECTION_TITLE in text
    return text[text.index(SECTION_TITLE):]


def examples() -> list[tuple[str, str]]:
    return EXAMPLE.findall(section())


def test_section_has_example_per_resource():
    schemas = [schema for schema, _ in examples()]

    for file_name in SCHEMA_FILES.values():
        assert file_name in schemas
    assert "response.json" in schemas


@pytest.mark.parametrize(("schema", "body"), examples())
def test_example_matches_gateway_schema(schema, body):
    document = json.loads(body)

    jsonschema.Draft202012Validator(local_schema(schema)).validate(document)


def test_response_examples_cover_every_message_type():
    types = {json.loads(body)["messageType"] for schema, body in examples() if schema == "response.json"}

    assert types == set(RESPONSE_TYPES.values())


def test_section_lists_resources_and_schemas():
    text = section()

    for resource, file_name in SCHEMA_FILES.items():
        assert f"`POST /msgin5g-gw/v1/{resource}`" in text
        assert f"(../src/msgin5g/gateway/schemas/{file_name})" in text
    assert "(../src/msgin5g/gateway/schemas/response.json)" in text
    assert "?device=DEVICE_ID" in text
    assert "PSK identity is the device's `device_id`" in text


@pytest.mark.parametrize("cause", list(GatewayCause))
def test_section_lists_cause_with_code(cause):
    assert f"| `{cause}` | {CAUSE_CODES[cause].dotted} |" in section()
