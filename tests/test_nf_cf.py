"""The MSGin5G Configuration Function over real HTTP/2 on loopback, checked against its OpenAPI file.

Every response that crosses the wire is validated with openapi-core against
docs/openapi/msgin5g-cf.yaml, and every request that the function accepted
is validated too.
"""

import asyncio
import functools
import json
import signal
import sys
from pathlib import Path

import pytest
import yaml
from openapi_core import Config, OpenAPI
from openapi_schema_validator import OAS30Validator
from openapi_validation import (
    Exchange,
    TrafficRecorder,
    h2c_client,
    openapi_request,
    openapi_response,
    serving,
)

from msgin5g.nf.cf.app import cf_app
from msgin5g.nf.cf.config import CfConfig, load_cf_config
from msgin5g.nf.cf.models import UE_ASSOCIATIONS_PATH
from msgin5g.nf.config import ConfigError
from msgin5g.sbi.client import SbiClient
from msgin5g.sbi.server import bind_socket, socket_uri
from msgin5g.service.authorization import (
    ConfigurationFunctionClient,
    ConfigurationFunctionUnavailable,
)

CF_SPEC = Path(__file__).resolve().parents[1] / "docs" / "openapi" / "msgin5g-cf.yaml"
SUPI = "imsi-001010000000001"
GPSI = "msisdn-491700000001"
# Requests that failed on their syntax or named no resource: only the response is checked.
REJECTED_REQUEST_STATUSES = frozenset({400, 404, 405})

ASSOCIATIONS = [
    {"ue_service_id": "sensor-18", "ue_id": SUPI},
    {"ue_service_id": "meter-2", "ue_id": SUPI, "relation": "gateway"},
    {"ue_service_id": "meter-1", "ue_id": SUPI, "relation": "gateway"},
    {"ue_service_id": "phone-1", "ue_id": GPSI},
]


@functools.cache
def cf_openapi() -> OpenAPI:
    config = Config(extra_media_type_deserializers={"application/problem+json": json.loads})
    return OpenAPI.from_file_path(str(CF_SPEC), config=config)


def validate_cf_exchange(exchange: Exchange) -> None:
    """Check one exchange against msgin5g-cf.yaml; raise AssertionError naming it when it differs."""
    try:
        if exchange.path != UE_ASSOCIATIONS_PATH:
            problem_schema = yaml.safe_load(CF_SPEC.read_text("utf-8"))["components"]["schemas"]
            validator = OAS30Validator(
                {"$ref": "#/components/schemas/ProblemDetails", "components": {"schemas": problem_schema}}
            )
            validator.validate(exchange.response_json())
            return
        if exchange.status not in REJECTED_REQUEST_STATUSES:
            cf_openapi().validate_request(openapi_request(exchange))
        cf_openapi().validate_response(openapi_request(exchange), openapi_response(exchange))
    except Exception as error:
        raise AssertionError(f"{exchange.describe()} does not match msgin5g-cf.yaml: {error}") from error


@pytest.fixture
def cf_traffic():
    """A recorder whose exchanges are all checked against msgin5g-cf.yaml when the test ends."""
    recorder = TrafficRecorder()
    yield recorder
    assert recorder.exchanges, "the test sent no request to the Configuration Function"
    for exchange in recorder.exchanges:
        validate_cf_exchange(exchange)


@pytest.fixture
async def cf_uri(cf_traffic):
    config = CfConfig.model_validate({"associations": ASSOCIATIONS})
    async with serving(cf_app(config), cf_traffic) as uri:
        yield uri


@pytest.fixture
async def cf(cf_uri):
    async with h2c_client(cf_uri) as client:
        yield client


async def test_associations_of_supi(cf):
    response = await cf.get(UE_ASSOCIATIONS_PATH, params={"ue-id": SUPI})

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "ueId": SUPI,
        "associations": [
            {"ueServiceId": "meter-1", "relation": "gateway"},
            {"ueServiceId": "meter-2", "relation": "gateway"},
            {"ueServiceId": "sensor-18", "relation": "own"},
        ],
    }


async def test_associations_of_gpsi(cf):
    response = await cf.get(UE_ASSOCIATIONS_PATH, params={"ue-id": GPSI})

    assert response.json()["associations"] == [{"ueServiceId": "phone-1", "relation": "own"}]


async def test_unknown_ue_id_gets_empty_list(cf):
    response = await cf.get(UE_ASSOCIATIONS_PATH, params={"ue-id": "imsi-001019999999999"})

    assert response.status_code == 200
    assert response.json() == {"ueId": "imsi-001019999999999", "associations": []}


