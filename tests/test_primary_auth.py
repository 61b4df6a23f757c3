"""The UE side of 5G AKA (service.primary_auth) against a real UDM, AUSF and AAnF on loopback."""

from contextlib import AsyncExitStack

import pytest
from openapi_validation import h2c_client, openapi_validator, sbi_traffic, serving  # noqa: F401
from test_nf_ausf import AF_FQDN, K, OPC, ROUTING_INDICATOR, SUPI, provisioned_database

from msgin5g.crypto.akma import UA_TLS13, af_id, af_id_to_wire, k_af
from msgin5g.nf.aanf.app import aanf_app
from msgin5g.nf.aanf.config import AanfConfig
from msgin5g.nf.ausf.app import ausf_app
from msgin5g.nf.ausf.config import AusfConfig, HomeNetwork
from msgin5g.nf.config import Peer
from msgin5g.nf.udm.app import udm_app
from msgin5g.nf.udm.config import UdmConfig
from msgin5g.nf.udm.store import SqliteSubscriberStore
from msgin5g.service.primary_auth import PrimaryAuthenticationError, authenticate
from msgin5g.service.ue_profile import UeProfile
from msgin5g.service.usim import IND_BITS, Usim

RETRIEVE = "/naanf-akma/v1/retrieve-applicationkey"
# The UE has accepted SEQ 1000; the UDM's store is seeded with SQN 0.
SQN_MS_AHEAD = 1000 << IND_BITS


def profile_for(ausf_uri: str, k: bytes = K) -> UeProfile:
    return UeProfile(
        supi=SUPI,
        k=k,
        opc=OPC,
        mcc="001",
        mnc="01",
        routing_indicator=ROUTING_INDICATOR,
        ue_service_id="ue-1@msgin5g.example.org",
        ausf_uri=ausf_uri,
        server_host="127.0.0.1",
        server_port=1,
        server_fqdn="msgin5g.example.org",
    )


@pytest.fixture
async def network(tmp_path, sbi_traffic):
    """Yield (AUSF URI, database path) of a UDM, AAnF and AUSF on loopback."""
    database = provisioned_database(tmp_path)
    async with AsyncExitStack() as resources:
        udm = await resources.enter_async_context(udm_app(UdmConfig(database=database)))
        udm_uri = await resources.enter_async_context(serving(udm, sbi_traffic))
        aanf = await resources.enter_async_context(aanf_app(AanfConfig(database=database)))
        aanf_uri = await resources.enter_async_context(serving(aanf, sbi_traffic))
        config = AusfConfig(
            database=database,
            home_network=HomeNetwork(mcc="001", mnc="01"),
            udm=Peer(uri=udm_uri),
            aanf=Peer(uri=aanf_uri),
        )
        ausf = await resources.enter_async_context(ausf_app(config))
        ausf_uri = await resources.enter_async_context(serving(ausf, sbi_traffic))
        yield ausf_uri, database, aanf_uri


async def udm_sqn(database) -> int:
    store = await SqliteSubscriberStore.open(database)
    try:
        return (await store.find(SUPI)).sqn
    finally:
        await store.close()


async def test_ue_ahead_resynchronizes(network):
    ausf_uri, database, _ = network
    usim = Usim(k=K, opc=OPC, sqn_ms=SQN_MS_AHEAD)

    async with h2c_client(ausf_uri) as http:
        keys = await authenticate(http, profile_for(ausf_uri), usim)

    assert keys.supi == SUPI
    assert usim.sqn_ms == (1001 << IND_BITS)
    assert await udm_sqn(database) == (1001 << IND_BITS)


async def test_resynchronized_k_af_matches(network):
    ausf_uri, _, aanf_uri = network
    usim = Usim(k=K, opc=OPC, sqn_ms=SQN_MS_AHEAD)

    async with h2c_client(ausf_uri) as http:
        keys = await authenticate(http, profile_for(ausf_uri), usim)
    async with h2c_client(aanf_uri) as aanf:
        af = {"afId": af_id_to_wire(AF_FQDN, UA_TLS13), "aKId": keys.a_kid}
        response = await aanf.post(RETRIEVE, json=af)

    assert response.json()["kaf"] == k_af(keys.k_akma, af_id(AF_FQDN, UA_TLS13)).hex()


async def test_ue_in_step_no_resynchronization(network):
    ausf_uri, database, _ = network
    usim = Usim(k=K, opc=OPC)

    async with h2c_client(ausf_uri) as http:
        await authenticate(http, profile_for(ausf_uri), usim)

    assert await udm_sqn(database) == (1 << IND_BITS)


async def test_wrong_k_is_mac_failure(network):
    ausf_uri, _, _ = network
    wrong_k = bytes([K[0] ^ 1]) + K[1:]
    # SQN_MS far ahead: a USIM that checked SQN first would report a synch failure.
    usim = Usim(k=wrong_k, opc=OPC, sqn_ms=SQN_MS_AHEAD)

    async with h2c_client(ausf_uri) as http:
        with pytest.raises(PrimaryAuthenticationError) as raised:
            await authenticate(http, profile_for(ausf_uri, k=wrong_k), usim)

    assert raised.value.cause == "MAC_FAILURE"
