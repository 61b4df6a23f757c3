"""The AAnF over real HTTP/2 on loopback: registration, K_AF retrieval, replacement, removal."""

import os
import time
from datetime import UTC, datetime

import pytest
from openapi_validation import h2c_client, openapi_validator, sbi_traffic, serving  # noqa: F401

from msgin5g.crypto.akma import UA_TLS13, af_id, af_id_to_wire, format_a_kid, k_af
from msgin5g.nf.aanf.app import aanf_app
from msgin5g.nf.aanf.config import AanfConfig
from msgin5g.nf.aanf.redis_store import open_context_store
from msgin5g.nf.aanf.store import AkmaContext

SUPI = "imsi-001010000000001"
AF_FQDN = "msgin5g.example.org"
AF_ID_WIRE = af_id_to_wire(AF_FQDN, UA_TLS13)
REGISTER = "/naanf-akma/v1/register-anchorkey"
RETRIEVE = "/naanf-akma/v1/retrieve-applicationkey"
REMOVE = "/naanf-akma/v1/remove-context"


def new_a_kid() -> str:
    return format_a_kid("0012", os.urandom(32), "001", "01")


def key_info(a_kid: str, k_akma: bytes, supi: str = SUPI) -> dict:
    return {"supi": supi, "aKId": a_kid, "kAkma": k_akma.hex()}


async def start_aanf(config: AanfConfig, recorder):
    """Yield an HTTP/2 client connected to a running AAnF."""
    async with aanf_app(config) as app:
        async with serving(app, recorder) as uri, h2c_client(uri) as client:
            yield client


@pytest.fixture
def config(tmp_path, store_selection) -> AanfConfig:
    """The AAnF on each store backend: SQLite, single Redis and Redis Cluster."""
    return AanfConfig(database=tmp_path / "deployment.sqlite3", store=store_selection)


@pytest.fixture
async def aanf(config, sbi_traffic):
    async for client in start_aanf(config, sbi_traffic):
        yield client


async def register(aanf, a_kid: str, k_akma: bytes, supi: str = SUPI) -> None:
    response = await aanf.post(REGISTER, json=key_info(a_kid, k_akma, supi))
    assert response.status_code == 200, response.text


async def retrieve(aanf, a_kid: str, af_id_wire: str = AF_ID_WIRE, **extra):
    return await aanf.post(RETRIEVE, json={"afId": af_id_wire, "aKId": a_kid, **extra})


async def test_register_anchorkey_echoes_the_key_info(aanf):
    a_kid, k_akma = new_a_kid(), os.urandom(32)

    response = await aanf.post(REGISTER, json=key_info(a_kid, k_akma))

    assert response.status_code == 200
    assert response.json() == key_info(a_kid, k_akma)


async def test_retrieve_applicationkey_returns_k_af(aanf):
    a_kid, k_akma = new_a_kid(), os.urandom(32)
    await register(aanf, a_kid, k_akma)
    before = time.time()

    response = await retrieve(aanf, a_kid)

    assert response.status_code == 200
    body = response.json()
    assert body["kaf"] == k_af(k_akma, af_id(AF_FQDN, UA_TLS13)).hex()
    assert body["supi"] == SUPI
    assert body["expiry"].endswith("Z")
    expiry = datetime.fromisoformat(body["expiry"]).timestamp()
    assert before + 3600 - 2 <= expiry <= time.time() + 3600


async def test_k_af_depends_on_the_ua_protocol(aanf):
    a_kid, k_akma = new_a_kid(), os.urandom(32)
    await register(aanf, a_kid, k_akma)
    digest_af_id = af_id_to_wire(AF_FQDN, bytes.fromhex("0100000002"))

    tls = (await retrieve(aanf, a_kid)).json()["kaf"]
    digest = (await retrieve(aanf, a_kid, digest_af_id)).json()["kaf"]

    assert tls != digest


async def test_unknown_a_kid_answers_204(aanf):
    response = await retrieve(aanf, new_a_kid())

    assert response.status_code == 204
    assert response.content == b""


async def test_new_registration_replaces_a_kid(aanf):
    old_a_kid, new_a_kid_value = new_a_kid(), new_a_kid()
    await register(aanf, old_a_kid, os.urandom(32))
    await register(aanf, new_a_kid_value, os.urandom(32))

    assert (await retrieve(aanf, old_a_kid)).status_code == 204
    assert (await retrieve(aanf, new_a_kid_value)).status_code == 200


async def test_registrations_of_two_ues_coexist(aanf):
    first, second = new_a_kid(), new_a_kid()
    await register(aanf, first, os.urandom(32))
    await register(aanf, second, os.urandom(32), supi="imsi-001010000000002")

    assert (await retrieve(aanf, first)).json()["supi"] == SUPI
    assert (await retrieve(aanf, second)).json()["supi"] == "imsi-001010000000002"


async def test_remove_context_deletes_context(aanf):
    a_kid = new_a_kid()
    await register(aanf, a_kid, os.urandom(32))

    response = await aanf.post(REMOVE, json={"supi": SUPI})

    assert response.status_code == 204
    assert (await retrieve(aanf, a_kid)).status_code == 204


