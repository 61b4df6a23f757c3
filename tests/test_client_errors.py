"""How the UE client words failures that reach it from httpx."""

import asyncio

import httpx
import pytest

from msgin5g.service.client import describe_http_error


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (httpx.ReadTimeout(""), "no answer within 10 s (ReadTimeout)"),
        (httpx.ConnectError("All connection attempts failed"), "connection failed (All connection attempts failed)"),
        (httpx.WriteError(""), "WriteError; is this the AUSF's SBI address"),
        (httpx.RemoteProtocolError("bad frame"), "RemoteProtocolError: bad frame; is this"),
    ],
)
def test_http_error_is_described(error, expected):
    assert expected in describe_http_error(error)


async def test_ausf_on_wrong_port_named():
    # A TCP listener that closes every connection at once stands in for a
    # service that is not an HTTP/2 server.
    async def close_at_once(reader, writer):
        writer.close()

    server = await asyncio.start_server(close_at_once, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        async with httpx.AsyncClient(http1=False, http2=True) as http:
            with pytest.raises(httpx.HTTPError) as raised:
                await http.post(f"http://127.0.0.1:{port}/nausf-auth/v1/ue-authentications", json={})

    assert "AUSF" in describe_http_error(raised.value)
