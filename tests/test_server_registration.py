"""REG and DEREG over a real CoAP-over-TLS channel to the MSGin5G Server.

The AAnF and the SEAL CM server are HTTP/2 stand-ins on loopback; the server,
the channel, TLS and SQLite are the real ones.
"""

import json
from dataclasses import dataclass

import pytest
from aiocoap import Message
from aiocoap.numbers.codes import Code
from aiocoap.optiontypes import OpaqueOption

from af_helpers import (
    AF_FQDN,
    AanfStub,
    CmStub,
    RunningServer,
    k_af_for,
    running_server,
    serving,
    supi_for,
)
from msgin5g.service.channel import SecureChannel
from msgin5g.service.messages import REGISTRATIONS_PATH, Cause, InvalidParam


@dataclass
class Deployment:
    aanf: AanfStub
    cm: CmStub
    running: RunningServer

    def channel(self, number: int) -> SecureChannel:
        """Open a channel as test UE `number` (the AAnF must know it)."""
        a_kid = self.aanf.add_ue(number)
        return SecureChannel.open(
            self.running.host, self.running.port, AF_FQDN, a_kid, k_af_for(number)
        )


@pytest.fixture
async def deployment(tmp_path):
    aanf, cm = AanfStub(), CmStub()
    async with serving(aanf.app) as aanf_uri, serving(cm.app) as cm_uri:
        async with running_server(tmp_path / "deployment.sqlite", aanf_uri, cm_uri) as running:
            yield Deployment(aanf, cm, running)


def raw_reg(payload: bytes, **options) -> Message:
    message = Message(code=Code.POST, payload=payload, uri_path=REGISTRATIONS_PATH, **options)
    return message


async def test_reg_accepted(deployment):
    deployment.cm.associate(supi_for(1), "ue-svc-1")

    async with deployment.channel(1) as channel:
        result = await channel.register("ue-svc-1")

    assert result.accepted
    assert result.code == Code.CREATED
    assert result.cause is None
    assert result.ue_service_id == "ue-svc-1"
    stored = await deployment.running.store.get("ue-svc-1")
    assert stored is not None
    assert stored.ue_id == supi_for(1)


async def test_reg_with_client_profile_stored(deployment):
    deployment.cm.associate(supi_for(1), "ue-svc-1")
    profile = {
        "triggeringInfo": {"ueIdentifier": "msisdn-491701234567", "protocol": "SMS", "ports": [5683]},
        "communicationAvailability": {"startTime": "2026-01-01T00:00:00Z", "periodicity": 3600},
        "maxSegmentSize": 1024,
    }

    async with deployment.channel(1) as channel:
        result = await channel.register("ue-svc-1", profile)

    assert result.accepted
    stored = await deployment.running.store.get("ue-svc-1")
    assert stored.client_profile == profile


async def test_repeated_reg_answers_changed(deployment):
    deployment.cm.associate(supi_for(1), "ue-svc-1")

    async with deployment.channel(1) as channel:
        first = await channel.register("ue-svc-1")
        second = await channel.register("ue-svc-1")

    assert first.code == Code.CREATED
    assert second.code == Code.CHANGED
    assert second.accepted


async def test_cm_queried_with_ue_id_from_aanf(deployment):
    deployment.cm.associate(supi_for(1), "ue-svc-1")

    async with deployment.channel(1) as channel:
        await channel.register("ue-svc-1")

    assert json.loads(deployment.cm.queries[-1]) == {"valUeId": supi_for(1)}


async def test_reg_with_gpsi_only(deployment):
    a_kid = deployment.aanf.add_ue(2, supi=None, gpsi="msisdn-491700000002")
    deployment.cm.associate("msisdn-491700000002", "ue-svc-2")

    async with SecureChannel.open(
        deployment.running.host, deployment.running.port, AF_FQDN, a_kid, k_af_for(2)
    ) as channel:
        result = await channel.register("ue-svc-2")

    assert result.accepted


async def test_reg_unassociated_rejected(deployment):
    deployment.cm.associate(supi_for(1), "ue-svc-1")
    deployment.cm.associate(supi_for(2), "ue-svc-2")

    async with deployment.channel(1) as channel:
        result = await channel.register("ue-svc-2")

    assert not result.accepted
    assert result.cause is Cause.UE_SERVICE_ID_NOT_ASSOCIATED
    assert result.code == Code.FORBIDDEN
    assert "not associated" in result.detail
    assert await deployment.running.store.get("ue-svc-2") is None


async def test_reg_when_cm_unavailable(deployment):
    deployment.cm.available = False

    async with deployment.channel(1) as channel:
        result = await channel.register("ue-svc-1")

    assert result.cause is Cause.AUTHORIZATION_UNAVAILABLE
    assert result.code == Code.SERVICE_UNAVAILABLE
    assert "retry later" in result.detail


async def test_reg_bad_json_is_malformed(deployment):
    async with deployment.channel(1) as channel:
        response = await channel.request(raw_reg(b'{"messageType": "REG",', content_format=50))

    body = json.loads(response.payload)
    assert response.code == Code.BAD_REQUEST
    assert body["cause"] == "MALFORMED_MESSAGE"
    assert "not valid JSON" in body["detail"]
    assert body["messageType"] == "REG"


