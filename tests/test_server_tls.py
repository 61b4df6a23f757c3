"""Sessions the MSGin5G Server must reject, the alert each peer receives and the logged reason."""

import asyncio
import logging
import re
import ssl
from dataclasses import dataclass

import pytest

from af_helpers import (
    AF_FQDN,
    AanfStub,
    CmStub,
    RunningServer,
    as_records,
    build_client_hello,
    k_af_for,
    make_a_kid,
    running_server,
    send_raw_client_hello,
    serving,
    supi_for,
)
from msgin5g.service.channel import ChannelError, SecureChannel
from msgin5g.service.config import Limits
from msgin5g.ua.alerts import AlertDescription, fatal_alert_record
from msgin5g.ua.tls13_psk import AKMA_IDENTITY_PREFIX

SERVER_LOGGER = "msgin5g.service.server"


@dataclass
class Deployment:
    aanf: AanfStub
    cm: CmStub
    running: RunningServer

    async def connect(self, a_kid: str, k_af: bytes, fqdn: str = AF_FQDN) -> SecureChannel:
        return await SecureChannel.connect(self.running.host, self.running.port, fqdn, a_kid, k_af)

    async def raw(self, records: bytes) -> bytes:
        return await send_raw_client_hello(self.running.host, self.running.port, records)


@pytest.fixture
async def deployment(tmp_path):
    aanf, cm = AanfStub(), CmStub()
    async with serving(aanf.app) as aanf_uri, serving(cm.app) as cm_uri:
        async with running_server(tmp_path / "deployment.sqlite", aanf_uri, cm_uri) as running:
            yield Deployment(aanf, cm, running)


def rejections(caplog) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == SERVER_LOGGER and " rejected: " in record.getMessage()
    ]


async def test_unknown_a_kid_gives_clear_cause(deployment, caplog):
    caplog.set_level(logging.INFO)

    with pytest.raises(ChannelError) as error:
        await deployment.connect(make_a_kid(77), k_af_for(77))

    assert error.value.alert is AlertDescription.unknown_psk_identity
    assert error.value.cause == (
        "the server's AAnF does not know this A-KID (run primary authentication again, and check "
        "that the UE's home network MCC, MNC and routing indicator match the core's)"
    )
    assert any(
        re.fullmatch(r"connection [0-9a-f]{8} rejected: unknown A-KID \(alert unknown_psk_identity\)", line)
        for line in rejections(caplog)
    )


async def test_stale_k_akma_fails_binder(deployment, caplog):
    a_kid = deployment.aanf.add_ue(1)

    with pytest.raises(ChannelError) as error:
        await deployment.connect(a_kid, k_af_for(2))

    assert "K_AF differs (wrong AF FQDN or stale K_AKMA)" in error.value.cause
    assert any("PSK binder did not verify" in line for line in rejections(caplog))


async def test_wrong_af_fqdn_logged_with_sni(deployment, caplog):
    a_kid = deployment.aanf.add_ue(1)

    with pytest.raises(ChannelError) as error:
        await deployment.connect(a_kid, k_af_for(1, "other.example.test"), fqdn="other.example.test")

    assert "K_AF differs" in error.value.cause
    assert any(
        "the client sent SNI 'other.example.test' but this AF's FQDN is 'msgin5g.example.test'"
        in line
        for line in rejections(caplog)
    )


async def test_plain_tls_client_refused(deployment, caplog):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE

    with pytest.raises(ssl.SSLError) as error:
        await asyncio.open_connection(
            deployment.running.host, deployment.running.port, ssl=context, server_hostname=AF_FQDN
        )

    assert "handshake failure" in str(error.value).lower()
    assert any("client offers no PSK" in line for line in rejections(caplog))


async def test_sha384_only_client_refused_with_reason(deployment, caplog):
    caplog.set_level(logging.INFO)
    a_kid = deployment.aanf.add_ue(1)
    hello = build_client_hello(
        cipher_suites=(0x1302,), identities=(AKMA_IDENTITY_PREFIX + a_kid.encode(),)
    )

    answer = await deployment.raw(as_records(hello))

    assert answer == fatal_alert_record(AlertDescription.handshake_failure)
    assert any(
        "no SHA-256 TLS 1.3 cipher suite" in line and "bound to SHA-256" in line
        for line in rejections(caplog)
    )
    assert deployment.aanf.requests == []


@pytest.mark.parametrize(
    ("identity", "reason"),
    [
        (b"", "empty PSK identity"),
        (b"NOT-AKMA" + make_a_kid(1).encode(), "lacks the 3GPP-AKMA prefix"),
        (AKMA_IDENTITY_PREFIX, "no A-KID after the 3GPP-AKMA prefix"),
        (AKMA_IDENTITY_PREFIX + b"a" * 300, "309 octets exceeds OpenSSL's limit of 256"),
    ],
)
async def test_bad_identity_refused_with_reason(deployment, caplog, identity, reason):
    answer = await deployment.raw(as_records(build_client_hello(identities=(identity,))))

    assert answer == fatal_alert_record(AlertDescription.unknown_psk_identity)
    assert any(reason in line for line in rejections(caplog))
    assert deployment.aanf.requests == []


async def test_long_a_kid_rejected_clearly(deployment, caplog):
    """An A-KID over 128 octets is not in this deployment's layout: refused before the AAnF."""
    long_a_kid = "rid0.atid" + "A" * 150 + "@5gc.mnc001.mcc001.3gppnetwork.org"
    hello = build_client_hello(identities=(AKMA_IDENTITY_PREFIX + long_a_kid.encode(),))

    answer = await deployment.raw(as_records(hello))

    assert answer == fatal_alert_record(AlertDescription.unknown_psk_identity)
    assert any("malformed A-KID" in line for line in rejections(caplog))
    assert deployment.aanf.requests == []


