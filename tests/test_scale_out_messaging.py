"""Two MSGin5G Server processes share queued messages through one Redis Cluster.

One AAnF, one CM server and two MSGin5G Server processes keep all their
state (AKMA contexts, associations, registrations, queued items, delivery
records) on the test's Redis Cluster. The sender's UE talks only to server
1 and the recipient's UE only to server 2:

1. the sender registers at server 1, the recipient at server 2;
2. the sender's MSG, with a delivery report requested, goes through server 1;
3. the recipient fetches it through server 2 and reports its delivery there;
4. the sender fetches the IMDN through server 1, and the recipient's
   acknowledgement through server 2 empties its queue.
"""

import os

import httpx
import pytest

from msgin5g.crypto.akma import UA_TLS13, af_id, format_a_kid, k_af
from msgin5g.nf.cm.redis_store import RedisAssociationStore
from msgin5g.nf.cm.store import Association
from msgin5g.service.channel import SecureChannel
from msgin5g.service.messages import DeliveryReport, DeliveryStatus, InboxRequest, MessageRequest, ReportStatus
from msgin5g.store.redis import RedisConnection, StoreSelection
from test_scale_out import LOOPBACK, Forwarder, host_port, services, store_document

pytestmark = pytest.mark.parametrize("store_backend", ["redis-cluster"])

SERVER_FQDN = "msgin5g.messaging.example.test"
SENDER = ("imsi-001010000000081", "sender-81")
RECIPIENT = ("imsi-001010000000082", "recipient-82")


async def associate(selection: StoreSelection) -> None:
    store = RedisAssociationStore(await RedisConnection.open(selection))
    try:
        for supi, ue_service_id in (SENDER, RECIPIENT):
            await store.upsert(Association(ue_service_id, supi))
    finally:
        await store.close()


async def register_context(aanf_uri: str, supi: str) -> tuple[str, bytes]:
    """Register a new AKMA context for `supi` at the AAnF; return its A-KID and the UE's K_AF."""
    a_kid = format_a_kid("0", os.urandom(32), "001", "01")
    k_akma = os.urandom(32)
    async with httpx.AsyncClient(base_url=aanf_uri, http1=False, http2=True) as client:
        response = await client.post(
            "/naanf-akma/v1/register-anchorkey", json={"supi": supi, "aKId": a_kid, "kAkma": k_akma.hex()}
        )
    assert response.status_code == 200, response.text
    return a_kid, k_af(k_akma, af_id(SERVER_FQDN, UA_TLS13))


async def test_message_crosses_server_instances(store_selection, tmp_path):
    store = store_document(store_selection)
    sbi = {"host": LOOPBACK, "port": 0}
    await associate(store_selection)

    # The servers reach the AAnF and the CM through forwarders that listen
    # first, so that all four processes start at once.
    aanf, cm = await Forwarder().start(), await Forwarder().start()
    server = {
        "fqdn": SERVER_FQDN,
        "aanf": {"uri": "http://{}:{}".format(*aanf.address)},
        "cm": {"uri": "http://{}:{}".format(*cm.address)},
        "store": store,
        "listen": {"host": LOOPBACK, "port": 0},
    }
    try:
        async with services(tmp_path, {
            "aanf": ("aanf", {"sbi": sbi, "store": store}),
            "cm": ("cm", {"sbi": sbi, "store": store}),
            "server-1": ("server", server),
            "server-2": ("server", server),
        }) as started:
            aanf.backends = [host_port(started["aanf"].uri)]
            cm.backends = [host_port(started["cm"].uri)]
            sender_keys = await register_context(started["aanf"].uri, SENDER[0])
            recipient_keys = await register_context(started["aanf"].uri, RECIPIENT[0])
            await exchange(
                host_port(started["server-1"].uri), sender_keys, host_port(started["server-2"].uri), recipient_keys
            )
    finally:
        for forwarder in (aanf, cm):
            await forwarder.close()


async def exchange(server_1, sender_keys, server_2, recipient_keys) -> None:
    sender_id, recipient_id = SENDER[1], RECIPIENT[1]
    async with (
        SecureChannel.open(*server_1, SERVER_FQDN, *sender_keys) as sender,
        SecureChannel.open(*server_2, SERVER_FQDN, *recipient_keys) as recipient,
    ):
        assert (await sender.register(sender_id)).accepted
        assert (await recipient.register(recipient_id)).accepted

        sent = await sender.send(MessageRequest(sender_id, recipient_id, "m-1", "hello", deliv_st_req_ind=True))
        inbox = await recipient.send(InboxRequest())
        [item] = inbox.items
        report = await recipient.send(DeliveryReport(recipient_id, sender_id, "m-1", ReportStatus.REPT_DELY_SUCCESS))
        emptied = await recipient.send(InboxRequest(ack=(item.delivery_id,)))
        reports = await sender.send(InboxRequest())

    assert sent.status is DeliveryStatus.DELY_QUEUED, sent.detail
    assert (item.ue_service_id, item.message["payload"], item.message["oriAddr"]) == (recipient_id, "hello", sender_id)
    assert report.accepted, report.detail
    assert emptied.items == []
    assert [(entry.message["messageType"], entry.message["msgId"]) for entry in reports.items] == [("IMDN", "m-1")]
    assert reports.items[0].message["delivSt"] == "REPT_DELY_SUCCESS"
