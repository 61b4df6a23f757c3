"""The AUSF with a real UDM and AAnF, all over HTTP/2 on loopback.

The test plays the UE and the SEAF: it computes RES*, K_AUSF, K_AKMA, the
A-KID and K_AF itself from Milenage and the KDFs, and checks that the core
network functions agree with it.
"""

import logging
import socket
from contextlib import AsyncExitStack
from dataclasses import dataclass

import pytest
from openapi_validation import h2c_client, openapi_validator, sbi_traffic, serving  # noqa: F401

from msgin5g.cli.provision import provision
from msgin5g.crypto.aka import hxres_star, k_ausf, k_seaf, res_star
from msgin5g.crypto.akma import UA_TLS13, a_tid, af_id, af_id_to_wire, format_a_kid, k_af, k_akma
from msgin5g.crypto.milenage import f1, f2345
from msgin5g.nf.aanf.app import aanf_app
from msgin5g.nf.aanf.config import AanfConfig
from msgin5g.nf.ausf.app import ausf_app
from msgin5g.nf.ausf.config import AusfConfig, HomeNetwork
from msgin5g.nf.config import Peer
from msgin5g.nf.udm.app import udm_app
from msgin5g.nf.udm.config import UdmConfig
from msgin5g.nf.udm.redis_store import RedisSubscriberStore
from msgin5g.nf.udm.store import SqliteSubscriberStore
from msgin5g.store.redis import RedisConnection, StoreSelection

SUPI = "imsi-001010000000001"
SUPI_WITHOUT_AKMA = "imsi-001010000000002"
K = bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc")
OPC = bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf")
MCC, MNC = "001", "01"
SNN = "5G:mnc001.mcc001.3gppnetwork.org"
ROUTING_INDICATOR = "0012"
AF_FQDN = "msgin5g.example.org"
UE_AUTHENTICATIONS = "/nausf-auth/v1/ue-authentications"
RETRIEVE = "/naanf-akma/v1/retrieve-applicationkey"


@dataclass
class Core:
    ausf: object
    aanf: object


@dataclass
class UeKeys:
    res_star: bytes
    k_ausf: bytes

    def a_kid(self, supi: str = SUPI) -> str:
        return format_a_kid(ROUTING_INDICATOR, a_tid(self.k_ausf, supi), MCC, MNC)

    def k_akma(self, supi: str = SUPI) -> bytes:
        return k_akma(self.k_ausf, supi)


def respond_to_challenge(challenge: dict) -> UeKeys:
    """Play the USIM, the ME and the SEAF for one 5G AKA challenge."""
    rand, autn = bytes.fromhex(challenge["rand"]), bytes.fromhex(challenge["autn"])
    res, ck, ik, ak = f2345(K, OPC, rand)
    sqn = bytes(a ^ b for a, b in zip(autn[:6], ak, strict=True))
    assert f1(K, OPC, rand, sqn, autn[6:8])[0] == autn[8:], "MAC-A does not verify"

    ue_res_star = res_star(ck, ik, SNN, rand, res)
    assert hxres_star(rand, ue_res_star).hex() == challenge["hxresStar"], "HRES* differs from HXRES*"
    return UeKeys(res_star=ue_res_star, k_ausf=k_ausf(ck, ik, SNN, autn[:6]))


def provisioned_database(tmp_path):
    database = tmp_path / "deployment.sqlite3"
    credentials = {"k": K.hex(), "opc": OPC.hex(), "amf": "8000", "sqn": 0}
    provision(
        database,
        {
            "subscribers": [
                {**credentials, "supi": SUPI, "akma_allowed": True, "routing_indicator": ROUTING_INDICATOR},
                {**credentials, "supi": SUPI_WITHOUT_AKMA, "akma_allowed": False},
            ]
        },
    )
    return database


