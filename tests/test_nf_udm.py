"""The UDM over real HTTP/2 on loopback: 5G HE AV generation, SQN handling and errors."""

import asyncio

import pytest
from openapi_validation import h2c_client, openapi_validator, sbi_traffic, serving  # noqa: F401

from msgin5g.cli.provision import provision
from msgin5g.crypto.aka import k_ausf, res_star
from msgin5g.crypto.milenage import f1, f2345, f5_star
from msgin5g.nf.udm.app import udm_app
from msgin5g.nf.udm.config import UdmConfig

SUPI = "imsi-001010000000001"
SUPI_WITHOUT_AKMA = "imsi-001010000000002"
# TS 35.208 test set 1 credentials.
K = bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc")
OPC = bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf")
SNN = "5G:mnc001.mcc001.3gppnetwork.org"
AUSF_INSTANCE_ID = "2d7a3f5e-9c41-4b8e-a6d2-0f1e3c5b7a90"
REQUEST = {"servingNetworkName": SNN, "ausfInstanceId": AUSF_INSTANCE_ID}
INITIAL_SQN = 0x20


def path(supi_or_suci: str) -> str:
    return f"/nudm-ueau/v1/{supi_or_suci}/security-information/generate-auth-data"


@pytest.fixture
def database(tmp_path):
    database_path = tmp_path / "deployment.sqlite3"
    subscriber = {"k": K.hex(), "opc": OPC.hex(), "amf": "0000", "sqn": INITIAL_SQN}
    provision(
        database_path,
        {
            "subscribers": [
                {**subscriber, "supi": SUPI, "akma_allowed": True, "routing_indicator": "0012"},
                {**subscriber, "supi": SUPI_WITHOUT_AKMA},
            ]
        },
    )
    return database_path


@pytest.fixture
async def udm(database, sbi_traffic):
    async with udm_app(UdmConfig(database=database)) as app:
        async with serving(app, sbi_traffic) as uri, h2c_client(uri) as client:
            yield client


def open_vector(av: dict) -> dict:
    """Play the USIM and the ME: recover SQN, check MAC-A, compute RES*, K_AUSF."""
    rand, autn = bytes.fromhex(av["rand"]), bytes.fromhex(av["autn"])
    res, ck, ik, ak = f2345(K, OPC, rand)
    sqn = bytes(a ^ b for a, b in zip(autn[:6], ak, strict=True))
    mac_a, _ = f1(K, OPC, rand, sqn, autn[6:8])
    return {
        "sqn": int.from_bytes(sqn, "big"),
        "amf": autn[6:8],
        "mac_a_ok": mac_a == autn[8:],
        "res_star": res_star(ck, ik, SNN, rand, res),
        "k_ausf": k_ausf(ck, ik, SNN, autn[:6]),
    }


def auts_for(rand: bytes, sqn_ms: int, k: bytes = K) -> bytes:
    """The UE's AUTS for a synchronisation failure (TS 33.102 clause 6.3.3)."""
    sqn_ms_octets = sqn_ms.to_bytes(6, "big")
    concealed = bytes(a ^ b for a, b in zip(sqn_ms_octets, f5_star(k, OPC, rand), strict=True))
    return concealed + f1(k, OPC, rand, sqn_ms_octets, bytes(2))[1]


async def test_generate_auth_data_valid_vector(udm):
    response = await udm.post(path(SUPI), json=REQUEST)

    assert response.status_code == 200
    body = response.json()
    assert body["authType"] == "5G_AKA"
    assert body["supi"] == SUPI
    av = body["authenticationVector"]
    assert av["avType"] == "5G_HE_AKA"
    ue = open_vector(av)
    assert ue["mac_a_ok"], "MAC-A in AUTN does not verify with the subscriber's K and OPc"
    assert ue["amf"][0] & 0x80, "AMF separation bit is not set"
    assert ue["res_star"].hex() == av["xresStar"]
    assert ue["k_ausf"].hex() == av["kausf"]


async def test_akma_subscriber_routing_id(udm):
    body = (await udm.post(path(SUPI), json=REQUEST)).json()

    assert body["akmaInd"] is True
    assert body["routingId"] == "0012"


async def test_subscriber_without_akma(udm):
    body = (await udm.post(path(SUPI_WITHOUT_AKMA), json=REQUEST)).json()

    assert body["akmaInd"] is False
    assert "routingId" not in body


