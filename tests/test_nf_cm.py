"""The SEAL CM server over real HTTP/2 on loopback: ss-upr profile retrieval."""

import json
import sqlite3

import pytest
from openapi_validation import h2c_client, openapi_validator, sbi_traffic, serving  # noqa: F401

from msgin5g.cli.provision import ProvisioningError, provision
from msgin5g.nf.cm.app import cm_app
from msgin5g.nf.cm.config import CmConfig
from msgin5g.nf.cm.store import Association, SqliteAssociationStore
from msgin5g.sbi.client import SbiClient
from msgin5g.sbi.models.ss_upr import VAL_SERVICES_PATH, ProfileDoc

SUPI = "imsi-001010000000001"
GPSI = "msisdn-491700000001"


@pytest.fixture
async def cm(tmp_path, sbi_traffic):
    database = tmp_path / "deployment.sqlite3"
    provision(
        database,
        {
            "associations": [
                {"ue_service_id": "sensor-18", "ue_id": SUPI},
                {"ue_service_id": "sensor-17", "ue_id": SUPI},
                {"ue_service_id": "gateway-1", "ue_id": GPSI},
                {"ue_service_id": "meter-1", "ue_id": GPSI, "relation": "gateway"},
            ]
        },
    )
    async with cm_app(CmConfig(database=database)) as app:
        async with serving(app, sbi_traffic) as uri, h2c_client(uri) as client:
            yield client


async def get_profiles(cm, target: dict | str | None = None, **params):
    if target is not None:
        params["val-tgt-ue"] = target if isinstance(target, str) else json.dumps(target)
    return await cm.get(VAL_SERVICES_PATH, params=params)


async def test_profiles_of_ue_id(cm):
    response = await get_profiles(cm, {"valUeId": SUPI})

    assert response.status_code == 200
    profiles = response.json()
    assert [p["valTgtUe"] for p in profiles] == [{"valUserId": "sensor-17"}, {"valUserId": "sensor-18"}]
    assert json.loads(profiles[0]["profileInformation"]) == {
        "ueServiceId": "sensor-17",
        "ueId": SUPI,
        "valServiceId": "msgin5g",
        "relation": "own",
    }


async def test_gateway_relation_in_profile(cm):
    profiles = (await get_profiles(cm, {"valUeId": GPSI})).json()

    relations = {
        p["valTgtUe"]["valUserId"]: json.loads(p["profileInformation"])["relation"] for p in profiles
    }
    assert relations == {"gateway-1": "own", "meter-1": "gateway"}


async def test_profile_of_ue_service_id(cm):
    profiles = (await get_profiles(cm, {"valUserId": "gateway-1"})).json()

    assert len(profiles) == 1
    assert json.loads(profiles[0]["profileInformation"])["ueId"] == GPSI


async def test_unknown_ue_id_gets_an_empty_list(cm):
    response = await get_profiles(cm, {"valUeId": "imsi-001019999999999"})

    assert response.status_code == 200
    assert response.json() == []


async def test_val_service_id_filter(cm):
    matching = (await get_profiles(cm, {"valUeId": SUPI}, **{"val-service-id": "msgin5g"})).json()
    other = (await get_profiles(cm, {"valUeId": SUPI}, **{"val-service-id": "v2x"})).json()

    assert len(matching) == 2
    assert other == []


async def test_missing_val_tgt_ue(cm):
    response = await get_profiles(cm)

    problem = response.json()
    assert response.status_code == 400
    assert problem["cause"] == "MANDATORY_QUERY_PARAM_MISSING"
    assert problem["invalidParams"][0]["param"] == "query val-tgt-ue"


@pytest.mark.parametrize(
    "target",
    ['{"valUeId": ', '{"valUeId": "a", "valUserId": "b"}', "{}", '["valUeId"]'],
    ids=["not-json", "both", "neither", "array"],
)
async def test_invalid_val_tgt_ue(cm, target):
    response = await get_profiles(cm, target)

    problem = response.json()
    assert response.status_code == 400
    assert problem["cause"] == "MANDATORY_QUERY_PARAM_INCORRECT"
    assert problem["invalidParams"][0]["param"] == "query val-tgt-ue"


async def test_sbi_client_reads_associations(cm):
    async with SbiClient(str(cm.base_url)) as client:
        response = await client.call(
            "GET",
            VAL_SERVICES_PATH,
            params={"val-tgt-ue": json.dumps({"valUeId": SUPI})},
            response_type=list[ProfileDoc],
        )

    associations = [profile.association() for profile in response.body]
    assert [(a.ue_service_id, a.ue_id) for a in associations] == [("sensor-17", SUPI), ("sensor-18", SUPI)]
    assert [a.relation for a in associations] == ["own", "own"]


async def test_table_without_relation_migrated(tmp_path):
    database = tmp_path / "old.sqlite3"
    connection = sqlite3.connect(database)
    connection.execute(
        "CREATE TABLE cm_associations (ue_service_id TEXT PRIMARY KEY, ue_id TEXT NOT NULL)"
    )
    connection.execute("INSERT INTO cm_associations VALUES ('sensor-17', ?)", (SUPI,))
    connection.commit()
    connection.close()

    store = await SqliteAssociationStore.open(database)
    try:
        found = await store.find_by_ue_id(SUPI)
    finally:
        await store.close()

    assert found == [Association("sensor-17", SUPI, "own")]


async def test_provisioning_replaces_relation(tmp_path):
    database = tmp_path / "deployment.sqlite3"
    provision(database, {"associations": [{"ue_service_id": "meter-1", "ue_id": SUPI}]})
    provision(
        database,
        {"associations": [{"ue_service_id": "meter-1", "ue_id": SUPI, "relation": "gateway"}]},
    )

    store = await SqliteAssociationStore.open(database)
    try:
        found = await store.find_by_ue_service_id("meter-1")
    finally:
        await store.close()

    assert found == [Association("meter-1", SUPI, "gateway")]


@pytest.mark.parametrize("relation", ["gw", "Gateway", 1, None])
def test_provisioning_rejects_unknown_relation(tmp_path, relation):
    entry = {"ue_service_id": "meter-1", "ue_id": SUPI, "relation": relation}

    with pytest.raises(ProvisioningError) as raised:
        provision(tmp_path / "deployment.sqlite3", {"associations": [entry]})

    message = str(raised.value)
    assert "associations[0].relation" in message
    assert repr(relation) in message
    assert "'own'" in message
    assert "'gateway'" in message