def closed_port_uri() -> str:
    """An http:// URI on loopback where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def copy_subscribers_to_redis(database, store: StoreSelection) -> None:
    """Provision the Redis store with the subscribers of the SQLite file."""
    source = await SqliteSubscriberStore.open(database)
    target = RedisSubscriberStore(await RedisConnection.open(store))
    try:
        for supi in (SUPI, SUPI_WITHOUT_AKMA):
            await target.upsert(await source.find(supi))
    finally:
        await source.close()
        await target.close()


async def start_core(
    resources: AsyncExitStack, tmp_path, recorder, store: StoreSelection = StoreSelection(), **ausf_options
) -> Core:
    """Start UDM, AAnF and AUSF in this process, wired by their real URIs, on the `store` backend."""
    database = provisioned_database(tmp_path)
    if store.uses_redis:
        await copy_subscribers_to_redis(database, store)
    udm = await resources.enter_async_context(udm_app(UdmConfig(database=database, store=store)))
    udm_uri = await resources.enter_async_context(serving(udm, recorder))
    aanf = await resources.enter_async_context(aanf_app(AanfConfig(database=database, store=store)))
    aanf_uri = await resources.enter_async_context(serving(aanf, recorder))

    options = {"udm": Peer(uri=udm_uri), "aanf": Peer(uri=aanf_uri), **ausf_options}
    config = AusfConfig(database=database, store=store, home_network=HomeNetwork(mcc=MCC, mnc=MNC), **options)
    ausf = await resources.enter_async_context(ausf_app(config))
    ausf_uri = await resources.enter_async_context(serving(ausf, recorder))

    return Core(
        ausf=await resources.enter_async_context(h2c_client(ausf_uri)),
        aanf=await resources.enter_async_context(h2c_client(aanf_uri)),
    )


@pytest.fixture
async def core(tmp_path, sbi_traffic):
    async with AsyncExitStack() as resources:
        yield await start_core(resources, tmp_path, sbi_traffic)


@pytest.fixture
async def core_on_each_backend(tmp_path, sbi_traffic, store_selection):
    """UDM, AAnF and AUSF on each store backend: SQLite, single Redis and Redis Cluster."""
    async with AsyncExitStack() as resources:
        yield await start_core(resources, tmp_path, sbi_traffic, store_selection)


async def start_authentication(ausf, supi: str = SUPI, **extra) -> tuple[str, dict]:
    response = await ausf.post(UE_AUTHENTICATIONS, json={"supiOrSuci": supi, "servingNetworkName": SNN, **extra})
    assert response.status_code == 201, response.text
    body = response.json()
    return body["_links"]["5g-aka"]["href"], body["5gAuthData"]


async def authenticate(ausf, supi: str = SUPI) -> tuple[UeKeys, dict]:
    confirmation_uri, challenge = await start_authentication(ausf, supi)
    ue = respond_to_challenge(challenge)
    response = await ausf.put(confirmation_uri, json={"resStar": ue.res_star.hex()})
    assert response.status_code == 200, response.text
    return ue, response.json()


async def retrieve_k_af(aanf, a_kid: str):
    return await aanf.post(RETRIEVE, json={"afId": af_id_to_wire(AF_FQDN, UA_TLS13), "aKId": a_kid})


async def test_5g_aka_then_aanf_k_af_matches_ue(core_on_each_backend):
    core = core_on_each_backend
    ue, result = await authenticate(core.ausf)

    assert result["authResult"] == "AUTHENTICATION_SUCCESS"
    assert result["supi"] == SUPI
    assert result["kseaf"] == k_seaf(ue.k_ausf, SNN).hex()

    response = await retrieve_k_af(core.aanf, ue.a_kid())
    assert response.status_code == 200
    assert response.json()["kaf"] == k_af(ue.k_akma(), af_id(AF_FQDN, UA_TLS13)).hex()
    assert response.json()["supi"] == SUPI


async def test_created_context_shape(core):
    response = await core.ausf.post(UE_AUTHENTICATIONS, json={"supiOrSuci": SUPI, "servingNetworkName": SNN})

    body = response.json()
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/3gppHal+json"
    assert body["authType"] == "5G_AKA"
    assert set(body["5gAuthData"]) == {"rand", "autn", "hxresStar"}
    href = body["_links"]["5g-aka"]["href"]
    assert href == response.headers["location"] + "/5g-aka-confirmation"
    assert href.startswith(str(core.ausf.base_url).rstrip("/") + UE_AUTHENTICATIONS + "/")


async def test_second_authentication_replaces_a_kid(core_on_each_backend):
    core = core_on_each_backend
    first, _ = await authenticate(core.ausf)
    second, _ = await authenticate(core.ausf)

    assert first.a_kid() != second.a_kid()
    assert (await retrieve_k_af(core.aanf, first.a_kid())).status_code == 204
    assert (await retrieve_k_af(core.aanf, second.a_kid())).status_code == 200


async def test_subscriber_without_akma_no_a_kid(core):
    ue, result = await authenticate(core.ausf, SUPI_WITHOUT_AKMA)

    assert result["authResult"] == "AUTHENTICATION_SUCCESS"
    assert (await retrieve_k_af(core.aanf, ue.a_kid(SUPI_WITHOUT_AKMA))).status_code == 204


async def test_wrong_res_star_fails(core):
    confirmation_uri, _ = await start_authentication(core.ausf)

    response = await core.ausf.put(confirmation_uri, json={"resStar": "00" * 16})
    retry = await core.ausf.put(confirmation_uri, json={"resStar": "00" * 16})

    assert response.status_code == 200
    assert response.json() == {"authResult": "AUTHENTICATION_FAILURE"}
    assert retry.status_code == 404
    assert retry.json()["cause"] == "CONTEXT_NOT_FOUND"


async def test_null_res_star_fails(core):
    confirmation_uri, _ = await start_authentication(core.ausf)

    response = await core.ausf.put(confirmation_uri, json={"resStar": None})

    assert response.json()["authResult"] == "AUTHENTICATION_FAILURE"


async def test_confirmation_is_single_use(core):
    confirmation_uri, challenge = await start_authentication(core.ausf)
    res_star_hex = respond_to_challenge(challenge).res_star.hex()

    first = await core.ausf.put(confirmation_uri, json={"resStar": res_star_hex})
    second = await core.ausf.put(confirmation_uri, json={"resStar": res_star_hex})

    assert first.json()["authResult"] == "AUTHENTICATION_SUCCESS"
    assert second.status_code == 404


async def test_expired_context_answers_404(tmp_path, sbi_traffic):
    async with AsyncExitStack() as resources:
        core = await start_core(resources, tmp_path, sbi_traffic, auth_context_lifetime=0.001)
        confirmation_uri, challenge = await start_authentication(core.ausf)

        res_star_hex = respond_to_challenge(challenge).res_star.hex()
        response = await core.ausf.put(confirmation_uri, json={"resStar": res_star_hex})

    assert response.status_code == 404
    assert response.json()["cause"] == "CONTEXT_NOT_FOUND"


async def test_delete_drops_a_pending_context(core):
    confirmation_uri, _ = await start_authentication(core.ausf)

    deleted = await core.ausf.delete(confirmation_uri)
    confirmation = await core.ausf.put(confirmation_uri, json={"resStar": "00" * 16})
    deleted_again = await core.ausf.delete(confirmation_uri)

    assert deleted.status_code == 204
    assert confirmation.status_code == 404
    assert deleted_again.status_code == 404


async def test_unknown_supi_user_not_found(core):
    body = {"supiOrSuci": "imsi-001019999999999", "servingNetworkName": SNN}
    response = await core.ausf.post(UE_AUTHENTICATIONS, json=body)

    assert response.status_code == 404
    assert response.json()["cause"] == "USER_NOT_FOUND"


async def test_suci_declined_with_501(core):
    body = {"supiOrSuci": "suci-0-001-01-0-0-0-0000000001", "servingNetworkName": SNN}

    response = await core.ausf.post(UE_AUTHENTICATIONS, json=body)

    assert response.status_code == 501
    assert response.json()["cause"] == "UNSUPPORTED_PROTECTION_SCHEME"


async def test_missing_serving_network_name(core):
    response = await core.ausf.post(UE_AUTHENTICATIONS, json={"supiOrSuci": SUPI})

    problem = response.json()
    assert response.status_code == 400
    assert problem["cause"] == "MANDATORY_IE_MISSING"
    assert problem["invalidParams"][0]["param"] == "/servingNetworkName"


async def test_malformed_res_star_is_named(core):
    confirmation_uri, _ = await start_authentication(core.ausf)

    response = await core.ausf.put(confirmation_uri, json={"resStar": "1234"})

    assert response.status_code == 400
    assert response.json()["invalidParams"][0]["param"] == "/resStar"


async def test_unreachable_udm_504(tmp_path, sbi_traffic):
    async with AsyncExitStack() as resources:
        core = await start_core(resources, tmp_path, sbi_traffic, udm=Peer(uri=closed_port_uri(), timeout=2))
        response = await core.ausf.post(UE_AUTHENTICATIONS, json={"supiOrSuci": SUPI, "servingNetworkName": SNN})

    assert response.status_code == 504
    assert response.json()["cause"] == "UPSTREAM_SERVER_ERROR"


async def test_unreachable_aanf_still_succeeds(tmp_path, sbi_traffic, caplog):
    async with AsyncExitStack() as resources:
        core = await start_core(resources, tmp_path, sbi_traffic, aanf=Peer(uri=closed_port_uri(), timeout=2))
        with caplog.at_level(logging.WARNING, logger="msgin5g.nf.ausf.processor"):
            _, result = await authenticate(core.ausf)

    assert result["authResult"] == "AUTHENTICATION_SUCCESS"
    assert "not registered at the AAnF" in caplog.text


async def test_resynchronization_through_ausf(core_on_each_backend):
    core = core_on_each_backend
    from msgin5g.crypto.milenage import f5_star

    _, challenge = await start_authentication(core.ausf)
    rand = bytes.fromhex(challenge["rand"])
    sqn_ms = (500 << 5).to_bytes(6, "big")
    concealed = bytes(a ^ b for a, b in zip(sqn_ms, f5_star(K, OPC, rand), strict=True))
    auts = concealed + f1(K, OPC, rand, sqn_ms, bytes(2))[1]

    _, resynchronized = await start_authentication(
        core.ausf, resynchronizationInfo={"rand": rand.hex(), "auts": auts.hex()}
    )

    autn = bytes.fromhex(resynchronized["autn"])
    ak = f2345(K, OPC, bytes.fromhex(resynchronized["rand"]))[3]
    sqn = int.from_bytes(bytes(a ^ b for a, b in zip(autn[:6], ak, strict=True)), "big")
    assert sqn == 501 << 5


async def test_logs_hold_no_keys(core, caplog):
    caplog.set_level(logging.DEBUG, logger="msgin5g")

    ue, result = await authenticate(core.ausf)
    key_data = (await retrieve_k_af(core.aanf, ue.a_kid())).json()

    secrets = [ue.k_ausf.hex(), ue.res_star.hex(), ue.k_akma().hex(), result["kseaf"]]
    secrets += [key_data["kaf"], K.hex(), OPC.hex()]
    for secret in secrets:
        assert secret not in caplog.text.lower()
    info_lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert not [line for line in info_lines if SUPI in line or SUPI[5:] in line]
