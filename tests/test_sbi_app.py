"""The SBI layer on its own: ProblemDetails rendering, body validation, the h2c client."""

import logging
import socket

import pytest
from openapi_validation import TrafficRecorder, h2c_client, serving
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from msgin5g.sbi.app import MAX_BODY_OCTETS, create_app, json_response, read_json_body, sbi_route
from msgin5g.sbi.client import (
    SbiClient,
    SbiInvalidResponseError,
    SbiProblemError,
    SbiTransportError,
    check_base_uri,
)
from msgin5g.sbi.models.naanf_akma import AkmaKeyInfo
from msgin5g.sbi.models.nudm_ueau import ResynchronizationInfo
from msgin5g.sbi.problem import Cause, SbiError


class Echo(BaseModel):
    word: str


async def echo_resynchronization(request: Request) -> Response:
    return json_response(await read_json_body(request, ResynchronizationInfo))


async def fail_with_internal_detail(request: Request) -> Response:
    raise RuntimeError("database password is hunter2")


async def raise_sbi_error(request: Request) -> Response:
    raise SbiError(403, Cause.SERVING_NETWORK_NOT_AUTHORIZED, "serving network not served here")


async def answer_wrong_shape(request: Request) -> Response:
    return Response('{"other": 1}', media_type="application/json")


ROUTES = [
    sbi_route("/echo", echo_resynchronization, ["POST"], operation="Echo"),
    sbi_route("/fail", fail_with_internal_detail, ["POST"], operation="Fail"),
    sbi_route("/forbidden", raise_sbi_error, ["POST"], operation="Forbidden"),
    sbi_route("/wrong", answer_wrong_shape, ["GET"], operation="Wrong"),
]


@pytest.fixture
async def test_server():
    async with serving(create_app(ROUTES), TrafficRecorder()) as uri:
        yield uri


async def test_unexpected_error_hides_internals(test_server, caplog):
    async with h2c_client(test_server) as client:
        response = await client.post("/fail", json={})

    problem = response.json()
    assert response.status_code == 500
    assert problem["cause"] == "SYSTEM_FAILURE"
    assert "hunter2" not in response.text
    assert "Fail failed with an unexpected error" in caplog.text


async def test_rejection_logged_with_instance(test_server, caplog):
    caplog.set_level(logging.INFO, logger="msgin5g.sbi.app")
    async with h2c_client(test_server) as client:
        response = await client.post("/forbidden", json={})

    problem = response.json()
    assert problem == {
        "title": "Forbidden",
        "status": 403,
        "detail": "serving network not served here",
        "instance": problem["instance"],
        "cause": "SERVING_NETWORK_NOT_AUTHORIZED",
    }
    assert problem["instance"].startswith("urn:uuid:")
    assert problem["instance"] in caplog.text


async def test_body_over_limit_413(test_server):
    async with h2c_client(test_server) as client:
        response = await client.post("/echo", json={"rand": "0" * (MAX_BODY_OCTETS + 1)})
        follow_up = await client.post("/echo", json={"rand": "00" * 16, "auts": "11" * 14})

    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert follow_up.status_code == 200


async def test_early_error_keeps_connection(test_server):
    async with h2c_client(test_server) as client:
        rejected = await client.post("/missing", content=b"x" * 50_000, headers={"content-type": "application/json"})
        accepted = await client.post("/echo", json={"rand": "00" * 16, "auts": "11" * 14})

    assert rejected.status_code == 404
    assert accepted.status_code == 200


async def test_client_returns_models(test_server):
    async with SbiClient(test_server) as client:
        sent = ResynchronizationInfo(rand=bytes(16), auts=bytes(14))
        response = await client.call("POST", "/echo", body=sent, response_type=ResynchronizationInfo)

    assert response.status == 200
    assert response.body == sent


async def test_client_raises_problem_error(test_server):
    async with SbiClient(test_server) as client:
        with pytest.raises(SbiProblemError) as error:
            await client.call("POST", "/forbidden", body=Echo(word="x"))

    assert error.value.status == 403
    assert error.value.cause == "SERVING_NETWORK_NOT_AUTHORIZED"


async def test_client_rejects_wrong_body(test_server):
    async with SbiClient(test_server) as client:
        with pytest.raises(SbiInvalidResponseError, match="does not match the API"):
            await client.call("GET", "/wrong", response_type=Echo)


async def test_client_unreachable_peer():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async with SbiClient(f"http://127.0.0.1:{port}", timeout=2) as client:
        with pytest.raises(SbiTransportError, match="unreachable"):
            await client.call("GET", "/anything")


@pytest.mark.parametrize("uri", ["https://127.0.0.1:1", "127.0.0.1:8000", "http://"])
def test_client_requires_http_uri(uri):
    with pytest.raises(ValueError, match="must look like http://HOST:PORT"):
        check_base_uri(uri)


def test_models_hide_keys_in_repr():
    a_kid = "rid0.atid" + "A" * 43 + "@5gc.mnc001.mcc001.3gppnetwork.org"
    key_info = AkmaKeyInfo(supi="imsi-001010000000001", a_kid=a_kid, k_akma=bytes(range(32)))

    assert bytes(range(32)).hex() not in repr(key_info)
    assert "k_akma" not in repr(key_info)


async def test_connection_outlives_1000_requests(test_server):
    # Hypercorn's default closes a connection after 1000 requests, which broke
    # SBI peers that share one HTTP/2 connection for many UEs.
    async with h2c_client(test_server) as client:
        statuses = [(await client.get("/wrong")).status_code for _ in range(1100)]

    assert statuses.count(200) == 1100
