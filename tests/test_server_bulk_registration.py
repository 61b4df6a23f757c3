"""REG of constrained UEs and BULK_REG from a Gateway UE over a real CoAP-over-TLS 1.3 channel.

The associations come from the real SEAL CM server (SQLite, HTTP/2 on
loopback). Every exchange with it is checked against the TS 29.549 OpenAPI
file. The AAnF is the HTTP/2 stand-in of af_helpers.
"""

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from aiocoap import Message
from aiocoap.numbers.codes import Code
from openapi_validation import TrafficRecorder, openapi_validator, sbi_traffic  # noqa: F401
from openapi_validation import serving as serving_recorded

from af_helpers import AF_FQDN, AanfStub, RunningServer, k_af_for, running_server, serving, supi_for
from msgin5g.cli.provision import provision
from msgin5g.nf.cm.app import cm_app
from msgin5g.nf.cm.config import CmConfig
from msgin5g.sbi.server import bind_socket, socket_uri
from msgin5g.service import messages
from msgin5g.service.channel import SecureChannel
from msgin5g.service.messages import (
    BULK_REGISTRATIONS_PATH,
    BulkRegistrationEntry,
    BulkRegistrationRequest,
    Cause,
    RegistrationRequest,
    Urgency,
)

GATEWAY = 1  # test UE number of the Gateway UE
OTHER = 2
DEVICES = [f"meter-{number}" for number in range(1, 10)]
UNASSOCIATED = "meter-rogue"


def associations() -> list[dict]:
    gateway, other = supi_for(GATEWAY), supi_for(OTHER)
    entries = [{"ue_service_id": name, "ue_id": gateway, "relation": "gateway"} for name in DEVICES]
    entries += [
        {"ue_service_id": "gateway-own", "ue_id": gateway},
        {"ue_service_id": "other-own", "ue_id": other},
        {"ue_service_id": "other-meter", "ue_id": other, "relation": "gateway"},
    ]
    return entries


@dataclass
class Deployment:
    aanf: AanfStub
    running: RunningServer
    cm_traffic: TrafficRecorder

    def channel(self, number: int = GATEWAY) -> SecureChannel:
        a_kid = self.aanf.add_ue(number)
        return SecureChannel.open(
            self.running.host, self.running.port, AF_FQDN, a_kid, k_af_for(number)
        )

    def cm_requests(self) -> int:
        return len(self.cm_traffic.exchanges)


@pytest.fixture
async def deployment(tmp_path, sbi_traffic):
    cm_database = tmp_path / "cm.sqlite3"
    provision(cm_database, {"associations": associations()})
    aanf = AanfStub()
    async with cm_app(CmConfig(database=cm_database)) as app:
        async with serving_recorded(app, sbi_traffic) as cm_uri, serving(aanf.app) as aanf_uri:
            async with running_server(tmp_path / "server.sqlite3", aanf_uri, cm_uri) as running:
                yield Deployment(aanf, running, sbi_traffic)


@contextlib.asynccontextmanager
async def deployment_without_cm(tmp_path) -> AsyncIterator[Deployment]:
    """Run the server against a CM address where nothing listens."""
    sock = bind_socket("127.0.0.1", 0)
    cm_uri = socket_uri(sock)
    sock.close()
    aanf = AanfStub()
    async with serving(aanf.app) as aanf_uri:
        async with running_server(tmp_path / "server.sqlite3", aanf_uri, cm_uri) as running:
            yield Deployment(aanf, running, TrafficRecorder())


async def exchange(channel: SecureChannel, request) -> messages.Result:
    """Send any MSGin5G-1 request and parse the response against its schema."""
    response = await channel.request(messages.build_request(request))
    return messages.parse_response(request.operation, response)


def bulk(*entries: BulkRegistrationEntry) -> BulkRegistrationRequest:
    return BulkRegistrationRequest(tuple(entries))


# REG with constrainedUe


async def test_constrained_reg_with_gateway_relation(deployment):
    async with deployment.channel() as channel:
        result = await exchange(channel, RegistrationRequest("meter-1", constrained_ue=True))

    assert result.accepted
    assert result.code == Code.CREATED
    stored = await deployment.running.store.get("meter-1")
    assert stored.ue_id == supi_for(GATEWAY)


async def test_constrained_reg_of_own_id_rejected(deployment):
    async with deployment.channel() as channel:
        result = await exchange(channel, RegistrationRequest("gateway-own", constrained_ue=True))

    assert result.cause is Cause.UE_SERVICE_ID_NOT_ASSOCIATED
    assert result.code == Code.FORBIDDEN
    assert "as 'own'" in result.detail
    assert "'gateway' association" in result.detail
    assert "is missing" in result.detail
    assert await deployment.running.store.get("gateway-own") is None


async def test_constrained_reg_of_other_ue_rejected(deployment):
    async with deployment.channel() as channel:
        own_of_other = await exchange(channel, RegistrationRequest("other-own", constrained_ue=True))
        meter_of_other = await exchange(
            channel, RegistrationRequest("other-meter", constrained_ue=True)
        )

    for result in (own_of_other, meter_of_other):
        assert result.cause is Cause.UE_SERVICE_ID_NOT_ASSOCIATED
        assert "has no 'gateway' association with the UE ID of this Gateway UE" in result.detail
        assert "SEAL CM server" in result.detail


