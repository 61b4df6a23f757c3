"""AUSF deregistration, confirmation of dead contexts and malformed SUPI/SUCI values."""

import asyncio
from contextlib import AsyncExitStack

import pytest
from openapi_validation import h2c_client, openapi_validator, sbi_traffic, serving  # noqa: F401
from test_nf_ausf import (
    SNN,
    SUPI,
    UE_AUTHENTICATIONS,
    authenticate,
    closed_port_uri,
    provisioned_database,
    respond_to_challenge,
    retrieve_k_af,
    start_authentication,
    start_core,
)

from msgin5g.nf.ausf.store import SqliteAuthContextStore
from msgin5g.nf.config import Peer

DEREGISTER = UE_AUTHENTICATIONS + "/deregister"
MALFORMED_SUPI_OR_SUCI = ["", "imsi", "imsi-", "imsi-12", "imsi-00101abc000001", "msisdn-001010000000001", "suci-", "IMSI-001010000000001"]


@pytest.fixture
async def core(tmp_path, sbi_traffic):
    async with AsyncExitStack() as resources:
        yield await start_core(resources, tmp_path, sbi_traffic)


@pytest.fixture
async def core_on_each_backend(tmp_path, sbi_traffic, store_selection):
    """UDM, AAnF and AUSF on each store backend: SQLite, single Redis and Redis Cluster."""
    async with AsyncExitStack() as resources:
        yield await start_core(resources, tmp_path, sbi_traffic, store_selection)


async def test_deregister_removes_akma_context(core_on_each_backend):
    core = core_on_each_backend
    ue, _ = await authenticate(core.ausf)

    response = await core.ausf.post(DEREGISTER, json={"supi": SUPI})

    assert response.status_code == 204
    assert (await retrieve_k_af(core.aanf, ue.a_kid())).status_code == 204


async def test_deregister_purges_pending_context(core_on_each_backend):
    core = core_on_each_backend
    confirmation_uri, challenge = await start_authentication(core.ausf)
    ue = respond_to_challenge(challenge)

    await core.ausf.post(DEREGISTER, json={"supi": SUPI})
    response = await core.ausf.put(confirmation_uri, json={"resStar": ue.res_star.hex()})

    assert response.status_code == 404
    assert response.json()["cause"] == "CONTEXT_NOT_FOUND"


async def test_deregister_purge_is_in_store(tmp_path, sbi_traffic):
    database = provisioned_database(tmp_path)
    async with AsyncExitStack() as resources:
        core = await start_core(resources, tmp_path, sbi_traffic)
        await start_authentication(core.ausf)
        await core.ausf.post(DEREGISTER, json={"supi": SUPI})

    store = await SqliteAuthContextStore.open(database)
    try:
        assert await store.purge_supi(SUPI) == 0
    finally:
        await store.close()


async def test_deregister_unknown_ue_204(core):
    response = await core.ausf.post(DEREGISTER, json={"supi": "imsi-001019999999999"})

    assert response.status_code == 204


async def test_deregister_twice_204(core):
    await authenticate(core.ausf)
    await core.ausf.post(DEREGISTER, json={"supi": SUPI})

    response = await core.ausf.post(DEREGISTER, json={"supi": SUPI})

    assert response.status_code == 204


async def test_deregister_without_supi_400(core):
    response = await core.ausf.post(DEREGISTER, json={"supportedFeatures": "0"})

    assert response.status_code == 400
    assert response.json()["invalidParams"][0]["param"] == "/supi"


async def test_deregister_aanf_down_504(tmp_path, sbi_traffic):
    async with AsyncExitStack() as resources:
        core = await start_core(resources, tmp_path, sbi_traffic, aanf=Peer(uri=closed_port_uri(), timeout=2))
        response = await core.ausf.post(DEREGISTER, json={"supi": SUPI})

    assert response.status_code == 504
    assert response.json()["cause"] == "UPSTREAM_SERVER_ERROR"


async def test_confirm_unknown_context_404(core):
    uri = f"{UE_AUTHENTICATIONS}/{'0' * 32}/5g-aka-confirmation"

    response = await core.ausf.put(uri, json={"resStar": "00" * 16})

    assert response.status_code == 404
    assert response.json()["cause"] == "CONTEXT_NOT_FOUND"


async def test_confirm_expired_context_404(tmp_path, sbi_traffic):
    async with AsyncExitStack() as resources:
        core = await start_core(resources, tmp_path, sbi_traffic, auth_context_lifetime=0.05)
        confirmation_uri, challenge = await start_authentication(core.ausf)
        ue = respond_to_challenge(challenge)
        await asyncio.sleep(0.1)
        response = await core.ausf.put(confirmation_uri, json={"resStar": ue.res_star.hex()})

    assert response.status_code == 404


async def test_confirm_used_context_404(core_on_each_backend):
    core = core_on_each_backend
    confirmation_uri, challenge = await start_authentication(core.ausf)
    ue = respond_to_challenge(challenge)
    await core.ausf.put(confirmation_uri, json={"resStar": ue.res_star.hex()})

    response = await core.ausf.put(confirmation_uri, json={"resStar": ue.res_star.hex()})

    assert response.status_code == 404


@pytest.mark.parametrize("value", MALFORMED_SUPI_OR_SUCI)
async def test_malformed_supi_or_suci_400(core, value):
    response = await core.ausf.post(UE_AUTHENTICATIONS, json={"supiOrSuci": value, "servingNetworkName": SNN})

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert [item["param"] for item in response.json()["invalidParams"]] == ["/supiOrSuci"]


async def test_supi_or_suci_number_400(core):
    response = await core.ausf.post(UE_AUTHENTICATIONS, json={"supiOrSuci": 1, "servingNetworkName": SNN})

    assert response.status_code == 400
    assert response.json()["invalidParams"][0]["param"] == "/supiOrSuci"
