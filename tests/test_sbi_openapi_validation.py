"""The OpenAPI check used by the SBI tests rejects what the 3GPP files reject."""

import json

import pytest
from openapi_validation import Exchange, openapi_validator  # noqa: F401
from referencing.exceptions import Unresolvable

HOST = "http://127.0.0.1:8000"
A_KID = "rid0.atid" + "A" * 43 + "@5gc.mnc001.mcc001.3gppnetwork.org"
RETRIEVE_PATH = "/naanf-akma/v1/retrieve-applicationkey"
RETRIEVE_REQUEST = {"afId": "af.example.org;ua-protocol-id=0100000007", "aKId": A_KID}


def exchange(
    path: str,
    request: dict | None,
    status: int,
    response: object,
    *,
    method: str = "POST",
    query: str = "",
    response_type: str = "application/json",
) -> Exchange:
    return Exchange(
        method=method,
        host_url=HOST,
        path=path,
        query=query,
        request_headers={"content-type": "application/json"} if request is not None else {},
        request_body=json.dumps(request).encode() if request is not None else b"",
        status=status,
        response_headers={"content-type": response_type} if response is not None else {},
        response_body=json.dumps(response).encode() if response is not None else b"",
    )


def test_valid_exchange_passes(openapi_validator):
    key_data = {"kaf": "00" * 32, "expiry": "2025-01-31T12:00:00Z"}
    valid = exchange(RETRIEVE_PATH, RETRIEVE_REQUEST, 200, key_data)

    openapi_validator.validate(valid)


def test_response_without_mandatory_member_fails(openapi_validator):
    invalid = exchange(RETRIEVE_PATH, RETRIEVE_REQUEST, 200, {"kaf": "00" * 32})

    with pytest.raises(AssertionError, match="expiry"):
        openapi_validator.validate(invalid)


def test_request_with_supi_and_gpsi_fails(openapi_validator):
    request = {"supi": "imsi-001010000000001", "gpsi": "msisdn-491700000001", "aKId": A_KID, "kAkma": "00" * 32}
    invalid = exchange("/naanf-akma/v1/register-anchorkey", request, 200, request)

    with pytest.raises(AssertionError, match="valid under each of"):
        openapi_validator.validate(invalid)


def test_malformed_serving_network_name_fails(openapi_validator):
    request = {"servingNetworkName": "4G:mnc001", "ausfInstanceId": "2d7a3f5e-9c41-4b8e-a6d2-0f1e3c5b7a90"}
    path = "/nudm-ueau/v1/imsi-001010000000001/security-information/generate-auth-data"
    problem = {"cause": "USER_NOT_FOUND"}
    invalid = exchange(path, request, 404, problem, response_type="application/problem+json")

    with pytest.raises(AssertionError, match="does not match the OpenAPI file"):
        openapi_validator.validate(invalid)


def test_val_tgt_ue_with_two_targets_fails(openapi_validator):
    query = "val-tgt-ue=" + json.dumps({"valUeId": "a", "valUserId": "b"})
    invalid = exchange("/ss-upr/v1/val-services", None, 200, [], method="GET", query=query)

    with pytest.raises(AssertionError, match="valid under each of"):
        openapi_validator.validate(invalid)


def test_undeclared_error_body_is_checked(openapi_validator):
    request = {"supiOrSuci": "imsi-001010000000001", "servingNetworkName": "5G:mnc001.mcc001.3gppnetwork.org"}
    problem = {"status": "late"}
    invalid = exchange(
        "/nausf-auth/v1/ue-authentications", request, 504, problem, response_type="application/problem+json"
    )

    with pytest.raises(AssertionError, match="is not of type 'integer'"):
        openapi_validator.validate(invalid)


def test_missing_component_schema_raises(openapi_validator):
    with pytest.raises(Unresolvable):
        openapi_validator.component_validator("TS29571_CommonData.yaml", "NoSuchSchema")
