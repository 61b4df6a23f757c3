"""The NEF over real HTTP/2 on loopback, with the real AAnF and UDM behind it.

An AF gets a token at POST /oauth2/token with its client credentials, then
K_AF and the GPSI at POST /3gpp-akma/v1/retrieve. The AAnF verifies the
NEF's token and returns the SUPI, which the NEF translates to the GPSI at the
UDM. Every exchange is validated against the OpenAPI files.
"""

import base64
import contextlib
import os
import time
from dataclasses import dataclass

import httpx
import pytest
from openapi_validation import h2c_client, openapi_validator, sbi_traffic, serving  # noqa: F401

from msgin5g.cli.provision import provision
from msgin5g.crypto.akma import UA_TLS13, af_id, af_id_to_wire, format_a_kid, k_af
from msgin5g.nf.aanf.app import aanf_app
from msgin5g.nf.aanf.config import AanfConfig
from msgin5g.nf.nef.app import nef_app
from msgin5g.nf.config import ConfigError
from msgin5g.nf.nef.config import NefConfig, load_nef_config
from msgin5g.nf.udm.app import udm_app
from msgin5g.nf.udm.config import UdmConfig
from msgin5g.service.kaf import NefClient, NefError

AF_FQDN = "msgin5g.example.test"
OTHER_FQDN = "other.example.test"
CLIENT_ID = "msgin5g-server"
CLIENT_SECRET = "s3cret-of-the-msgin5g-server"
NEF_KEY = os.urandom(32).hex()
AANF_KEY = os.urandom(32).hex()
SUPI = "imsi-001010000000001"
GPSI = "msisdn-4917000000001"
SUPI_WITHOUT_GPSI = "imsi-001010000000002"
TOKEN = "/oauth2/token"
RETRIEVE = "/3gpp-akma/v1/retrieve"
REGISTER = "/naanf-akma/v1/register-anchorkey"


