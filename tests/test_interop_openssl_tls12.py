"""The PSK-TLS 1.2 listener against the OpenSSL command-line client (`openssl s_client -tls1_2`).

s_client is given K_AF in hex for AF_ID = FQDN || 01 00 01 yy zz of the one suite
it offers, so that it keys the handshake exactly as an AKMA UE does for that suite.
Its stdin carries CSM, REG and Release; its stdout returns the server's frames.
"""

import asyncio
import logging

import pytest

from test_server_tls12 import deployment, rejections  # noqa: F401 (the fixture)
from af_helpers import AF_FQDN, LOOPBACK, make_a_kid, make_k_akma
from msgin5g.coap.tcp import CoapTcpConnection, MessageReceived, SettingsReceived
from msgin5g.crypto.akma import af_id, k_af, ua_tls12
from msgin5g.service import messages
from msgin5g.service.messages import MessageType
from test_interop_openssl import SUBPROCESS_TIMEOUT_SECONDS, ClientRun, openssl_path, s_client

pytestmark = pytest.mark.interop

SUITES = {"PSK-AES128-GCM-SHA256": 0x00A8, "ECDHE-PSK-CHACHA20-POLY1305": 0xCCAC}


def k_af_hex(number: int, code: int) -> str:
    return k_af(make_k_akma(number), af_id(AF_FQDN, ua_tls12(code))).hex()


async def s_client_tls12(port: int, k_af_value: str, identity: str, suite: str) -> ClientRun:
    return await s_client(port, k_af_value, identity, "-cipher", suite, version="-tls1_2")


@pytest.mark.parametrize("suite", sorted(SUITES))
async def test_s_client_registers(deployment, suite):  # noqa: F811
    code = SUITES[suite]

    run = await s_client_tls12(deployment.port, k_af_hex(1, code), "3GPP-AKMA" + make_a_kid(1), suite)

    events = CoapTcpConnection().receive_data(run.stdout)
    assert run.returncode == 0, run.stderr
    assert isinstance(events[0], SettingsReceived)
    responses = [event.message for event in events if isinstance(event, MessageReceived)]
    assert len(responses) == 1
    assert messages.parse_response(MessageType.REG, responses[0]).accepted
    assert deployment.requested_ua_ids() == [ua_tls12(code).hex()]


async def test_s_client_wrong_key_fails(deployment, caplog):  # noqa: F811
    """K_AF of another suite (here 0xCCAC's) does not key a PSK-AES128-GCM-SHA256 session."""
    run = await s_client_tls12(
        deployment.port, k_af_hex(1, 0xCCAC), "3GPP-AKMA" + make_a_kid(1), "PSK-AES128-GCM-SHA256"
    )

    assert run.returncode != 0
    assert run.stdout == b""
    assert any("client Finished failed" in line for line in rejections(caplog))


async def test_s_client_unknown_a_kid_refused(deployment, caplog):  # noqa: F811
    caplog.set_level(logging.INFO)

    run = await s_client_tls12(
        deployment.port, k_af_hex(55, 0x00A8), "3GPP-AKMA" + make_a_kid(55), "PSK-AES128-GCM-SHA256"
    )

    assert run.returncode != 0
    assert "unknown psk identity" in run.stderr
    assert any("rejected: unknown A-KID" in line for line in rejections(caplog))


async def test_s_client_without_psk_refused(deployment, caplog):  # noqa: F811
    """A TLS 1.2 client with certificate suites only cannot get a session not keyed by K_AF."""
    caplog.set_level(logging.INFO)
    process = await asyncio.create_subprocess_exec(
        openssl_path(), "s_client", "-tls1_2", "-quiet", "-connect", f"{LOOPBACK}:{deployment.port}",
        "-cipher", "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(SUBPROCESS_TIMEOUT_SECONDS):
            stdout, stderr = await process.communicate(b"")
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    assert process.returncode != 0
    assert stdout == b""
    assert "handshake failure" in stderr.decode(errors="replace")
    assert any("none of this server's TLS 1.2 PSK cipher suites" in line for line in rejections(caplog))
