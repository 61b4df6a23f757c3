"""The msgin5g UE against the OpenSSL command-line server (`openssl s_server -nocert -psk`).

s_server speaks no CoAP, so each test asserts that the handshake completes and
that the CSM frame the UE sends arrives on s_server's stdout. `-accept
127.0.0.1:0` makes s_server pick a free port and print it as "ACCEPT host:port".
"""

import asyncio
import contextlib
import re
import ssl

import pytest

from af_helpers import AF_FQDN, LOOPBACK, make_a_kid, make_k_akma
from msgin5g.coap.tcp import CoapTcpConnection
from msgin5g.crypto.akma import UA_TLS13, af_id, k_af, ua_tls12
from msgin5g.service.channel import ChannelError, open_tls12
from msgin5g.ua.tls13_psk import akma_psk_identity, client_context
from test_interop_openssl import SUBPROCESS_TIMEOUT_SECONDS, openssl_path

pytestmark = pytest.mark.interop

A_KID = make_a_kid(1)
K_AKMA = make_k_akma(1)
ACCEPT_LINE = re.compile(rb"ACCEPT .*:(\d+)")


@contextlib.asynccontextmanager
async def s_server(*options: str, k_af_value: bytes):
    """Run s_server for one connection; yield (process, port)."""
    process = await asyncio.create_subprocess_exec(
        openssl_path(),
        "s_server",
        "-nocert",
        "-naccept",
        "1",
        "-accept",
        f"{LOOPBACK}:0",
        "-psk",
        k_af_value.hex(),
        "-psk_identity",
        "3GPP-AKMA" + A_KID,
        *options,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(SUBPROCESS_TIMEOUT_SECONDS):
            port = await read_port(process.stdout)
        yield process, port
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def read_port(stdout: asyncio.StreamReader) -> int:
    while True:
        line = await stdout.readline()
        if not line:
            raise RuntimeError("s_server ended before it printed its ACCEPT line")
        match = ACCEPT_LINE.search(line)
        if match:
            return int(match[1])


async def read_until(stdout: asyncio.StreamReader, expected: bytes) -> bytes:
    seen = b""
    async with asyncio.timeout(SUBPROCESS_TIMEOUT_SECONDS):
        while expected not in seen:
            chunk = await stdout.read(4096)
            if not chunk:
                break
            seen += chunk
    return seen


def csm_frame() -> bytes:
    return CoapTcpConnection().data_to_send()


@pytest.mark.parametrize(
    "suite, code", [("PSK-AES128-GCM-SHA256", 0x00A8), ("ECDHE-PSK-CHACHA20-POLY1305", 0xCCAC)]
)
async def test_ue_tls12_reaches_s_server(suite, code):
    k_af_value = k_af(K_AKMA, af_id(AF_FQDN, ua_tls12(code)))
    async with s_server("-tls1_2", "-psk_hint", "3GPP-AKMA", "-cipher", suite, k_af_value=k_af_value) as (
        process,
        port,
    ):
        stream = await open_tls12(LOOPBACK, port, AF_FQDN, A_KID, K_AKMA)
        try:
            stream.write(csm_frame())
            await stream.drain()
            seen = await read_until(process.stdout, csm_frame())
        finally:
            stream.close()

    assert stream.engine.cipher_suite == code
    assert csm_frame() in seen


async def test_ue_tls12_refuses_other_hint():
    k_af_value = k_af(K_AKMA, af_id(AF_FQDN, ua_tls12(0x00A8)))
    async with s_server("-tls1_2", "-psk_hint", "not-akma", k_af_value=k_af_value) as (_, port):
        with pytest.raises(ChannelError, match="PSK identity hint 'not-akma'"):
            await open_tls12(LOOPBACK, port, AF_FQDN, A_KID, K_AKMA)


async def test_ue_tls12_wrong_key_fails():
    k_af_value = k_af(make_k_akma(2), af_id(AF_FQDN, ua_tls12(0x00A8)))
    options = ("-tls1_2", "-psk_hint", "3GPP-AKMA", "-cipher", "PSK-AES128-GCM-SHA256")
    async with s_server(*options, k_af_value=k_af_value) as (_, port):
        with pytest.raises(ChannelError) as raised:
            await open_tls12(LOOPBACK, port, AF_FQDN, A_KID, K_AKMA)

    assert raised.value.alert is not None


async def test_ue_tls13_reaches_s_server():
    k_af_value = k_af(K_AKMA, af_id(AF_FQDN, UA_TLS13))
    context = client_context(akma_psk_identity(A_KID), k_af_value)
    async with s_server("-tls1_3", k_af_value=k_af_value) as (process, port):
        async with asyncio.timeout(SUBPROCESS_TIMEOUT_SECONDS):
            _, writer = await asyncio.open_connection(
                LOOPBACK, port, ssl=context, server_hostname=AF_FQDN
            )
        try:
            writer.write(csm_frame())
            await writer.drain()
            seen = await read_until(process.stdout, csm_frame())
            version = writer.get_extra_info("ssl_object").version()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()

    assert version == "TLSv1.3"
    assert csm_frame() in seen