async def test_sqn_next_seq_ind_zero(udm):
    first = open_vector((await udm.post(path(SUPI), json=REQUEST)).json()["authenticationVector"])
    second = open_vector((await udm.post(path(SUPI), json=REQUEST)).json()["authenticationVector"])

    assert first["sqn"] == INITIAL_SQN + 32
    assert second["sqn"] == first["sqn"] + 32
    assert second["sqn"] % 32 == 0


async def test_concurrent_requests_distinct_sqns(udm):
    responses = await asyncio.gather(*(udm.post(path(SUPI), json=REQUEST) for _ in range(20)))

    sqns = sorted(open_vector(r.json()["authenticationVector"])["sqn"] for r in responses)
    assert sqns == [INITIAL_SQN + 32 * step for step in range(1, 21)]


async def test_resynchronization_uses_ue_sqn(udm):
    rand = bytes(range(16))
    sqn_ms = 1000 * 32 + 3
    request = {**REQUEST, "resynchronizationInfo": {"rand": rand.hex(), "auts": auts_for(rand, sqn_ms).hex()}}

    response = await udm.post(path(SUPI), json=request)

    assert response.status_code == 200
    assert open_vector(response.json()["authenticationVector"])["sqn"] == 1001 * 32


async def test_resynchronization_wrong_mac_s(udm):
    rand = bytes(range(16))
    wrong_k = bytes(16)
    request = {**REQUEST, "resynchronizationInfo": {"rand": rand.hex(), "auts": auts_for(rand, 64, wrong_k).hex()}}

    response = await udm.post(path(SUPI), json=request)

    assert response.status_code == 403
    assert response.json()["cause"] == "AUTHENTICATION_REJECTED"


async def test_unknown_supi_user_not_found(udm):
    response = await udm.post(path("imsi-001019999999999"), json=REQUEST)

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["cause"] == "USER_NOT_FOUND"


async def test_suci_answers_501(udm):
    response = await udm.post(path("suci-0-001-01-0-0-0-0000000001"), json=REQUEST)

    assert response.status_code == 501
    assert response.json()["cause"] == "UNSUPPORTED_PROTECTION_SCHEME"


async def test_malformed_supi_in_path(udm):
    response = await udm.post(path("imsi-12"), json=REQUEST)

    problem = response.json()
    assert response.status_code == 400
    assert problem["cause"] == "MANDATORY_IE_INCORRECT"
    assert problem["invalidParams"][0]["param"] == "{supiOrSuci}"


async def test_malformed_serving_network_name(udm):
    response = await udm.post(path(SUPI), json={**REQUEST, "servingNetworkName": "5G:mnc01.mcc001.3gppnetwork.org"})

    problem = response.json()
    assert response.status_code == 400
    assert problem["cause"] == "MANDATORY_IE_INCORRECT"
    assert [p["param"] for p in problem["invalidParams"]] == ["/servingNetworkName"]


async def test_missing_ausf_instance_id(udm):
    response = await udm.post(path(SUPI), json={"servingNetworkName": SNN})

    problem = response.json()
    assert response.status_code == 400
    assert problem["cause"] == "MANDATORY_IE_MISSING"
    assert problem["invalidParams"] == [{"param": "/ausfInstanceId", "reason": "is mandatory but missing"}]


async def test_body_not_json(udm):
    response = await udm.post(path(SUPI), content=b"{not json", headers={"content-type": "application/json"})

    assert response.status_code == 400
    assert response.json()["cause"] == "INVALID_MSG_FORMAT"


async def test_other_media_type_415(udm):
    response = await udm.post(path(SUPI), content=b"x", headers={"content-type": "text/plain"})

    assert response.status_code == 415
    assert response.headers["content-type"] == "application/problem+json"


async def test_unknown_uri_404(udm):
    response = await udm.post("/nudm-ueau/v1/unknown", json=REQUEST)

    assert response.status_code == 404
    assert response.json()["cause"] == "RESOURCE_URI_STRUCTURE_NOT_FOUND"


async def test_wrong_method_405(udm):
    response = await udm.get(path(SUPI))

    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"


async def test_requests_use_http2(udm):
    response = await udm.post(path(SUPI), json=REQUEST)

    assert response.http_version == "HTTP/2"
