"""aiocoap's command-line client, an independent CoAP implementation, against our CoAP.

The test-only listener has no security, so aiocoap-client (whose own DTLS
cannot carry a 32-octet K_AF) can reach the same REG and DEREG handling that
the secured listeners use, and checks our RFC 8323 framing on the way.
"""

import asyncio
import json
import shutil
import sys
from pathlib import Path

import pytest

from af_helpers import LOOPBACK, CmStub, serving, supi_for
from msgin5g.sbi.client import SbiClient
from msgin5g.service.authorization import CmClient, RegistrationAuthorizer
from msgin5g.service.plain_coap import start_plain_coap_listener, start_plain_coap_udp_listener
from msgin5g.service.registration import RegistrationService
from msgin5g.service.store import RegistrationStore

pytestmark = pytest.mark.interop

SUBPROCESS_TIMEOUT_SECONDS = 30


def aiocoap_client_path() -> str:
    # The script is installed beside the interpreter that runs the tests.
    path = Path(sys.executable).parent / "aiocoap-client"
    if path.exists():
        return str(path)
    found = shutil.which("aiocoap-client")
    if found is None:
        raise RuntimeError("aiocoap-client not found: install the project with its dependencies (make venv)")
    return found


async def aiocoap_client(uri: str, payload: dict) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        aiocoap_client_path(), "-m", "POST", "--content-format", "application/json",
        "--payload", json.dumps(payload), "--no-color", "--no-pretty-print", uri,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(SUBPROCESS_TIMEOUT_SECONDS):
            stdout, stderr = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return process.returncode, stdout.decode(), stderr.decode()


@pytest.fixture
async def listener(tmp_path):
    cm = CmStub()
    cm.associate(supi_for(1), "ue-svc-1")
    async with serving(cm.app) as cm_uri, SbiClient(cm_uri) as cm_sbi:
        store = await RegistrationStore(tmp_path / "deployment.sqlite").open()
        service = RegistrationService(RegistrationAuthorizer(CmClient(cm_sbi)), store)
        running = await start_plain_coap_listener(LOOPBACK, 0, service=service, ue_id=supi_for(1))
        running_udp = await start_plain_coap_udp_listener(LOOPBACK, 0, service=service, ue_id=supi_for(1))
        try:
            yield running, store, running_udp
        finally:
            await running.close()
            await running_udp.close()
            await store.close()


async def test_aiocoap_client_registers_over_tcp(listener):
    running, store, _ = listener

    status, stdout, stderr = await aiocoap_client(
        f"{running.uri}/msgin5g/v1/registrations", {"messageType": "REG", "ueServiceId": "ue-svc-1"}
    )

    assert status == 0, stderr
    assert json.loads(stdout)["result"] == "SUCCESS"
    assert await store.get("ue-svc-1") is not None


async def test_aiocoap_client_gets_rejection_cause(listener):
    running, _, _ = listener

    status, stdout, stderr = await aiocoap_client(
        f"{running.uri}/msgin5g/v1/registrations", {"messageType": "REG", "ueServiceId": "other"}
    )

    # aiocoap-client prints an error response on stderr: the code line, then the body.
    code_line, _, body = stderr.partition("\n")
    assert status != 0
    assert stdout == ""
    assert code_line == "4.03 Forbidden"
    assert json.loads(body)["cause"] == "UE_SERVICE_ID_NOT_ASSOCIATED"


async def test_plain_listener_refuses_public_address():
    with pytest.raises(ValueError, match="must bind a loopback address"):
        await start_plain_coap_listener("0.0.0.0", 0, service=None, ue_id="imsi-001010000000001")


async def test_aiocoap_client_deregisters(listener):
    running, store, _ = listener
    registration = {"messageType": "REG", "ueServiceId": "ue-svc-1"}
    await aiocoap_client(f"{running.uri}/msgin5g/v1/registrations", registration)

    status, stdout, stderr = await aiocoap_client(
        f"{running.uri}/msgin5g/v1/deregistrations", {"messageType": "DEREG", "ueServiceId": "ue-svc-1"}
    )

    assert status == 0, stderr
    assert json.loads(stdout)["result"] == "SUCCESS"
    assert await store.get("ue-svc-1") is None


async def test_aiocoap_client_registers_over_udp(listener):
    _, store, running_udp = listener

    status, stdout, stderr = await aiocoap_client(
        f"{running_udp.uri}/msgin5g/v1/registrations", {"messageType": "REG", "ueServiceId": "ue-svc-1"}
    )

    assert running_udp.uri.startswith("coap://127.0.0.1:")
    assert status == 0, stderr
    assert json.loads(stdout)["result"] == "SUCCESS"
    assert await store.get("ue-svc-1") is not None