@pytest.mark.parametrize(
    ("document", "param", "reason"),
    [
        ({"messageType": "REG"}, "/ueServiceId", "missing"),
        ({"ueServiceId": "ue-svc-1"}, "/messageType", "missing"),
        ({"messageType": "REG", "ueServiceId": 7}, "/ueServiceId", "7 is not of type 'string'"),
        ({"messageType": "DEREG", "ueServiceId": "ue-svc-1"}, "/messageType", "'REG' was expected"),
        ({"messageType": "REG", "ueServiceId": "ue svc"}, "/ueServiceId", "does not match"),
        ({"messageType": "REG", "ueServiceID": "x"}, "/ueServiceID", "unexpected member"),
        (
            {"messageType": "REG", "ueServiceId": "a", "clientProfile": {"maxSegmentSize": 0}},
            "/clientProfile/maxSegmentSize",
            "less than the minimum",
        ),
        (["REG"], "/", "is not of type 'object'"),
    ],
)
async def test_reg_invalid_member_named(deployment, document, param, reason):
    async with deployment.channel(1) as channel:
        response = await channel.request(raw_reg(json.dumps(document).encode(), content_format=50))

    body = json.loads(response.payload)
    reasons = {item["param"]: item["reason"] for item in body["invalidParams"]}
    assert response.code == Code.BAD_REQUEST
    assert body["cause"] == "MALFORMED_MESSAGE"
    assert param in reasons
    assert reason in reasons[param]
    assert param in body["detail"]


async def test_dereg_removes_registration(deployment):
    deployment.cm.associate(supi_for(1), "ue-svc-1")

    async with deployment.channel(1) as channel:
        await channel.register("ue-svc-1")
        result = await channel.deregister("ue-svc-1")

    assert result.accepted
    assert result.code == Code.DELETED
    assert await deployment.running.store.get("ue-svc-1") is None


async def test_dereg_unknown_registration(deployment):
    async with deployment.channel(1) as channel:
        result = await channel.deregister("ue-svc-9")

    assert not result.accepted
    assert result.cause is Cause.NOT_REGISTERED
    assert result.code == Code.NOT_FOUND
    assert "send REG first" in result.detail


async def test_dereg_by_other_ue_refused(deployment):
    deployment.cm.associate(supi_for(1), "ue-svc-1")
    async with deployment.channel(1) as channel:
        await channel.register("ue-svc-1")

    async with deployment.channel(2) as other:
        result = await other.deregister("ue-svc-1")

    assert result.cause is Cause.NOT_REGISTERED
    assert await deployment.running.store.get("ue-svc-1") is not None


async def test_dereg_missing_member(deployment):
    message = Message(
        code=Code.POST,
        payload=b'{"messageType": "DEREG"}',
        uri_path=("msgin5g", "v1", "deregistrations"),
        content_format=50,
    )
    async with deployment.channel(1) as channel:
        response = await channel.request(message)

    body = json.loads(response.payload)
    assert body["messageType"] == "DEREG"
    assert body["invalidParams"] == [{"param": "/ueServiceId", "reason": "missing"}]


@pytest.mark.parametrize(
    ("message", "code", "diagnostic"),
    [
        (Message(code=Code.POST, uri_path=("msgin5g", "v2", "x")), Code.NOT_FOUND, "no resource"),
        (
            Message(code=Code.GET, uri_path=REGISTRATIONS_PATH),
            Code.METHOD_NOT_ALLOWED,
            "use POST",
        ),
        (raw_reg(b"{}"), Code.UNSUPPORTED_CONTENT_FORMAT, "Content-Format 50"),
        (raw_reg(b"{}", content_format=0), Code.UNSUPPORTED_CONTENT_FORMAT, "Content-Format 50"),
        (raw_reg(b"{}", content_format=50, accept=0), Code.NOT_ACCEPTABLE, "application/json"),
    ],
)
async def test_coap_level_errors(deployment, message, code, diagnostic):
    async with deployment.channel(1) as channel:
        response = await channel.request(message)

    assert response.code == code
    assert diagnostic in response.payload.decode()


async def test_unknown_critical_option_gets_bad_option(deployment):
    message = raw_reg(b"{}", content_format=50)
    message.opt.add_option(OpaqueOption(2049, b"x"))

    async with deployment.channel(1) as channel:
        response = await channel.request(message)

    assert response.code == Code.BAD_OPTION
    assert b"2049" in response.payload


async def test_ping_pong(deployment):
    async with deployment.channel(1) as channel:
        await channel.ping()

        assert not channel.closed


async def test_failure_response_matches_invalid_params_type(deployment):
    async with deployment.channel(1) as channel:
        result = await channel.register("has space")

    assert result.cause is Cause.MALFORMED_MESSAGE
    assert result.invalid_params[0] == InvalidParam(
        "/ueServiceId", "'has space' does not match '^[!-~]+$'"
    )
