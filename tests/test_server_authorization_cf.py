"""The MSGin5G Server with the MSGin5G Configuration Function in place of the SEAL CM server.

The server runs from its YAML file (`run()`, as `msgin5g serve server` does)
and reads associations only from a real Configuration Function on loopback.
Every request that the server sends to the function is checked against
docs/openapi/msgin5g-cf.yaml.
"""

import asyncio
import contextlib
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiocoap.numbers.codes import Code
from openapi_validation import serving as serving_recorded
from test_nf_cf import cf_traffic  # noqa: F401

from af_helpers import AF_FQDN, AanfStub, k_af_for, serving, supi_for
from msgin5g.nf.cf.app import cf_app
from msgin5g.nf.cf.config import CfConfig
from msgin5g.service.channel import SecureChannel
from msgin5g.service.config import ConfigError, load_config
from msgin5g.service.messages import Cause
from msgin5g.service.profiles import run

SERVER_BASE = """\
listen: {host: 127.0.0.1, port: 0}
fqdn: msgin5g.example.test
aanf: {uri: "http://127.0.0.1:8003"}
database: msgin5g.sqlite3
"""


def write(tmp_path, text: str):
    path = tmp_path / "server.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_config_selects_configuration_function(tmp_path):
    text = SERVER_BASE + 'configuration_function: {uri: "http://127.0.0.1:8006", timeout: 2}\n'

    config = load_config(write(tmp_path, text))

    assert config.cm is None
    assert config.configuration_function.uri == "http://127.0.0.1:8006"
    assert config.configuration_function.timeout == 2


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (
            'cm: {uri: "http://127.0.0.1:8004"}\n'
            'configuration_function: {uri: "http://127.0.0.1:8006"}\n',
            "not both",
        ),
        ("", "set exactly one source of UE service ID associations"),
    ],
    ids=["both", "neither"],
)
def test_config_needs_exactly_one_source(tmp_path, extra, fragment):
    with pytest.raises(ConfigError) as raised:
        load_config(write(tmp_path, SERVER_BASE + extra))

    message = str(raised.value)
    assert fragment in message
    assert "cm {uri}" in message
    assert "configuration_function {uri}" in message


@dataclass
class CfDeployment:
    aanf: AanfStub
    port: int

    def channel(self, number: int) -> SecureChannel:
        a_kid = self.aanf.add_ue(number)
        return SecureChannel.open("127.0.0.1", self.port, AF_FQDN, a_kid, k_af_for(number))


@contextlib.asynccontextmanager
async def running_from_config(tmp_path, aanf_uri: str, cf_uri: str) -> AsyncIterator[int]:
    """Run the server from a YAML file that names the Configuration Function; yield its port."""
    path = write(
        tmp_path,
        f"""\
        fqdn: {AF_FQDN}
        aanf: {{uri: "{aanf_uri}"}}
        configuration_function: {{uri: "{cf_uri}", timeout: 2}}
        database: deployment.sqlite3
        """,
    )
    ready: asyncio.Queue[str] = asyncio.Queue()
    shutdown = asyncio.Event()
    server = asyncio.create_task(run(str(path), lambda uri, **extra: ready.put_nowait(uri), shutdown))
    try:
        async with asyncio.timeout(30):
            uri = await ready.get()
        yield int(uri.rsplit(":", 1)[1])
    finally:
        shutdown.set()
        async with asyncio.timeout(30):
            await server


@pytest.fixture
async def deployment(tmp_path, cf_traffic):  # noqa: F811
    aanf = AanfStub()
    cf_config = CfConfig.model_validate(
        {
            "associations": [
                {"ue_service_id": "phone-1", "ue_id": supi_for(1)},
                {"ue_service_id": "meter-1", "ue_id": supi_for(1), "relation": "gateway"},
                {"ue_service_id": "phone-2", "ue_id": supi_for(2)},
            ]
        }
    )
    async with serving(aanf.app) as aanf_uri, serving_recorded(cf_app(cf_config), cf_traffic) as cf_uri:
        async with running_from_config(tmp_path, aanf_uri, cf_uri) as port:
            yield CfDeployment(aanf, port)


async def test_reg_authorized_by_configuration_function(deployment):
    async with deployment.channel(1) as channel:
        own = await channel.register("phone-1")
        constrained = await channel.register("meter-1")

    assert own.accepted
    assert own.code == Code.CREATED
    assert constrained.accepted


async def test_reg_rejected_by_configuration_function(deployment):
    async with deployment.channel(1) as channel:
        result = await channel.register("phone-2")

    assert not result.accepted
    assert result.cause is Cause.UE_SERVICE_ID_NOT_ASSOCIATED
    assert "MSGin5G Configuration Function" in result.detail


async def test_reg_when_configuration_function_down(tmp_path):
    aanf = AanfStub()
    async with serving(cf_app(CfConfig())) as cf_uri:
        pass  # The function stops here, so its port refuses connections.

    async with serving(aanf.app) as aanf_uri:
        async with running_from_config(tmp_path, aanf_uri, cf_uri) as port:
            a_kid = aanf.add_ue(1)
            async with SecureChannel.open("127.0.0.1", port, AF_FQDN, a_kid, k_af_for(1)) as channel:
                result = await channel.register("phone-1")

    assert result.cause is Cause.AUTHORIZATION_UNAVAILABLE
    assert result.code == Code.SERVICE_UNAVAILABLE
    assert "MSGin5G Configuration Function" in result.detail
    assert "retry later" in result.detail
