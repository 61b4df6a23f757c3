"""The MSGin5G Server as an AF outside the operator: K_AF and the GPSI through the NEF.

The UDM, AAnF and NEF are the real ones on loopback (see test_nf_nef); the
SEAL CM server is the HTTP/2 stand-in of af_helpers. The server is started
from its YAML file with `nef` in place of `aanf`, so it must authorize each
registration by the UE's GPSI.
"""

import asyncio
import json
import textwrap

import pytest
from openapi_validation import openapi_validator, sbi_traffic  # noqa: F401
from test_nf_nef import AF_FQDN, CLIENT_ID, CLIENT_SECRET, GPSI, SUPI, running_core

from af_helpers import CmStub, serving
from msgin5g.nf.config import ConfigError
from msgin5g.service import messages
from msgin5g.service.channel import exchange_over_tls13
from msgin5g.service.config import load_config
from msgin5g.service.profiles import run
from msgin5g.service.store import RegistrationStore

SERVER_VIA_NEF = """\
    fqdn: {fqdn}
    nef: {{uri: "{nef}", client_id: {client_id}, client_secret: {client_secret}}}
    cm: {{uri: "{cm}"}}
    database: server.sqlite3
    listen: {{port: 0}}
    """


def write_config(tmp_path, text: str, **values) -> str:
    """Write `text` as server.yaml, filling in `values` when there are any."""
    text = textwrap.dedent(text)
    path = tmp_path / "server.yaml"
    path.write_text(text.format(**values) if values else text, encoding="utf-8")
    return str(path)


async def register_via_nef(tmp_path, recorder, cm: CmStub, ue_service_id: str) -> messages.RegistrationResult:
    """Run the core and the server, and register the UE with SUPI as `ue_service_id`."""
    async with running_core(tmp_path, recorder) as core, serving(cm.app) as cm_uri:
        a_kid, k_akma = await core.register_ue(SUPI)
        path = write_config(
            tmp_path,
            SERVER_VIA_NEF,
            fqdn=AF_FQDN,
            nef=core.nef_uri,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            cm=cm_uri,
        )
        ready: asyncio.Queue = asyncio.Queue()
        shutdown = asyncio.Event()
        server = asyncio.create_task(run(path, lambda uri, **extra: ready.put_nowait(uri), shutdown))
        try:
            async with asyncio.timeout(30):
                uri = await ready.get()
            port = int(uri.rsplit(":", 1)[1])
            request = messages.RegistrationRequest(ue_service_id)
            async with asyncio.timeout(30):
                return await exchange_over_tls13("127.0.0.1", port, AF_FQDN, a_kid, k_akma, request)
        finally:
            shutdown.set()
            async with asyncio.timeout(30):
                await server


async def test_registration_by_gpsi(tmp_path, sbi_traffic):
    cm = CmStub()
    cm.associate(GPSI, "svc-via-nef")

    result = await register_via_nef(tmp_path, sbi_traffic, cm, "svc-via-nef")

    assert result.accepted, result.detail
    assert [json.loads(query)["valUeId"] for query in cm.queries] == [GPSI]
    store = await RegistrationStore(tmp_path / "server.sqlite3").open()
    try:
        stored = await store.get("svc-via-nef")
    finally:
        await store.close()
    assert stored is not None
    assert stored.ue_id == GPSI


async def test_supi_association_not_used(tmp_path, sbi_traffic):
    cm = CmStub()
    cm.associate(SUPI, "svc-of-supi")

    result = await register_via_nef(tmp_path, sbi_traffic, cm, "svc-of-supi")

    assert not result.accepted
    assert result.cause == messages.Cause.UE_SERVICE_ID_NOT_ASSOCIATED


def test_config_aanf_and_nef_rejected(tmp_path):
    text = """\
        fqdn: msgin5g.example.test
        aanf: {uri: "http://127.0.0.1:1"}
        nef: {uri: "http://127.0.0.1:2", client_id: a, client_secret: b}
        cm: {uri: "http://127.0.0.1:3"}
        database: server.sqlite3
        """

    with pytest.raises(ConfigError, match="exactly one of aanf"):
        load_config(write_config(tmp_path, text))


def test_config_neither_rejected(tmp_path):
    text = """\
        fqdn: msgin5g.example.test
        cm: {uri: "http://127.0.0.1:3"}
        database: server.sqlite3
        """

    with pytest.raises(ConfigError, match="key 'aanf': is required but missing; add aanf"):
        load_config(write_config(tmp_path, text))


def test_config_hides_client_secret(tmp_path):
    text = """\
        fqdn: msgin5g.example.test
        nef: {uri: "http://127.0.0.1:2", client_id: a, client_secret: do-not-print-me}
        cm: {uri: "http://127.0.0.1:3"}
        database: server.sqlite3
        """

    assert "do-not-print-me" not in repr(load_config(write_config(tmp_path, text)))
