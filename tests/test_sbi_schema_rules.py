"""Schema rules of the SBI bodies, checked against the running NFs over HTTP/2 on loopback.

A receiver ignores JSON members it does not know (the extensibility rule of
TS 29.501), so every SBI model ignores extra members.
"""

import importlib
import inspect
import pkgutil
from contextlib import AsyncExitStack

import pytest
from openapi_validation import h2c_client, openapi_validator, sbi_traffic, serving  # noqa: F401
from test_nf_ausf import SNN, SUPI, UE_AUTHENTICATIONS, provisioned_database, start_core

import msgin5g.sbi.models
from msgin5g.crypto.akma import format_a_kid
from msgin5g.nf.udm.app import udm_app
from msgin5g.nf.udm.config import UdmConfig
from msgin5g.sbi.models.common import SbiModel

REGISTER = "/naanf-akma/v1/register-anchorkey"
REMOVE = "/naanf-akma/v1/remove-context"
GPSI = "msisdn-4915112345678"
A_KID = format_a_kid("0012", bytes(32), "001", "01")
K_AKMA = "11" * 32


@pytest.fixture
async def core(tmp_path, sbi_traffic):
    async with AsyncExitStack() as resources:
        yield await start_core(resources, tmp_path, sbi_traffic)


def sbi_models() -> list[type[SbiModel]]:
    found = []
    for module_info in pkgutil.iter_modules(msgin5g.sbi.models.__path__):
        module = importlib.import_module(f"msgin5g.sbi.models.{module_info.name}")
        found += [
            value
            for value in vars(module).values()
            if inspect.isclass(value) and issubclass(value, SbiModel) and value.__module__ == module.__name__
        ]
    return found


@pytest.mark.parametrize("model", sbi_models(), ids=lambda model: model.__name__)
def test_model_ignores_unknown_members(model):
    assert model.model_config.get("extra") == "ignore"


async def test_akma_key_info_supi_and_gpsi_400(core):
    body = {"supi": SUPI, "gpsi": GPSI, "aKId": A_KID, "kAkma": K_AKMA}

    response = await core.aanf.post(REGISTER, json=body)

    assert response.status_code == 400
    assert response.json()["invalidParams"][0]["param"] == "/supi"


async def test_akma_key_info_no_ue_id_400(core):
    response = await core.aanf.post(REGISTER, json={"aKId": A_KID, "kAkma": K_AKMA})

    assert response.status_code == 400
    assert response.json()["invalidParams"][0]["param"] == "/supi"


async def test_akma_key_info_gpsi_only_accepted(core):
    response = await core.aanf.post(REGISTER, json={"gpsi": GPSI, "aKId": A_KID, "kAkma": K_AKMA})

    assert response.status_code == 200


async def test_ctx_remove_without_supi_400(core):
    response = await core.aanf.post(REMOVE, json={})

    assert response.status_code == 400
    assert response.json()["cause"] == "MANDATORY_IE_MISSING"


async def test_unknown_member_ignored_by_ausf(core):
    body = {"supiOrSuci": SUPI, "servingNetworkName": SNN, "futureMember": {"x": 1}}

    response = await core.ausf.post(UE_AUTHENTICATIONS, json=body)

    assert response.status_code == 201


async def test_unknown_member_ignored_by_aanf(core):
    body = {"gpsi": GPSI, "aKId": A_KID, "kAkma": K_AKMA, "futureMember": [1, 2]}

    response = await core.aanf.post(REGISTER, json=body)

    assert response.status_code == 200


async def test_created_context_is_hal_json(core):
    response = await core.ausf.post(UE_AUTHENTICATIONS, json={"supiOrSuci": SUPI, "servingNetworkName": SNN})

    assert response.headers["content-type"] == "application/3gppHal+json"


async def test_error_is_problem_json(core):
    response = await core.ausf.post(UE_AUTHENTICATIONS, json={"supiOrSuci": "imsi", "servingNetworkName": SNN})

    assert response.headers["content-type"] == "application/problem+json"


async def test_text_body_415(core):
    response = await core.ausf.post(UE_AUTHENTICATIONS, content=b"supiOrSuci", headers={"content-type": "text/plain"})

    assert response.status_code == 415
    assert response.headers["content-type"] == "application/problem+json"


MALFORMED_UDM_PATH_VALUES = [
    "imsi", "imsi-", "imsi-12", "imsi-00101abc000001", "msisdn-001010000000001", "IMSI-001010000000001", "suci-",
]


@pytest.mark.parametrize("value", MALFORMED_UDM_PATH_VALUES)
async def test_udm_malformed_supi_or_suci_400(tmp_path, sbi_traffic, value):
    async with AsyncExitStack() as resources:
        udm = await resources.enter_async_context(udm_app(UdmConfig(database=provisioned_database(tmp_path))))
        client = await resources.enter_async_context(h2c_client(await resources.enter_async_context(serving(udm, sbi_traffic))))
        body = {"servingNetworkName": SNN, "ausfInstanceId": "9b1f0c2e-4a55-4c1b-8f7e-2d9a6f3b1c00"}
        response = await client.post(f"/nudm-ueau/v1/{value}/security-information/generate-auth-data", json=body)

    assert response.status_code == 400
    assert [item["param"] for item in response.json()["invalidParams"]] == ["{supiOrSuci}"]
