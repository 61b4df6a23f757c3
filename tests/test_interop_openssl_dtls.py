"""PSK-DTLS 1.2 against the openssl command line tool (OpenSSL 3.0) in both directions.

The system openssl allows PSK-AES128-CCM8 at its default security level; our side
runs cryptography's bundled OpenSSL 4 at @SECLEVEL=0.
"""

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import pytest
from aiocoap.numbers.codes import Code

from af_helpers import AF_FQDN, LOOPBACK, make_a_kid, make_k_akma
from msgin5g.coap import udp
from msgin5g.crypto.akma import af_id, k_af, ua_dtls12
from msgin5g.service import messages
from msgin5g.service.dtls_channel import DtlsClientSession, akma_client_engine
from msgin5g.ua import dtls12_psk as dtls
from test_server_dtls12 import SERVICE_ID, dtls_deployment_for

pytestmark = pytest.mark.interop

PROCESS_TIMEOUT = 20.0


def k_af_hex(number: int, suite: int = dtls.TLS_PSK_WITH_AES_128_CCM_8) -> str:
    return k_af(make_k_akma(number), af_id(AF_FQDN, ua_dtls12(suite))).hex()


def coap_request(mid: int, token: bytes) -> bytes:
    request = messages.build_request(messages.RegistrationRequest(SERVICE_ID))
    request.mtype, request.mid, request.token = udp.CON, mid, token
    return udp.encode(request)


@contextlib.asynccontextmanager
async def openssl(*arguments: str) -> AsyncIterator[asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(
        "openssl",
        *arguments,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await process.wait()


async def read_until(process: asyncio.subprocess.Process, marker: bytes) -> bytes:
    """Read the tool's output until `marker` appears; fail after PROCESS_TIMEOUT."""
    output = b""
    async with asyncio.timeout(PROCESS_TIMEOUT):
        while marker not in output:
            chunk = await process.stdout.read(4096)
            if not chunk:
                break
            output += chunk
    return output


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


async def test_s_client_registers(tmp_path):
    async with dtls_deployment_for(tmp_path) as deployment:
        a_kid = deployment.add_ue(1)
        token = b"ossl"
        expected_ack = bytes([0x64, Code.CREATED]) + (77).to_bytes(2, "big") + token

        async with openssl(
            "s_client", "-dtls1_2", "-cipher", "PSK-AES128-CCM8",
            "-psk", k_af_hex(1), "-psk_identity", f"3GPP-AKMA{a_kid}",
            "-connect", f"{LOOPBACK}:{deployment.port}",
        ) as process:
            await read_until(process, b"Cipher is PSK-AES128-CCM8")
            process.stdin.write(coap_request(77, token))
            await process.stdin.drain()
            output = await read_until(process, expected_ack)

    assert expected_ack in output


async def test_client_reaches_s_server():
    a_kid_text = make_a_kid(2)
    port = free_udp_port()
    datagram = coap_request(5, b"s_sv")

    async with openssl(
        "s_server", "-dtls1_2", "-listen", "-nocert", "-naccept", "1",
        "-cipher", "PSK-AES128-CCM8:PSK-AES128-GCM-SHA256",
        "-psk", k_af_hex(2), "-psk_hint", "3GPP-AKMA", "-psk_identity", f"3GPP-AKMA{a_kid_text}",
        "-accept", f"{LOOPBACK}:{port}",
    ) as process:
        await read_until(process, b"ACCEPT")
        engine = akma_client_engine(AF_FQDN, a_kid_text, make_k_akma(2))
        session = DtlsClientSession(LOOPBACK, port, engine, handshake_timeout=PROCESS_TIMEOUT)
        await session.connect()
        try:
            engine.send(datagram)
            session._flush()
            output = await read_until(process, datagram)
        finally:
            session.close()

    assert datagram in output


async def test_s_server_hint_and_identity():
    a_kid_text = make_a_kid(3)
    port = free_udp_port()

    async with openssl(
        "s_server", "-dtls1_2", "-listen", "-nocert", "-naccept", "1",
        "-cipher", "PSK-AES128-CCM8", "-psk", k_af_hex(3), "-psk_hint", "3GPP-AKMA",
        "-psk_identity", f"3GPP-AKMA{a_kid_text}", "-accept", f"{LOOPBACK}:{port}",
    ) as process:
        await read_until(process, b"ACCEPT")
        engine = akma_client_engine(AF_FQDN, a_kid_text, make_k_akma(3))
        session = DtlsClientSession(LOOPBACK, port, engine, handshake_timeout=PROCESS_TIMEOUT)
        await session.connect()
        session.close()
        output = await read_until(process, b"CONNECTION CLOSED")

    assert engine.hint == b"3GPP-AKMA"
    assert b"CIPHER is PSK-AES128-CCM8" in output
    # s_server warns when the identity differs from -psk_identity.
    assert b"PSK warning" not in output


async def test_s_client_without_psk_refused(tmp_path, caplog):
    """A DTLS client with certificate suites only cannot get a session not keyed by K_AF."""
    async with dtls_deployment_for(tmp_path) as deployment:
        async with openssl(
            "s_client", "-dtls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256",
            "-connect", f"{LOOPBACK}:{deployment.port}",
        ) as process:
            process.stdin.close()
            async with asyncio.timeout(PROCESS_TIMEOUT):
                output = await process.stdout.read()
                status = await process.wait()

    assert status != 0
    assert b"handshake failure" in output
    assert b"Cipher is (NONE)" in output
    assert any("rejected: no shared cipher" in record.getMessage() for record in caplog.records)
