"""One MSGin5G Server with a listener per Ua* security profile, from its YAML file."""

import asyncio
import textwrap

import pytest

from af_helpers import AF_FQDN, AanfStub, CmStub, make_k_akma, serving, supi_for
from msgin5g.cli.certs import write_certificates
from msgin5g.nf.config import ConfigError
from msgin5g.service import messages
from msgin5g.service.channel import exchange_over_tls12, exchange_over_tls13
from msgin5g.service.dtls_channel import exchange_over_dtls12
from msgin5g.service.https_channel import exchange_over_https
from msgin5g.service.profiles import run

ALL_PROFILES = """\
    fqdn: {fqdn}
    aanf: {{uri: "{aanf}"}}
    cm: {{uri: "{cm}"}}
    database: deployment.sqlite3
    profiles:
      psk-tls1.3: {{listen: {{port: 0}}}}
      psk-tls1.2: {{listen: {{port: 0}}}}
      https-digest:
        listen: {{port: 0}}
        options: {{certfile: server.pem, keyfile: server.key}}
      psk-dtls1.2: {{listen: {{port: 0}}}}
    """


def write_config(tmp_path, text: str, **values) -> str:
    path = tmp_path / "server.yaml"
    path.write_text(textwrap.dedent(text).format(**values), encoding="utf-8")
    return str(path)


def make_certificates(tmp_path) -> None:
    names = ("ca.key", "ca.pem", "server.key", "server.pem")
    write_certificates({name: tmp_path / name for name in names}, [AF_FQDN], days=1)


def port_of(uri: str) -> int:
    return int(uri.rsplit(":", 1)[1])


async def test_every_profile_registers(tmp_path):
    aanf, cm = AanfStub(), CmStub()
    make_certificates(tmp_path)
    numbers = {"psk-tls1.3": 1, "psk-tls1.2": 2, "https-digest": 3, "psk-dtls1.2": 4}
    a_kids = {profile: aanf.add_ue(number) for profile, number in numbers.items()}
    for profile, number in numbers.items():
        cm.associate(supi_for(number), f"svc-{profile}")

    async with serving(aanf.app) as aanf_uri, serving(cm.app) as cm_uri:
        path = write_config(tmp_path, ALL_PROFILES, fqdn=AF_FQDN, aanf=aanf_uri, cm=cm_uri)
        ready: asyncio.Queue = asyncio.Queue()
        shutdown = asyncio.Event()
        server = asyncio.create_task(run(path, lambda uri, **extra: ready.put_nowait(extra["uris"]), shutdown))
        try:
            async with asyncio.timeout(30):
                uris = await ready.get()
            results = {}
            for profile, exchange, options in (
                ("psk-tls1.3", exchange_over_tls13, {}),
                ("psk-tls1.2", exchange_over_tls12, {}),
                ("https-digest", exchange_over_https, {"ca_file": str(tmp_path / "ca.pem")}),
                ("psk-dtls1.2", exchange_over_dtls12, {}),
            ):
                request = messages.RegistrationRequest(f"svc-{profile}")
                results[profile] = await exchange(
                    "127.0.0.1", port_of(uris[profile]), AF_FQDN, a_kids[profile],
                    make_k_akma(numbers[profile]), request, **options,
                )
        finally:
            shutdown.set()
            async with asyncio.timeout(30):
                await server

    assert set(uris) == set(numbers)
    assert uris["psk-dtls1.2"].startswith("coaps://")
    assert uris["https-digest"].startswith("https://")
    for profile, result in results.items():
        assert result.accepted, f"{profile}: {result.detail}"


async def test_listen_and_profiles_together_rejected(tmp_path):
    text = """\
        fqdn: msgin5g.example.test
        aanf: {uri: "http://127.0.0.1:1"}
        cm: {uri: "http://127.0.0.1:2"}
        database: deployment.sqlite3
        listen: {port: 0}
        profiles: {psk-tls1.2: {listen: {port: 0}}}
        """
    path = tmp_path / "server.yaml"
    path.write_text(textwrap.dedent(text))

    with pytest.raises(ConfigError, match="set either listen"):
        await run(str(path), lambda uri, **extra: None, asyncio.Event())


async def test_bad_profile_option_named(tmp_path):
    text = """\
        fqdn: msgin5g.example.test
        aanf: {uri: "http://127.0.0.1:1"}
        cm: {uri: "http://127.0.0.1:2"}
        database: deployment.sqlite3
        profiles: {psk-dtls1.2: {options: {mtu: 10}}}
        """
    path = tmp_path / "server.yaml"
    path.write_text(textwrap.dedent(text))

    with pytest.raises(ConfigError) as raised:
        await run(str(path), lambda uri, **extra: None, asyncio.Event())

    assert "profiles.psk-dtls1.2.options" in str(raised.value)
    assert "mtu" in str(raised.value)


async def test_unknown_profile_named(tmp_path):
    text = """\
        fqdn: msgin5g.example.test
        aanf: {uri: "http://127.0.0.1:1"}
        cm: {uri: "http://127.0.0.1:2"}
        database: deployment.sqlite3
        profiles: {psk-tls1.1: {listen: {port: 0}}}
        """
    path = tmp_path / "server.yaml"
    path.write_text(textwrap.dedent(text))

    with pytest.raises(ConfigError) as raised:
        await run(str(path), lambda uri, **extra: None, asyncio.Event())

    assert "psk-tls1.1" in str(raised.value)


async def test_missing_certificate_is_config_error(tmp_path):
    text = """\
        fqdn: msgin5g.example.test
        aanf: {uri: "http://127.0.0.1:1"}
        cm: {uri: "http://127.0.0.1:2"}
        database: deployment.sqlite3
        profiles:
          https-digest: {listen: {port: 0}, options: {certfile: absent.pem, keyfile: absent.key}}
        """
    path = tmp_path / "server.yaml"
    path.write_text(textwrap.dedent(text))

    with pytest.raises(ConfigError) as raised:
        await run(str(path), lambda uri, **extra: None, asyncio.Event())

    assert "profiles.https-digest" in str(raised.value)
    assert "absent.pem" in str(raised.value)
