"""read_limited_body over HTTP/2: the 413 error on both paths, and no SbiError for a body within the limit."""

import pytest
from openapi_validation import TrafficRecorder, h2c_client, serving
from starlette.requests import Request
from starlette.responses import Response

from msgin5g.sbi import problem
from msgin5g.sbi.app import MAX_BODY_OCTETS, create_app, read_limited_body, sbi_route


async def body_length(request: Request) -> Response:
    return Response(str(len(await read_limited_body(request))), media_type="text/plain")


@pytest.fixture
async def server_uri():
    routes = [sbi_route("/length", body_length, ["POST"], operation="Length")]
    async with serving(create_app(routes), TrafficRecorder()) as uri:
        yield uri


async def chunks(count: int, size: int):
    for _ in range(count):
        yield b"x" * size


async def test_streamed_body_over_limit_413(server_uri):
    # A streamed body has no content-length, so the limit is checked while reading.
    async with h2c_client(server_uri) as client:
        response = await client.post("/length", content=chunks(5, MAX_BODY_OCTETS // 4))

    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["instance"].startswith("urn:uuid:")
    assert str(MAX_BODY_OCTETS) in response.json()["detail"]


async def test_body_within_limit_builds_no_error(server_uri, monkeypatch):
    built: list[problem.SbiError] = []
    original_init = problem.SbiError.__init__

    def counting_init(self, *args, **kwargs) -> None:
        built.append(self)
        original_init(self, *args, **kwargs)

    monkeypatch.setattr(problem.SbiError, "__init__", counting_init)
    async with h2c_client(server_uri) as client:
        declared = await client.post("/length", content=b"x" * MAX_BODY_OCTETS)
        streamed = await client.post("/length", content=chunks(4, MAX_BODY_OCTETS // 4))

    assert declared.status_code == 200
    assert declared.text == str(MAX_BODY_OCTETS)
    assert streamed.status_code == 200
    assert streamed.text == str(MAX_BODY_OCTETS)
    assert built == []