async def test_long_a_kid_refused_by_ue_before_connecting(deployment):
    long_a_kid = "rid0.atid" + "A" * 150 + "@5gc.mnc001.mcc001.3gppnetwork.org"

    with pytest.raises(ValueError, match="invalid a_kid"):
        await deployment.connect(long_a_kid, k_af_for(1))


async def test_client_hello_in_many_records_accepted(deployment):
    """A ClientHello split over several records and TCP writes still reaches the AAnF."""
    a_kid = deployment.aanf.add_ue(1)
    hello = build_client_hello(identities=(AKMA_IDENTITY_PREFIX + a_kid.encode(),))
    requested = deployment.aanf.requested_event(a_kid)

    reader, writer = await asyncio.open_connection(deployment.running.host, deployment.running.port)
    try:
        for record in _records(as_records(hello, fragment_size=100)):
            writer.write(record)
            await writer.drain()
        async with asyncio.timeout(10):
            await requested.wait()
            answer = await reader.read()
    finally:
        writer.close()

    # The zero binders of the hand-built ClientHello fail OpenSSL's binder check.
    assert answer[:1] == b"\x15"


def _records(data: bytes) -> list[bytes]:
    records, offset = [], 0
    while offset < len(data):
        length = int.from_bytes(data[offset + 3 : offset + 5], "big")
        records.append(data[offset : offset + 5 + length])
        offset += 5 + length
    return records


async def test_aanf_unreachable_gives_internal_error(tmp_path, caplog):
    async with serving(AanfStub().app) as aanf_uri:
        pass  # The AAnF stand-in stops again, so its port refuses connections.
    async with serving(CmStub().app) as cm_uri:
        async with running_server(tmp_path / "db.sqlite", aanf_uri, cm_uri) as running:
            with pytest.raises(ChannelError) as error:
                await SecureChannel.connect(
                    running.host, running.port, AF_FQDN, make_a_kid(1), k_af_for(1)
                )

    assert error.value.alert is AlertDescription.internal_error
    assert "retry later" in error.value.cause
    assert any("K_AF not available" in line for line in rejections(caplog))


async def test_handshake_timeout_closes_connection(tmp_path, caplog):
    aanf, cm = AanfStub(), CmStub()
    async with serving(aanf.app) as aanf_uri, serving(cm.app) as cm_uri:
        limits = Limits(handshake_timeout=0.2)
        async with running_server(tmp_path / "db.sqlite", aanf_uri, cm_uri, limits=limits) as running:
            reader, writer = await asyncio.open_connection(running.host, running.port)
            async with asyncio.timeout(20):
                closed_by_server = await reader.read()
            writer.close()

    assert closed_by_server == b""
    assert any("TLS handshake not complete after 0.2 s" in line for line in rejections(caplog))


async def test_connection_limit(tmp_path, caplog):
    aanf, cm = AanfStub(), CmStub()
    a_kid = aanf.add_ue(1)
    async with serving(aanf.app) as aanf_uri, serving(cm.app) as cm_uri:
        limits = Limits(max_connections=1)
        async with running_server(tmp_path / "db.sqlite", aanf_uri, cm_uri, limits=limits) as running:
            async with SecureChannel.open(running.host, running.port, AF_FQDN, a_kid, k_af_for(1)):
                with pytest.raises(ChannelError):
                    await SecureChannel.connect(
                        running.host, running.port, AF_FQDN, a_kid, k_af_for(1)
                    )

    assert any(
        "the limit of 1 connections is reached" in record.getMessage() for record in caplog.records
    )


async def test_no_k_af_or_personal_data_in_logs(deployment, caplog):
    """A full run at DEBUG: no K_AF anywhere, SUPI only in DEBUG records."""
    caplog.set_level(logging.DEBUG)
    a_kid = deployment.aanf.add_ue(1)
    deployment.cm.associate(supi_for(1), "ue-svc-1")

    async with SecureChannel.open(
        deployment.running.host, deployment.running.port, AF_FQDN, a_kid, k_af_for(1)
    ) as channel:
        await channel.register("ue-svc-1")
        await channel.register("ue-svc-2")
        await channel.deregister("ue-svc-1")
    with pytest.raises(ChannelError):
        await deployment.connect(a_kid, k_af_for(2))
    with pytest.raises(ChannelError):
        await deployment.connect(make_a_kid(9), k_af_for(9))

    secrets = [k_af_for(number) for number in (1, 2, 9)]
    forbidden = [form for key in secrets for form in (key.hex(), key.hex().upper(), repr(key))]
    logged = [(record, record.getMessage() + repr(record.args)) for record in caplog.records]
    assert logged
    for record, text in logged:
        for form in forbidden:
            assert form not in text, f"{record.name} logged a K_AF"
        if record.name.startswith("msgin5g") and record.levelno > logging.DEBUG:
            assert supi_for(1) not in text, f"{record.name} logged a SUPI at {record.levelname}"


async def test_server_logs_established_connection(deployment, caplog):
    caplog.set_level(logging.INFO)
    a_kid = deployment.aanf.add_ue(1)

    async with SecureChannel.open(
        deployment.running.host, deployment.running.port, AF_FQDN, a_kid, k_af_for(1)
    ):
        pass

    assert any(
        re.fullmatch(r"connection [0-9a-f]{8} established with an AKMA K_AF \(TLS_\w+_SHA256\)", r.getMessage())
        for r in caplog.records
    )