async def test_remove_context_unknown_ue_404(aanf):
    response = await aanf.post(REMOVE, json={"supi": SUPI})

    assert response.status_code == 404
    assert response.json()["cause"] == "CONTEXT_NOT_FOUND"


async def test_remove_context_without_supi(aanf):
    response = await aanf.post(REMOVE, json={})

    problem = response.json()
    assert response.status_code == 400
    assert problem["cause"] == "MANDATORY_IE_MISSING"
    assert problem["invalidParams"][0]["param"] == "/supi"


async def test_anonymous_request_gets_no_ue_id(aanf):
    a_kid = new_a_kid()
    await register(aanf, a_kid, os.urandom(32))

    body = (await retrieve(aanf, a_kid, anonInd=True)).json()

    assert "supi" not in body
    assert "gpsi" not in body


async def test_registration_by_gpsi_returns_the_gpsi(aanf):
    a_kid = new_a_kid()
    body = {"gpsi": "msisdn-491700000001", "aKId": a_kid, "kAkma": os.urandom(32).hex()}
    assert (await aanf.post(REGISTER, json=body)).status_code == 200

    assert (await retrieve(aanf, a_kid)).json()["gpsi"] == "msisdn-491700000001"


@pytest.mark.parametrize(
    "ue_ids",
    [{}, {"supi": SUPI, "gpsi": "msisdn-491700000001"}],
    ids=["neither", "both"],
)
async def test_register_needs_one_ue_id(aanf, ue_ids):
    body = {**ue_ids, "aKId": new_a_kid(), "kAkma": os.urandom(32).hex()}

    response = await aanf.post(REGISTER, json=body)

    problem = response.json()
    assert response.status_code == 400
    assert problem["invalidParams"] == [
        {"param": "/supi", "reason": "exactly one of supi and gpsi must be present"}
    ]


async def test_malformed_k_akma_not_echoed(aanf):
    secret_like = "ab" * 31 + "zz"
    body = {"supi": SUPI, "aKId": new_a_kid(), "kAkma": secret_like}

    response = await aanf.post(REGISTER, json=body)

    assert response.status_code == 400
    assert response.json()["invalidParams"][0]["param"] == "/kAkma"
    assert secret_like not in response.text


async def test_malformed_af_id_is_named(aanf):
    response = await retrieve(aanf, new_a_kid(), af_id_wire="msgin5g.example.org")

    problem = response.json()
    assert response.status_code == 400
    assert problem["cause"] == "MANDATORY_IE_INCORRECT"
    assert [p["param"] for p in problem["invalidParams"]] == ["/afId"]


async def test_malformed_a_kid_is_named(aanf):
    response = await retrieve(aanf, "not-an-a-kid@example.org")

    assert response.status_code == 400
    assert [p["param"] for p in response.json()["invalidParams"]] == ["/aKId"]


async def test_expired_context_answers_204(aanf, config):
    a_kid, now = new_a_kid(), time.time()
    store = await open_context_store(config.store, config.database)
    try:
        context = AkmaContext(a_kid, SUPI, None, os.urandom(32), expires_at=now - 1)
        await store.register(context, now=now - 10)
    finally:
        await store.close()

    assert (await retrieve(aanf, a_kid)).status_code == 204


async def test_k_af_expiry_capped_by_context(tmp_path, sbi_traffic):
    config = AanfConfig(database=tmp_path / "db.sqlite3", k_af_lifetime=3600, context_lifetime=120)
    async for aanf in start_aanf(config, sbi_traffic):
        a_kid = new_a_kid()
        await register(aanf, a_kid, os.urandom(32))

        expiry = datetime.fromisoformat((await retrieve(aanf, a_kid)).json()["expiry"])

    assert expiry.timestamp() <= time.time() + 120


async def test_unauthorized_af_gets_403(tmp_path, sbi_traffic):
    config = AanfConfig(database=tmp_path / "db.sqlite3", authorized_afs=["other.example.org"])
    async for aanf in start_aanf(config, sbi_traffic):
        a_kid = new_a_kid()
        await register(aanf, a_kid, os.urandom(32))

        response = await retrieve(aanf, a_kid)

    assert response.status_code == 403
    assert response.json()["cause"] == "AF_NOT_AUTHORIZED"


async def test_authorized_af_matches_case_insensitively(tmp_path, sbi_traffic):
    config = AanfConfig(database=tmp_path / "db.sqlite3", authorized_afs=[AF_FQDN.upper()])
    async for aanf in start_aanf(config, sbi_traffic):
        a_kid = new_a_kid()
        await register(aanf, a_kid, os.urandom(32))

        response = await retrieve(aanf, a_kid)

    assert response.status_code == 200


def test_expiry_is_rfc3339_utc():
    from msgin5g.sbi.models.common import format_date_time

    assert format_date_time(datetime(2025, 1, 31, 12, 0, 5, 999, tzinfo=UTC)) == "2025-01-31T12:00:05Z"