async def test_plain_reg_accepts_either_relation(deployment):
    async with deployment.channel() as channel:
        own = await exchange(channel, RegistrationRequest("gateway-own"))
        constrained = await exchange(channel, RegistrationRequest("meter-2"))
        foreign = await exchange(channel, RegistrationRequest("other-own"))

    assert own.accepted
    assert constrained.accepted
    assert foreign.cause is Cause.UE_SERVICE_ID_NOT_ASSOCIATED
    assert "not associated with the UE ID that AKMA authenticated" in foreign.detail


# BULK_REG


async def test_bulk_one_unassociated_among_ten(deployment):
    names = DEVICES[:5] + [UNASSOCIATED] + DEVICES[5:]
    request = bulk(*(BulkRegistrationEntry(name) for name in names))

    async with deployment.channel() as channel:
        result = await exchange(channel, request)

    entries = result.entries
    assert len(names) == 10
    assert result.code == Code.CHANGED
    assert result.accepted
    assert [entry.ue_service_id for entry in entries] == names
    assert [entry.accepted for entry in entries] == [name != UNASSOCIATED for name in names]
    rogue = entries[names.index(UNASSOCIATED)]
    assert rogue.cause is Cause.UE_SERVICE_ID_NOT_ASSOCIATED
    assert "'gateway' association" in rogue.detail
    assert result.detail == "9 of 10 constrained UEs registered"
    assert deployment.cm_requests() == 1
    for name in DEVICES:
        stored = await deployment.running.store.get(name)
        assert stored.ue_id == supi_for(GATEWAY)
    assert await deployment.running.store.get(UNASSOCIATED) is None


async def test_bulk_urgent_entries_stored_first(deployment):
    urgencies = [Urgency.NORMAL, Urgency.URGENT, Urgency.NORMAL, Urgency.URGENT, Urgency.NORMAL]
    names = DEVICES[: len(urgencies)]
    request = bulk(*(BulkRegistrationEntry(n, urgency=u) for n, u in zip(names, urgencies)))

    async with deployment.channel() as channel:
        result = await exchange(channel, request)

    assert [entry.ue_service_id for entry in result.entries] == names
    assert all(entry.accepted for entry in result.entries)
    stored = {name: await deployment.running.store.get(name) for name in names}
    urgent = [stored[n].registered_at for n, u in zip(names, urgencies) if u is Urgency.URGENT]
    normal = [stored[n].registered_at for n, u in zip(names, urgencies) if u is Urgency.NORMAL]
    assert max(urgent) < min(normal)
    assert stored["meter-2"].registered_at < stored["meter-4"].registered_at
    assert stored["meter-1"].registered_at < stored["meter-3"].registered_at


async def test_bulk_expired_entry_fails(deployment):
    now = datetime.now(UTC)
    request = bulk(
        BulkRegistrationEntry("meter-1", expiration_time=now + timedelta(minutes=5)),
        BulkRegistrationEntry("meter-2", expiration_time=now - timedelta(seconds=1)),
        BulkRegistrationEntry("meter-3", urgency=Urgency.URGENT),
    )

    async with deployment.channel() as channel:
        result = await exchange(channel, request)

    expired = result.entries[1]
    assert [entry.accepted for entry in result.entries] == [True, False, True]
    assert expired.cause is Cause.REQUEST_EXPIRED
    assert "expired at" in expired.detail
    assert "later expirationTime" in expired.detail
    assert await deployment.running.store.get("meter-2") is None
    assert await deployment.running.store.get("meter-1") is not None


async def test_bulk_with_client_profile_stored(deployment):
    profile = {"maxSegmentSize": 512}
    request = bulk(BulkRegistrationEntry("meter-1", client_profile=profile))

    async with deployment.channel() as channel:
        result = await exchange(channel, request)

    assert result.entries[0].accepted
    stored = await deployment.running.store.get("meter-1")
    assert stored.client_profile == profile


async def test_bulk_repeated_id_is_malformed(deployment):
    document = {"messageType": "REG", "registrations": [{"ueServiceId": "meter-1"}] * 2}
    message = Message(
        code=Code.POST,
        payload=json.dumps(document).encode(),
        uri_path=BULK_REGISTRATIONS_PATH,
        content_format=50,
    )

    async with deployment.channel() as channel:
        # Registers once, so that the recorder contains an SBI exchange to check.
        await exchange(channel, RegistrationRequest("meter-9"))
        response = await channel.request(message)

    body = json.loads(response.payload)
    assert response.code == Code.BAD_REQUEST
    assert body["cause"] == "MALFORMED_MESSAGE"
    assert "registrations" not in body
    assert await deployment.running.store.get("meter-1") is None


async def test_bulk_when_cm_unavailable(tmp_path):
    now = datetime.now(UTC)
    request = bulk(
        BulkRegistrationEntry("meter-1"),
        BulkRegistrationEntry("meter-2", urgency=Urgency.URGENT),
        BulkRegistrationEntry("meter-3", expiration_time=now - timedelta(minutes=1)),
    )

    async with deployment_without_cm(tmp_path) as down:
        async with down.channel() as channel:
            result = await exchange(channel, request)
        stored = await down.running.store.get("meter-1")

    causes = [entry.cause for entry in result.entries]
    assert result.code == Code.CHANGED
    assert causes == [
        Cause.AUTHORIZATION_UNAVAILABLE,
        Cause.AUTHORIZATION_UNAVAILABLE,
        Cause.REQUEST_EXPIRED,
    ]
    assert "retry later" in result.entries[0].detail
    assert result.detail == "0 of 3 constrained UEs registered"
    assert stored is None