@pytest.mark.parametrize("ue_id", ["alice", "imsi-12", "msisdn-49x", "", "supi-001010000000001"])
async def test_malformed_ue_id_gets_400(cf, ue_id):
    response = await cf.get(UE_ASSOCIATIONS_PATH, params={"ue-id": ue_id})

    problem = response.json()
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert problem["cause"] == "MANDATORY_QUERY_PARAM_INCORRECT"
    assert problem["invalidParams"][0]["param"] == "query ue-id"
    assert "imsi-001010000000001" in problem["detail"]


async def test_missing_ue_id_gets_400(cf):
    response = await cf.get(UE_ASSOCIATIONS_PATH)

    problem = response.json()
    assert response.status_code == 400
    assert problem["cause"] == "MANDATORY_QUERY_PARAM_MISSING"
    assert problem["invalidParams"] == [
        {"param": "query ue-id", "reason": problem["invalidParams"][0]["reason"]}
    ]
    assert "mandatory" in problem["detail"]


async def test_unknown_path_gets_404(cf):
    response = await cf.get("/msgin5g-cf/v1/associations", params={"ue-id": SUPI})

    assert response.status_code == 404
    assert response.json()["cause"] == "RESOURCE_URI_STRUCTURE_NOT_FOUND"


async def test_client_reads_relations(cf_uri):
    async with SbiClient(cf_uri) as sbi:
        relations = await ConfigurationFunctionClient(sbi).relations(SUPI)

    assert relations == {"meter-1": "gateway", "meter-2": "gateway", "sensor-18": "own"}


async def test_client_reports_unreachable_function():
    sock = bind_socket("127.0.0.1", 0)
    uri = socket_uri(sock)
    sock.close()  # Nothing listens on this port any more.

    async with SbiClient(uri, timeout=2) as sbi:
        with pytest.raises(ConfigurationFunctionUnavailable) as raised:
            await ConfigurationFunctionClient(sbi).relations(SUPI)

    assert "Configuration Function request failed" in str(raised.value)


def write_cf_config(tmp_path, document: dict) -> Path:
    path = tmp_path / "cf.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def test_config_rejects_unknown_relation(tmp_path):
    entry = {"ue_service_id": "meter-1", "ue_id": SUPI, "relation": "proxy"}
    path = write_cf_config(tmp_path, {"associations": [entry]})

    with pytest.raises(ConfigError) as raised:
        load_cf_config(path)

    message = str(raised.value)
    assert "associations.0.relation" in message
    assert "'proxy'" in message
    assert "'own'" in message
    assert "'gateway'" in message


def test_config_rejects_repeated_ue_service_id(tmp_path):
    entries = [{"ue_service_id": "m", "ue_id": SUPI}, {"ue_service_id": "m", "ue_id": GPSI}]
    path = write_cf_config(tmp_path, {"associations": entries})

    with pytest.raises(ConfigError) as raised:
        load_cf_config(path)

    assert "associations[1] repeats ue_service_id 'm' of associations[0]" in str(raised.value)


def test_config_rejects_bad_ue_id(tmp_path):
    path = write_cf_config(tmp_path, {"associations": [{"ue_service_id": "m", "ue_id": "bob"}]})

    with pytest.raises(ConfigError) as raised:
        load_cf_config(path)

    assert "associations.0.ue_id" in str(raised.value)
    assert "must be a SUPI" in str(raised.value)


def test_example_config_loads():
    config = load_cf_config(Path(__file__).resolve().parents[1] / "examples" / "cf.yaml")

    relations = {entry.ue_service_id: entry.relation for entry in config.associations}
    assert relations["sensor-001"] == "own"
    assert relations["meter-01"] == "gateway"


async def test_serve_cf_ready_then_sigterm(tmp_path):
    path = write_cf_config(
        tmp_path, {"sbi": {"host": "127.0.0.1", "port": 0}, "associations": ASSOCIATIONS}
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "msgin5g", "serve", "cf", "--config", str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        ready = json.loads(await asyncio.wait_for(process.stdout.readline(), 30))
        async with h2c_client(ready["uri"]) as client:
            response = await client.get(UE_ASSOCIATIONS_PATH, params={"ue-id": GPSI})
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 15)

    assert ready["service"] == "cf"
    assert response.json()["associations"] == [{"ueServiceId": "phone-1", "relation": "own"}]
    assert process.returncode == 0, stderr.decode()
    assert GPSI not in stderr.decode()
