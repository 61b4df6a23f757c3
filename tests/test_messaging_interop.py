"""aiocoap's command-line client sends MSG and INBOX to the unsecured CoAP test listener."""

import json

import pytest

from af_helpers import LOOPBACK, CmStub, serving, supi_for
from msgin5g.sbi.client import SbiClient
from msgin5g.service.authorization import CmClient, RegistrationAuthorizer
from msgin5g.service.message_store import SqliteMessageStore
from msgin5g.service.messaging import MessagingService
from msgin5g.service.plain_coap import start_plain_coap_listener
from msgin5g.service.registration import RegistrationService
from msgin5g.service.router import Msgin5gRouter
from msgin5g.service.store import RegistrationStore
from test_interop_aiocoap import aiocoap_client

pytestmark = pytest.mark.interop

MSG = {
    "messageType": "MSG",
    "oriAddr": "ue-a",
    "destAddr": "ue-a2",
    "msgId": "interop-1",
    "payload": "from aiocoap-client",
}


@pytest.fixture
async def listener(tmp_path):
    """The plain listener with every route; each request comes from UE 1, which owns ue-a and ue-a2."""
    cm = CmStub()
    cm.associate(supi_for(1), "ue-a", "ue-a2")
    database = tmp_path / "deployment.sqlite"
    async with serving(cm.app) as cm_uri, SbiClient(cm_uri) as cm_sbi:
        registrations = await RegistrationStore(database).open()
        message_store = await SqliteMessageStore(database).open()
        router = Msgin5gRouter(RegistrationService(RegistrationAuthorizer(CmClient(cm_sbi)), registrations).routes())
        router.add_routes(MessagingService(registrations, message_store).routes())
        running = await start_plain_coap_listener(LOOPBACK, 0, service=router, ue_id=supi_for(1))
        try:
            for ue_service_id in ("ue-a", "ue-a2"):
                await registrations.register(ue_service_id, supi_for(1), None)
            yield running
        finally:
            await running.close()
            await message_store.close()
            await registrations.close()


async def test_aiocoap_client_sends_message_and_fetches_it(listener):
    status, stdout, stderr = await aiocoap_client(f"{listener.uri}/msgin5g/v1/messages", MSG)
    fetch_status, fetched, fetch_stderr = await aiocoap_client(
        f"{listener.uri}/msgin5g/v1/inbox", {"messageType": "INBOX", "ueServiceIds": ["ue-a2"]}
    )

    assert status == 0, stderr
    assert json.loads(stdout)["status"] == "DELY_QUEUED"
    assert json.loads(stdout)["messageType"] == "MSGRESP"
    assert fetch_status == 0, fetch_stderr
    assert [item["message"] for item in json.loads(fetched)["items"]] == [MSG]


async def test_aiocoap_client_gets_spoofing_rejected(listener):
    spoofed = {**MSG, "oriAddr": "someone-else"}

    status, stdout, stderr = await aiocoap_client(f"{listener.uri}/msgin5g/v1/messages", spoofed)

    code_line, _, body = stderr.partition("\n")
    assert status != 0
    assert stdout == ""
    assert code_line == "4.03 Forbidden"
    assert json.loads(body)["cause"] == "ORIGINATOR_NOT_REGISTERED"


async def test_aiocoap_client_gets_malformed_member(listener):
    status, _, stderr = await aiocoap_client(
        f"{listener.uri}/msgin5g/v1/messages", {key: value for key, value in MSG.items() if key != "msgId"}
    )

    code_line, _, body = stderr.partition("\n")
    assert status != 0
    assert code_line == "4.00 Bad Request"
    assert json.loads(body)["invalidParams"] == [{"param": "/msgId", "reason": "missing"}]
