"""AF authorization at the AAnF: authorized_afs, bearer tokens and the supi-access scope."""

import os

import pytest
from openapi_validation import h2c_client, openapi_validator, sbi_traffic, serving  # noqa: F401

from msgin5g.crypto.akma import UA_TLS13, af_id_to_wire, format_a_kid
from msgin5g.nf.aanf.app import aanf_app
from msgin5g.nf.aanf.config import AANF_SCOPES, AanfConfig, AanfPeer
from msgin5g.nf.config import ConfigError, load_config
from msgin5g.sbi.client import SbiClient
from msgin5g.sbi.oauth import SelfIssuedToken, TokenIssuer
from msgin5g.service.kaf import AanfClient, AanfError

SUPI = "imsi-001010000000001"
AF_FQDN = "msgin5g.example.org"
KEY = os.urandom(32)
REGISTER = "/naanf-akma/v1/register-anchorkey"
RETRIEVE = "/naanf-akma/v1/retrieve-applicationkey"
APPLICATION_KEY_GET = "naanf-akma:applicationkeyget"
SUPI_ACCESS = "naanf-akma:applicationkeyget:supi-access"


def token(*scopes: str, key: bytes = KEY) -> dict[str, str]:
    value = TokenIssuer(key, issuer="nef").issue("nef", scopes, "aanf")
    return {"Authorization": f"Bearer {value}"}


async def start(tmp_path, recorder, **settings):
    config = AanfConfig.model_validate({"database": str(tmp_path / "aanf.sqlite3"), **settings})
    async with aanf_app(config) as app, serving(app, recorder) as uri, h2c_client(uri) as client:
        a_kid = format_a_kid("0012", os.urandom(32), "001", "01")
        registered = await client.post(REGISTER, json={"supi": SUPI, "aKId": a_kid, "kAkma": os.urandom(32).hex()})
        assert registered.status_code == 200, registered.text
        yield client, a_kid


@pytest.fixture
async def secured(tmp_path, sbi_traffic):
    settings = {"oauth": {"signing_key": KEY.hex()}, "authorized_afs": [AF_FQDN]}
    async for pair in start(tmp_path, sbi_traffic, **settings):
        yield pair


@pytest.fixture
async def open_aanf(tmp_path, sbi_traffic):
    async for pair in start(tmp_path, sbi_traffic):
        yield pair


def request(a_kid: str, fqdn: str = AF_FQDN) -> dict:
    return {"afId": af_id_to_wire(fqdn, UA_TLS13), "aKId": a_kid}


async def test_default_returns_supi(open_aanf):
    client, a_kid = open_aanf

    response = await client.post(RETRIEVE, json=request(a_kid, "any.example.net"))

    assert response.status_code == 200
    assert response.json()["supi"] == SUPI


async def test_missing_token_401(secured):
    client, a_kid = secured

    response = await client.post(RETRIEVE, json=request(a_kid))

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_token_other_key_401(secured):
    client, a_kid = secured

    response = await client.post(RETRIEVE, json=request(a_kid), headers=token(APPLICATION_KEY_GET, key=os.urandom(32)))

    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_token_without_scope_403(secured):
    client, a_kid = secured

    response = await client.post(RETRIEVE, json=request(a_kid), headers=token("naanf-akma:anchorkey"))

    assert response.status_code == 403
    assert response.json()["cause"] == "INSUFFICIENT_SCOPE"


async def test_unlisted_af_403(secured):
    client, a_kid = secured

    response = await client.post(
        RETRIEVE, json=request(a_kid, "intruder.example.net"), headers=token(APPLICATION_KEY_GET, SUPI_ACCESS)
    )

    assert response.status_code == 403
    assert response.json()["cause"] == "AF_NOT_AUTHORIZED"


async def test_without_supi_access_no_supi(secured):
    client, a_kid = secured

    response = await client.post(RETRIEVE, json=request(a_kid), headers=token(APPLICATION_KEY_GET))

    assert response.status_code == 200
    assert "supi" not in response.json()
    assert "kaf" in response.json()


async def test_supi_access_returns_supi(secured):
    client, a_kid = secured

    response = await client.post(RETRIEVE, json=request(a_kid), headers=token(APPLICATION_KEY_GET, SUPI_ACCESS))

    assert response.status_code == 200
    assert response.json()["supi"] == SUPI


async def test_register_needs_no_token(secured):
    client, _ = secured
    a_kid = format_a_kid("0012", os.urandom(32), "001", "01")

    response = await client.post(REGISTER, json={"supi": SUPI, "aKId": a_kid, "kAkma": os.urandom(32).hex()})

    assert response.status_code == 200


def test_config_short_key_rejected(tmp_path):
    path = tmp_path / "aanf.yaml"
    path.write_text("database: a.sqlite3\noauth: {signing_key: abcd}\n")

    with pytest.raises(ConfigError, match="oauth.signing_key"):
        load_config(path, AanfConfig)


def test_config_repr_hides_key(tmp_path):
    config = AanfConfig.model_validate({"database": "a.sqlite3", "oauth": {"signing_key": KEY.hex()}})

    assert KEY.hex() not in repr(config)


async def test_operator_af_signs_own_token(secured):
    """An AF inside the operator (the MSGin5G Server's AanfClient) reaches a token-checking AAnF."""
    client, a_kid = secured
    peer = AanfPeer(uri=str(client.base_url), signing_key=KEY.hex())
    token_source = SelfIssuedToken(peer.token_issuer(issuer=AF_FQDN), AF_FQDN, AANF_SCOPES, peer.audience)

    async with SbiClient(str(client.base_url)) as sbi:
        with_token = await AanfClient(sbi, token_source).retrieve_application_key(a_kid, AF_FQDN)
        with pytest.raises(AanfError, match="401"):
            await AanfClient(sbi).retrieve_application_key(a_kid, AF_FQDN)

    assert with_token is not None
    assert with_token.supi == SUPI
