"""The HTTPS profile against curl, an HTTP Digest client that this project did not write.

curl is pinned to TLS 1.2 with ECDHE-ECDSA-AES128-GCM-SHA256 (the certificate
from `msgin5g certs` is ECDSA), so the test knows the cipher suite, and so the
AF_ID 01 00 01 c0 2b, for which it derives K_AF before curl connects.
"""

import asyncio
import json
import shutil
from dataclasses import dataclass

import pytest

from af_helpers import AF_FQDN, LOOPBACK, make_a_kid, make_k_akma
from msgin5g.crypto.akma import af_id, k_af, ua_tls12
from msgin5g.ua import digest
from test_server_https import SERVICE_ID, HttpsDeployment, add_associated_ue, https_deployment

pytestmark = pytest.mark.interop

SUBPROCESS_TIMEOUT_SECONDS = 30
CURL_CIPHER = "ECDHE-ECDSA-AES128-GCM-SHA256"
CURL_CIPHER_SUITE = 0xC02B
STATUS_MARKER = "\nhttp_code="


@dataclass
class CurlRun:
    returncode: int
    status: int
    body: str
    stderr: str


def curl_path() -> str:
    path = shutil.which("curl")
    if path is None:
        raise RuntimeError("the curl command is not on PATH; install curl (apt-get install curl)")
    return path


def curl_password(number: int) -> str:
    """base64(K_AF) of UE `number` for the cipher suite that curl is pinned to."""
    key = k_af(make_k_akma(number), af_id(AF_FQDN, ua_tls12(CURL_CIPHER_SUITE)))
    return digest.digest_password(key)


async def curl_post(deployment: HttpsDeployment, user: str, *extra: str, agent: str = "3gpp-akma/1") -> CurlRun:
    body = json.dumps({"messageType": "REG", "ueServiceId": SERVICE_ID})
    process = await asyncio.create_subprocess_exec(
        curl_path(),
        "--silent",
        "--show-error",
        "--max-time", str(SUBPROCESS_TIMEOUT_SECONDS),
        "--cacert", deployment.ca_file,
        "--resolve", f"{AF_FQDN}:{deployment.port}:{LOOPBACK}",
        "--tlsv1.2", "--tls-max", "1.2", "--ciphers", CURL_CIPHER,
        "--digest", "-u", user,
        "-A", agent,
        "-H", "Content-Type: application/json",
        "-d", body,
        "--write-out", STATUS_MARKER + "%{http_code}",
        *extra,
        f"https://{AF_FQDN}:{deployment.port}/msgin5g/v1/registrations",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(SUBPROCESS_TIMEOUT_SECONDS + 5):
            stdout, stderr = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    text, _, status = stdout.decode(errors="replace").rpartition(STATUS_MARKER)
    return CurlRun(process.returncode, int(status or 0), text, stderr.decode(errors="replace"))


@pytest.mark.parametrize(
    ("algorithms", "http_option"),
    [(("SHA-256", "MD5"), "--http1.1"), (("MD5",), "--http2")],
    ids=["sha256-http1.1", "md5-http2"],
)
async def test_curl_registers(tmp_path, algorithms, http_option):
    async with https_deployment(tmp_path, algorithms=algorithms) as deployment:
        add_associated_ue(deployment, 1)
        run = await curl_post(deployment, f"{make_a_kid(1)}:{curl_password(1)}", http_option)
        af_ids = [request["afId"] for request in deployment.aanf.requests]

    assert run.returncode == 0, run.stderr
    assert run.status == 201, run.body
    assert json.loads(run.body) == {
        "messageType": "REG",
        "result": "SUCCESS",
        "ueServiceId": SERVICE_ID,
        "detail": f"UE service ID {SERVICE_ID!r} is registered",
    }
    assert af_ids == [f"{AF_FQDN};ua-protocol-id=010001c02b"]


async def test_curl_wrong_password_unauthorized(tmp_path):
    async with https_deployment(tmp_path) as deployment:
        add_associated_ue(deployment, 1)
        run = await curl_post(deployment, f"{make_a_kid(1)}:{curl_password(2)}")

    assert run.returncode == 0, run.stderr
    assert run.status == 401
    assert "Digest response does not verify" in run.body


async def test_curl_without_product_forbidden(tmp_path):
    async with https_deployment(tmp_path) as deployment:
        add_associated_ue(deployment, 1)
        run = await curl_post(deployment, f"{make_a_kid(1)}:{curl_password(1)}", agent="curl/7")

    assert run.status == 403
    assert "3gpp-akma" in run.body
