"""The MSGin5G Server against the OpenSSL command-line client (`openssl s_client`).

s_client keys TLS 1.3 with an external PSK given in hex, independently of this
project's UE code. Its stdin carries raw CoAP-over-TCP frames (CSM, REG, Release)
and its stdout returns the server's frames. `-quiet` implies `-ign_eof`, so
s_client keeps reading after its stdin ends until the server closes; the Release
makes the server close once it has sent its response.
"""

import asyncio
import logging
import shutil
from dataclasses import dataclass

import pytest

from af_helpers import (
    AF_FQDN,
    LOOPBACK,
    AanfStub,
    CmStub,
    k_af_for,
    make_a_kid,
    running_server,
    serving,
    supi_for,
)
from msgin5g.coap.tcp import CoapTcpConnection, MessageReceived, SettingsReceived
from msgin5g.service import messages
from msgin5g.service.messages import MessageType

pytestmark = pytest.mark.interop

SUBPROCESS_TIMEOUT_SECONDS = 30


@dataclass
class ClientRun:
    returncode: int
    stdout: bytes
    stderr: str


def openssl_path() -> str:
    path = shutil.which("openssl")
    if path is None:
        raise RuntimeError("the openssl command is not on PATH; install OpenSSL 3 (apt-get install openssl)")
    return path


def coap_registration(ue_service_id: str) -> bytes:
    """CSM, then REG, then Release, as one CoAP-over-TCP byte stream."""
    connection = CoapTcpConnection()
    request = messages.build_request(messages.RegistrationRequest(ue_service_id))
    request.token = b"\x01\x02"
    connection.send_message(request)
    connection.send_release("interop test done")
    return connection.data_to_send()


async def s_client(
    port: int, k_af_hex: str, identity: str, *extra: str, version: str = "-tls1_3"
) -> ClientRun:
    """Run s_client with CSM, REG and Release on its stdin; `version` is its protocol flag."""
    process = await asyncio.create_subprocess_exec(
        openssl_path(),
        "s_client",
        version,
        "-quiet",
        "-connect",
        f"{LOOPBACK}:{port}",
        "-servername",
        AF_FQDN,
        "-psk",
        k_af_hex,
        "-psk_identity",
        identity,
        *extra,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(SUBPROCESS_TIMEOUT_SECONDS):
            stdout, stderr = await process.communicate(coap_registration("ue-svc-1"))
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return ClientRun(process.returncode, stdout, stderr.decode(errors="replace"))


@pytest.fixture
async def deployment(tmp_path):
    aanf, cm = AanfStub(), CmStub()
    a_kid = aanf.add_ue(1)
    cm.associate(supi_for(1), "ue-svc-1")
    async with serving(aanf.app) as aanf_uri, serving(cm.app) as cm_uri:
        async with running_server(tmp_path / "deployment.sqlite", aanf_uri, cm_uri) as running:
            yield running, a_kid


def server_rejections(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if " rejected: " in record.getMessage()]


async def test_s_client_registers(deployment):
    running, a_kid = deployment

    run = await s_client(running.port, k_af_for(1).hex(), "3GPP-AKMA" + a_kid)

    events = CoapTcpConnection().receive_data(run.stdout)
    assert run.returncode == 0, run.stderr
    assert isinstance(events[0], SettingsReceived)
    responses = [event.message for event in events if isinstance(event, MessageReceived)]
    assert len(responses) == 1
    assert responses[0].token == b"\x01\x02"
    result = messages.parse_response(MessageType.REG, responses[0])
    assert result.accepted
    assert await running.store.get("ue-svc-1") is not None


async def test_s_client_wrong_key_fails(deployment, caplog):
    running, a_kid = deployment

    run = await s_client(running.port, k_af_for(2).hex(), "3GPP-AKMA" + a_kid)

    assert run.returncode != 0
    assert run.stdout == b""
    assert "alert" in run.stderr
    assert any("PSK binder did not verify" in line for line in server_rejections(caplog))


async def test_s_client_sha384_only_refused(deployment, caplog):
    caplog.set_level(logging.INFO)
    running, a_kid = deployment

    run = await s_client(
        running.port,
        k_af_for(1).hex(),
        "3GPP-AKMA" + a_kid,
        "-ciphersuites",
        "TLS_AES_256_GCM_SHA384",
    )

    assert run.returncode != 0
    assert run.stdout == b""
    assert "handshake failure" in run.stderr
    assert any("no SHA-256 TLS 1.3 cipher suite" in line for line in server_rejections(caplog))


async def test_s_client_unknown_a_kid_refused(deployment, caplog):
    running, _ = deployment
    run = await s_client(running.port, k_af_for(55).hex(), "3GPP-AKMA" + make_a_kid(55))

    assert run.returncode != 0
    assert "unknown psk identity" in run.stderr
    assert any("rejected: unknown A-KID" in line for line in server_rejections(caplog))
