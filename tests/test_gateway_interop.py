"""The gateway's local listeners against peers this project did not write.

openssl s_client (OpenSSL 3.0) runs DTLS 1.2 with a device's PSK against the
DTLS listener, and aiocoap-client posts to the unsecured CoAP listener. The
upstream is the recording fake, because the subject is the local link.
"""

import asyncio
import json

import pytest
from aiocoap.numbers.codes import Code

from gateway_fakes import FakeUpstream, device_psk, gateway_config
from msgin5g.coap import udp
from msgin5g.gateway.runner import running_gateway
from msgin5g.gateway.service import API_ROOT
from test_interop_aiocoap import aiocoap_client
from test_interop_openssl_dtls import openssl, read_until

pytestmark = pytest.mark.interop

LOOPBACK = "127.0.0.1"


def inbox_request(mid: int, token: bytes) -> bytes:
    from aiocoap import Message

    request = Message(code=Code.POST, payload=b"{}", uri_path=(*API_ROOT, "inbox"))
    request.opt.content_format = 50
    request.mtype, request.mid, request.token = udp.CON, mid, token
    return udp.encode(request)


async def test_s_client_fetches_inbox(tmp_path):
    upstream = FakeUpstream()
    async with running_gateway(gateway_config(tmp_path), upstream) as gateway:
        token = b"gw01"
        expected_ack = bytes([0x64, Code.CHANGED]) + (41).to_bytes(2, "big") + token

        async with openssl(
            "s_client", "-dtls1_2", "-cipher", "PSK-AES128-CCM8",
            "-psk", device_psk(1).hex(), "-psk_identity", "dev-01",
            "-connect", f"{LOOPBACK}:{gateway.port}",
        ) as process:
            await read_until(process, b"Cipher is PSK-AES128-CCM8")
            process.stdin.write(inbox_request(41, token))
            await process.stdin.drain()
            output = await read_until(process, expected_ack)

    assert expected_ack in output


async def test_s_client_unknown_identity(tmp_path):
    async with running_gateway(gateway_config(tmp_path), FakeUpstream()) as gateway:
        async with openssl(
            "s_client", "-dtls1_2", "-cipher", "PSK-AES128-CCM8",
            "-psk", device_psk(1).hex(), "-psk_identity", "intruder",
            "-connect", f"{LOOPBACK}:{gateway.port}",
        ) as process:
            process.stdin.close()
            async with asyncio.timeout(20):
                output = await process.stdout.read()
                status = await process.wait()

    assert status != 0
    assert b"unknown psk identity" in output.lower()


async def test_aiocoap_client_registers_plain(tmp_path):
    upstream = FakeUpstream()
    config = gateway_config(tmp_path, transport="coap", bulk_wait_ms=0)
    async with running_gateway(config, upstream) as gateway:
        status, stdout, stderr = await aiocoap_client(
            f"{gateway.uri}/msgin5g-gw/v1/registrations?device=dev-02",
            {"applicationId": "app.meter.02"},
        )

    assert status == 0, stderr
    document = json.loads(stdout)
    assert document["result"] == "SUCCESS"
    assert document["ueServiceId"] == "meter-02"
    assert [entry.ue_service_id for entry in upstream.calls_of("register_bulk")[0]] == ["meter-02"]


async def test_aiocoap_client_mismatch_plain(tmp_path):
    upstream = FakeUpstream()
    config = gateway_config(tmp_path, transport="coap")
    async with running_gateway(config, upstream) as gateway:
        status, stdout, stderr = await aiocoap_client(
            f"{gateway.uri}/msgin5g-gw/v1/registrations?device=dev-02",
            {"applicationId": "app.meter.01"},
        )

    # aiocoap-client prints an error response on stderr: the code line, then the body.
    code_line, _, body = stderr.partition("\n")
    assert status != 0
    assert code_line == "4.03 Forbidden"
    assert json.loads(body)["cause"] == "DEVICE_NOT_AUTHORIZED"
    assert upstream.calls_of("register_bulk") == []