class Clock:
    """A settable wall clock, starting at the real time."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def new_a_kid() -> str:
    return format_a_kid("0012", os.urandom(32), "001", "01")


def basic(client_id: str = CLIENT_ID, secret: str = CLIENT_SECRET) -> dict[str, str]:
    encoded = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


@dataclass
class Core:
    """A running UDM, AAnF and NEF, with an h2c client to the NEF and one to the AAnF."""

    nef: httpx.AsyncClient
    aanf: httpx.AsyncClient
    nef_uri: str

    async def register_ue(self, supi: str = SUPI) -> tuple[str, bytes]:
        """Register an AKMA context for `supi` at the AAnF, as the AUSF does; return A-KID and K_AKMA."""
        a_kid, k_akma = new_a_kid(), os.urandom(32)
        response = await self.aanf.post(REGISTER, json={"supi": supi, "aKId": a_kid, "kAkma": k_akma.hex()})
        assert response.status_code == 200, response.text
        return a_kid, k_akma

    async def token(self, scope: str | None = "3gpp-akma nnef-akma:gpsi-access") -> str:
        form = {"grant_type": "client_credentials"}
        if scope is not None:
            form["scope"] = scope
        response = await self.nef.post(TOKEN, data=form, headers=basic())
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    async def retrieve(self, a_kid: str, token: str | None, fqdn: str = AF_FQDN) -> httpx.Response:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        body = {"afId": af_id_to_wire(fqdn, UA_TLS13), "aKId": a_kid}
        return await self.nef.post(RETRIEVE, json=body, headers=headers)


def provision_subscribers(database) -> None:
    subscriber = {"k": "00" * 16, "opc": "00" * 16, "amf": "8000", "akma_allowed": True}
    provision(
        database,
        {"subscribers": [{**subscriber, "supi": SUPI, "gpsi": GPSI}, {**subscriber, "supi": SUPI_WITHOUT_GPSI}]},
    )


def nef_config(aanf_uri: str, udm_uri: str) -> NefConfig:
    return NefConfig.model_validate(
        {
            "aanf": {"uri": aanf_uri, "signing_key": AANF_KEY},
            "udm": {"uri": udm_uri},
            "oauth": {"signing_key": NEF_KEY, "token_lifetime": 600},
            "afs": [
                {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "fqdn": AF_FQDN},
                {
                    "client_id": "other-af",
                    "client_secret": "s3cret-of-the-other-af",
                    "fqdn": OTHER_FQDN,
                    "scopes": ["3gpp-akma"],
                },
            ],
        }
    )


@contextlib.asynccontextmanager
async def running_core(tmp_path, recorder):
    """Run the real UDM, AAnF (with token verification) and NEF on loopback."""
    database = tmp_path / "deployment.sqlite3"
    provision_subscribers(database)
    aanf_config = AanfConfig.model_validate(
        {"database": str(database), "oauth": {"signing_key": AANF_KEY}, "authorized_afs": [AF_FQDN, OTHER_FQDN]}
    )
    async with udm_app(UdmConfig(database=database)) as udm, aanf_app(aanf_config) as aanf:
        async with serving(udm, recorder) as udm_uri, serving(aanf, recorder) as aanf_uri:
            async with nef_app(nef_config(aanf_uri, udm_uri)) as nef, serving(nef, recorder) as nef_uri:
                async with h2c_client(nef_uri) as nef_client, h2c_client(aanf_uri) as aanf_client:
                    yield Core(nef_client, aanf_client, nef_uri)


@pytest.fixture
async def core(tmp_path, sbi_traffic):
    async with running_core(tmp_path, sbi_traffic) as running:
        # The AUSF's registrations carry no token: the AAnF checks tokens on K_AF retrieval only.
        yield running


async def test_retrieve_returns_gpsi_not_supi(core):
    a_kid, k_akma = await core.register_ue()

    response = await core.retrieve(a_kid, await core.token())

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["gpsi"] == GPSI
    assert "supi" not in body
    assert body["kaf"] == k_af(k_akma, af_id(AF_FQDN, UA_TLS13)).hex()
    assert body["expiry"].endswith("Z")


async def test_retrieve_without_token_401(core):
    a_kid, _ = await core.register_ue()

    response = await core.retrieve(a_kid, None)

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer ")


async def test_retrieve_invalid_token_401(core):
    a_kid, _ = await core.register_ue()
    token = await core.token()
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")

    response = await core.retrieve(a_kid, tampered)

    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert response.json()["cause"] == "INVALID_TOKEN"


async def test_token_wrong_secret_401(core):
    response = await core.nef.post(
        TOKEN, data={"grant_type": "client_credentials"}, headers=basic(secret="wrong-secret-wrong")
    )

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic ")
    assert CLIENT_SECRET not in response.text


async def test_token_secret_in_form_accepted(core):
    form = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}

    response = await core.nef.post(TOKEN, data=form)

    assert response.status_code == 200
    assert response.json()["token_type"] == "Bearer"
    assert response.json()["scope"] == "3gpp-akma nnef-akma:gpsi-access"


async def test_token_unknown_scope_400(core):
    form = {"grant_type": "client_credentials", "scope": "3gpp-akma naanf-akma"}

    response = await core.nef.post(TOKEN, data=form, headers=basic())

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"


async def test_token_password_grant_400(core):
    response = await core.nef.post(TOKEN, data={"grant_type": "password"}, headers=basic())

    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


async def test_retrieve_wrong_scope_403(core):
    a_kid, _ = await core.register_ue()

    response = await core.retrieve(a_kid, await core.token(scope="nnef-akma:gpsi-access"))

    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert response.json()["cause"] == "INSUFFICIENT_SCOPE"


async def test_retrieve_fqdn_other_case_403(core):
    """K_AF depends on the AF_ID octets, so only the configured spelling is accepted."""
    a_kid, _ = await core.register_ue()

    response = await core.retrieve(a_kid, await core.token(), fqdn=AF_FQDN.upper())

    assert response.status_code == 403
    assert response.json()["cause"] == "AF_ID_NOT_ALLOWED"


async def test_retrieve_fqdn_mismatch_403(core):
    a_kid, _ = await core.register_ue()

    response = await core.retrieve(a_kid, await core.token(), fqdn=OTHER_FQDN)

    assert response.status_code == 403
    assert response.json()["cause"] == "AF_ID_NOT_ALLOWED"


async def test_retrieve_ue_without_gpsi_403(core):
    a_kid, _ = await core.register_ue(SUPI_WITHOUT_GPSI)

    response = await core.retrieve(a_kid, await core.token())

    assert response.status_code == 403
    assert response.json()["cause"] == "GPSI_UNAVAILABLE"
    assert SUPI_WITHOUT_GPSI not in response.text


async def test_retrieve_without_gpsi_scope(core):
    a_kid, _ = await core.register_ue()

    response = await core.retrieve(a_kid, await core.token(scope="3gpp-akma"))

    assert response.status_code == 200
    assert "gpsi" not in response.json()
    assert "supi" not in response.json()


async def test_retrieve_unknown_a_kid_204(core):
    response = await core.retrieve(new_a_kid(), await core.token())

    assert response.status_code == 204
    assert response.content == b""


async def test_retrieve_invalid_body_400(core):
    token = await core.token()

    response = await core.nef.post(RETRIEVE, json={"afId": AF_FQDN}, headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 400
    assert response.json()["cause"] == "MANDATORY_IE_MISSING"


async def test_udm_id_translation_gpsi(tmp_path, sbi_traffic):
    database = tmp_path / "deployment.sqlite3"
    provision_subscribers(database)
    async with udm_app(UdmConfig(database=database)) as udm:
        async with serving(udm, sbi_traffic) as uri, h2c_client(uri) as client:
            found = await client.get(f"/nudm-sdm/v2/{SUPI}/id-translation-result")
            missing = await client.get(f"/nudm-sdm/v2/{SUPI_WITHOUT_GPSI}/id-translation-result")
            unknown = await client.get("/nudm-sdm/v2/imsi-001019999999999/id-translation-result")

    assert found.json() == {"supi": SUPI, "gpsi": GPSI}
    assert missing.status_code == 404
    assert missing.json()["cause"] == "GPSI_NOT_FOUND"
    assert unknown.json()["cause"] == "USER_NOT_FOUND"


def token_requests(recorder) -> int:
    return sum(1 for exchange in recorder.exchanges if exchange.path == TOKEN)


async def test_nef_client_caches_token(core, sbi_traffic):
    clock = Clock()
    client = NefClient(core.nef_uri, CLIENT_ID, CLIENT_SECRET, clock=clock)
    a_kid, _ = await core.register_ue()
    try:
        first = await client.retrieve_application_key(a_kid, AF_FQDN)
        second = await client.retrieve_application_key(a_kid, AF_FQDN)
        cached = token_requests(sbi_traffic)
        clock.now += 600
        await client.retrieve_application_key(a_kid, AF_FQDN)
    finally:
        await client.aclose()

    assert first.gpsi == GPSI
    assert first.supi is None
    assert second.ue_id == GPSI
    assert cached == 1
    assert token_requests(sbi_traffic) == 2


async def test_nef_client_wrong_secret(core):
    client = NefClient(core.nef_uri, CLIENT_ID, "not-the-secret-at-all")
    try:
        with pytest.raises(NefError, match="invalid_client") as caught:
            await client.retrieve_application_key(new_a_kid(), AF_FQDN)
    finally:
        await client.aclose()

    assert "not-the-secret-at-all" not in str(caught.value)


async def test_nef_client_unknown_a_kid_none(core):
    client = NefClient(core.nef_uri, CLIENT_ID, CLIENT_SECRET)
    try:
        entry = await client.retrieve_application_key(new_a_kid(), AF_FQDN)
    finally:
        await client.aclose()

    assert entry is None


def test_nef_config_from_yaml(tmp_path):
    path = tmp_path / "nef.yaml"
    path.write_text(
        "aanf: {uri: 'http://127.0.0.1:1'}\n"
        "udm: {uri: 'http://127.0.0.1:2'}\n"
        f"oauth: {{signing_key: {NEF_KEY}}}\n"
        f"afs: [{{client_id: a, client_secret: {CLIENT_SECRET}, fqdn: {AF_FQDN}}}]\n"
    )

    config = load_nef_config(path)

    assert config.afs[0].scopes == ["3gpp-akma", "nnef-akma:gpsi-access"]
    assert CLIENT_SECRET not in repr(config)
    assert NEF_KEY not in repr(config)


def test_nef_config_duplicate_client_rejected(tmp_path):
    path = tmp_path / "nef.yaml"
    client = f"{{client_id: a, client_secret: {CLIENT_SECRET}, fqdn: {AF_FQDN}}}"
    path.write_text(
        "aanf: {uri: 'http://127.0.0.1:1'}\n"
        "udm: {uri: 'http://127.0.0.1:2'}\n"
        f"oauth: {{signing_key: {NEF_KEY}}}\n"
        f"afs: [{client}, {client}]\n"
    )

    with pytest.raises(ConfigError, match="client_id a more than once"):
        load_nef_config(path)
