"""The two SBI server stacks (`sbi.server: granian | hypercorn`): binding, protocols, limits and stop."""

import asyncio
import json
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import yaml
from starlette.requests import Request
from starlette.responses import Response

from msgin5g.crypto.akma import format_a_kid
from msgin5g.nf.aanf.config import load_aanf_config
from msgin5g.nf.config import ConfigError, SbiBinding
from msgin5g.sbi.app import MAX_BODY_OCTETS, create_app, json_response, read_json_body, sbi_route
from msgin5g.sbi.models.naanf_akma import AkmaKeyInfo
from msgin5g.sbi.server import GRACEFUL_SHUTDOWN_SECONDS, bind_socket, serve, socket_uri

READY_TIMEOUT_SECONDS = 30
EXIT_TIMEOUT_SECONDS = 15
# Time that a stop may take beyond the graceful period on a loaded machine.
STOP_MARGIN_SECONDS = 3.0
STACKS = ["granian", "hypercorn"]


async def echo_key_info(request: Request) -> Response:
    return json_response(await read_json_body(request, AkmaKeyInfo))


async def describe_request(request: Request) -> Response:
    return Response(request.scope["http_version"], media_type="text/plain")


APP = create_app([
    sbi_route("/echo", echo_key_info, ["POST"], operation="Echo"),
    sbi_route("/version", describe_request, ["GET"], operation="Version"),
])
KEY_INFO = {
    "supi": "imsi-001010000000001",
    "aKId": format_a_kid("0", bytes(32), "001", "01"),
    "kAkma": "11" * 32,
}


@asynccontextmanager
async def serving(stack: str) -> AsyncIterator[tuple[str, asyncio.Task, asyncio.Event]]:
    """Serve APP with `stack` on a free loopback port; yield its URI, the server task and its shutdown event."""
    sock = bind_socket("127.0.0.1", 0)
    shutdown = asyncio.Event()
    task = asyncio.create_task(serve(APP, sock, shutdown, server=stack))
    try:
        yield socket_uri(sock), task, shutdown
    finally:
        shutdown.set()
        await asyncio.wait_for(task, GRACEFUL_SHUTDOWN_SECONDS + STOP_MARGIN_SECONDS)
        sock.close()


def h2c(uri: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=uri, http1=False, http2=True, timeout=5)


def test_sbi_binding_defaults_to_granian():
    assert SbiBinding().server == "granian"


@pytest.mark.parametrize("stack", STACKS)
async def test_stack_serves_h2c_on_port_zero(stack):
    async with serving(stack) as (uri, _, _), h2c(uri) as client:
        response = await client.get("/version")

    assert not uri.endswith(":0")
    assert response.status_code == 200
    assert response.http_version == "HTTP/2"
    assert response.text == "2"


@pytest.mark.parametrize("stack", STACKS)
async def test_stack_serves_http1_on_same_port(stack):
    async with serving(stack) as (uri, _, _), httpx.AsyncClient(base_url=uri, timeout=5) as client:
        response = await client.get("/version")

    assert response.status_code == 200
    assert response.text == "1.1"


@pytest.mark.parametrize("stack", STACKS)
async def test_stack_oversized_body_413_keeps_connection(stack):
    oversized = json.dumps({**KEY_INFO, "padding": "x" * (MAX_BODY_OCTETS + 1)}).encode()

    async with serving(stack) as (uri, _, _), h2c(uri) as client:
        rejected = await client.post("/echo", content=oversized, headers={"content-type": "application/json"})
        accepted = await client.post("/echo", json=KEY_INFO)

    assert rejected.status_code == 413
    assert rejected.headers["content-type"] == "application/problem+json"
    assert accepted.status_code == 200
    assert accepted.json()["aKId"] == KEY_INFO["aKId"]


@pytest.mark.parametrize("stack", STACKS)
async def test_stack_stop_completes_request_in_progress(stack):
    started = asyncio.Event()

    async def slow(request: Request) -> Response:
        started.set()
        await asyncio.sleep(0.3)
        return Response("done", media_type="text/plain")

    app = create_app([sbi_route("/slow", slow, ["GET"], operation="Slow")])
    sock = bind_socket("127.0.0.1", 0)
    shutdown = asyncio.Event()
    task = asyncio.create_task(serve(app, sock, shutdown, server=stack))
    try:
        async with h2c(socket_uri(sock)) as client:
            request = asyncio.create_task(client.get("/slow"))
            await asyncio.wait_for(started.wait(), 5)
            shutdown.set()
            response = await request
    finally:
        shutdown.set()
        await asyncio.wait_for(task, GRACEFUL_SHUTDOWN_SECONDS + STOP_MARGIN_SECONDS)
        sock.close()

    assert response.status_code == 200
    assert response.text == "done"


async def test_granian_stop_bounded_with_idle_peer():
    async with h2c("http://127.0.0.1") as client:
        async with serving("granian") as (uri, task, shutdown):
            first = await client.get(f"{uri}/version")
            started = time.monotonic()
            shutdown.set()
            await asyncio.wait_for(task, GRACEFUL_SHUTDOWN_SECONDS + STOP_MARGIN_SECONDS)
            elapsed = time.monotonic() - started

    assert first.status_code == 200
    assert elapsed < GRACEFUL_SHUTDOWN_SECONDS + STOP_MARGIN_SECONDS


@pytest.mark.parametrize("stack", STACKS)
async def test_serve_aanf_on_stack_ready_then_sigterm(tmp_path, stack):
    config = tmp_path / "aanf.yaml"
    config.write_text(yaml.safe_dump({
        "sbi": {"host": "127.0.0.1", "port": 0, "server": stack},
        "database": "aanf.sqlite3",
    }))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "msgin5g", "serve", "aanf", "--config", str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        ready = json.loads(await asyncio.wait_for(process.stdout.readline(), READY_TIMEOUT_SECONDS))
        async with h2c(ready["uri"]) as client:
            response = await client.post("/naanf-akma/v1/register-anchorkey", json=KEY_INFO)
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(process.communicate(), EXIT_TIMEOUT_SECONDS)

    assert ready["event"] == "ready"
    assert response.status_code == 200
    assert response.json()["aKId"] == KEY_INFO["aKId"]
    assert process.returncode == 0, stderr.decode()
    assert stdout.decode() == ""
    assert "Embedded server is experimental" not in stderr.decode()


def test_sbi_server_unknown_stack_is_named(tmp_path):
    config = tmp_path / "aanf.yaml"
    config.write_text(yaml.safe_dump({"sbi": {"server": "uvicorn"}, "database": "aanf.sqlite3"}))

    with pytest.raises(ConfigError) as raised:
        load_aanf_config(config)

    assert "key 'sbi.server'" in str(raised.value)
    assert "'granian' or 'hypercorn'" in str(raised.value)
