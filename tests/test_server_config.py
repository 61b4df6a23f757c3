"""The server's YAML configuration and `run()`, the entry point of `msgin5g serve server`."""

import asyncio
import textwrap

import pytest

from af_helpers import AF_FQDN, AanfStub, CmStub, k_af_for, serving, supi_for
from msgin5g.service.channel import SecureChannel
from msgin5g.service.config import ConfigError, load_config
from msgin5g.service.profiles import run

VALID = """\
listen: {host: 127.0.0.1, port: 0}
fqdn: msgin5g.example.test
aanf: {uri: "http://127.0.0.1:8003"}
cm: {uri: "http://127.0.0.1:8004", timeout: 2}
database: data/msgin5g.sqlite3
"""


def write(tmp_path, text: str):
    path = tmp_path / "server.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_valid_config_loaded(tmp_path):
    config = load_config(write(tmp_path, VALID))

    assert config.fqdn == AF_FQDN
    assert config.listen.port == 0
    assert config.aanf.uri == "http://127.0.0.1:8003"
    assert config.cm.timeout == 2
    assert config.limits.max_connections == 1000
    assert config.limits.handshake_timeout == 10


def test_relative_database_is_beside_config(tmp_path):
    config = load_config(write(tmp_path, VALID))

    assert config.database == tmp_path / "data" / "msgin5g.sqlite3"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (VALID.replace("fqdn: msgin5g.example.test\n", ""), "key 'fqdn': is required but missing"),
        (VALID + "listne: {}\n", "key 'listne': is not a known key"),
        (VALID.replace("msgin5g.example.test", "bad_name!"), "key 'fqdn': invalid fqdn"),
        (VALID.replace("http://127.0.0.1:8003", "ftp://x"), "key 'aanf.uri'"),
        (VALID.replace("host: 127.0.0.1", "host: example.test"), "must be an IP address"),
        (VALID + "limits: {max_connections: 0}\n", "key 'limits.max_connections'"),
        (VALID + "limits: {max_message_size: 100}\n", "key 'limits.max_message_size'"),
        ("- a\n- b\n", "must contain a YAML mapping"),
        ("fqdn: [\n", "is not valid YAML"),
    ],
)
def test_invalid_config_names_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_config(write(tmp_path, text))


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read configuration file"):
        load_config(tmp_path / "absent.yaml")


async def test_run_serves_until_shutdown(tmp_path):
    aanf, cm = AanfStub(), CmStub()
    a_kid = aanf.add_ue(1)
    cm.associate(supi_for(1), "ue-svc-1")

    async with serving(aanf.app) as aanf_uri, serving(cm.app) as cm_uri:
        path = write(
            tmp_path,
            f"""\
            fqdn: {AF_FQDN}
            aanf: {{uri: "{aanf_uri}"}}
            cm: {{uri: "{cm_uri}"}}
            database: deployment.sqlite3
            """,
        )
        ready: asyncio.Queue[str] = asyncio.Queue()
        shutdown = asyncio.Event()
        server = asyncio.create_task(run(str(path), lambda uri, **extra: ready.put_nowait(uri), shutdown))
        async with asyncio.timeout(30):
            uri = await ready.get()

        port = int(uri.rsplit(":", 1)[1])
        async with SecureChannel.open("127.0.0.1", port, AF_FQDN, a_kid, k_af_for(1)) as channel:
            result = await channel.register("ue-svc-1")
            shutdown.set()
            async with asyncio.timeout(30):
                await server
                reason = await channel.wait_closed()

    assert uri.startswith("coaps+tcp://127.0.0.1:")
    assert result.accepted
    assert reason == "the server released the connection: the MSGin5G Server is shutting down"
    assert (tmp_path / "deployment.sqlite3").exists()


async def test_run_reports_bad_config(tmp_path):
    path = write(tmp_path, "fqdn: msgin5g.example.test\n")

    with pytest.raises(ConfigError, match="key 'aanf': is required"):
        await run(str(path), lambda uri, **extra: None, asyncio.Event())
