"""End to end: devices -> Gateway UE -> the real MSGin5G Server and core, each service its own process.

The Gateway UE authenticates with 5G AKA and AKMA, registers its devices
(URGENT alone, NORMAL in one BULK_REG) and relays messages both ways. A
second, ordinary UE exchanges messages and delivery reports with the devices.
"""

import asyncio
import dataclasses
import json
import signal
import sys

import pytest
import pytest_asyncio
import yaml

from gateway_fakes import device_psk
from msgin5g.cli.provision import provision
from msgin5g.crypto.milenage import opc_from_op
from msgin5g.deployment.local import DeploymentSettings, running_deployment
from msgin5g.gateway.config import gateway_config_from_mapping
from msgin5g.gateway.device import DeviceClient
from msgin5g.gateway.messaging_upstream import MessagingUpstream
from msgin5g.gateway.runner import running_gateway
from msgin5g.service.client import REGISTERED, new_http_client
from msgin5g.service.messaging_client import MessagingSession
from msgin5g.service.ue_profile import UeProfile
from msgin5g.service.usim import Usim

pytestmark = pytest.mark.asyncio(loop_scope="module")

MCC, MNC = "001", "01"
FQDN = "msgin5g.mnc001.mcc001.example.test"
# TS 35.208 test set 1: public test values only.
K = "465b5ce8b199b49faa5f0a2ee238a6bc"
OP = "cdc202d5123e20f62b6d676ac72cb318"
GATEWAY_SUPI = "imsi-001010000000101"
UE_B_SUPI = "imsi-001010000000102"
# meter-04 is configured at the gateway but not associated with it at the CM server.
ASSOCIATED_DEVICES = (1, 2, 3)
DEVICES = (1, 2, 3, 4)
WAIT_SECONDS = 10.0


def subscriber(supi: str) -> dict:
    return {
        "supi": supi, "k": K, "op": OP, "amf": "8000", "sqn": "000000000000",
        "akma_allowed": True, "routing_indicator": "0",
    }


def provisioning_document() -> dict:
    associations = [
        {"ue_service_id": "gateway-e2e", "ue_id": GATEWAY_SUPI},
        {"ue_service_id": "ue-b", "ue_id": UE_B_SUPI},
    ]
    associations += [
        {"ue_service_id": f"meter-{n:02d}", "ue_id": GATEWAY_SUPI, "relation": "gateway"}
        for n in ASSOCIATED_DEVICES
    ]
    return {"subscribers": [subscriber(GATEWAY_SUPI), subscriber(UE_B_SUPI)], "associations": associations}


def device_entry(number: int) -> dict:
    return {
        "device_id": f"dev-{number:02d}", "psk": device_psk(number).hex(),
        "application_id": "app.meter", "ue_service_id": f"meter-{number:02d}",
    }


def ue_section(deployment, supi: str, ue_service_id: str) -> dict:
    host, port = deployment.server_address
    return {
        "supi": supi, "k": K, "op": OP, "home_network": {"mcc": MCC, "mnc": MNC},
        "ue_service_id": ue_service_id, "ausf": {"uri": deployment.ausf_uri},
        "server": {"host": host, "port": port, "fqdn": FQDN},
    }


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def deployment(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("gateway-deployment")
    provision(workdir / "msgin5g.sqlite3", provisioning_document())
    async with running_deployment(workdir, DeploymentSettings(mcc=MCC, mnc=MNC, server_fqdn=FQDN)) as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gateway(deployment, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("gateway")
    document = {
        "ue": ue_section(deployment, GATEWAY_SUPI, "gateway-e2e"),
        "listener": {"transport": "dtls", "host": "127.0.0.1", "port": 0},
        "database": "gateway.sqlite3",
        "bulk_wait_ms": 300,
        "poll_interval_seconds": 0.2,
        "devices": [device_entry(n) for n in DEVICES],
    }
    config = gateway_config_from_mapping(document, workdir)
    async with running_gateway(config, MessagingUpstream(config.ue)) as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def ue_b(deployment):
    section = ue_section(deployment, UE_B_SUPI, "ue-b")
    host, port = deployment.server_address
    profile = UeProfile(
        supi=UE_B_SUPI, k=bytes.fromhex(K), opc=opc_from_op(bytes.fromhex(K), bytes.fromhex(OP)),
        mcc=MCC, mnc=MNC, routing_indicator="0", ue_service_id="ue-b",
        ausf_uri=section["ausf"]["uri"], server_host=host, server_port=port, server_fqdn=FQDN,
    )
    usim = Usim(k=profile.k, opc=profile.opc)
    async with new_http_client() as http, MessagingSession(http, profile, usim) as session:
        outcome = await session.register()
        assert outcome.outcome == REGISTERED, outcome.detail
        yield session


@dataclasses.dataclass
class Registered:
    results: dict


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def registered(gateway) -> Registered:
    clients = {n: DeviceClient("127.0.0.1", gateway.port, f"dev-{n:02d}", device_psk(n)) for n in DEVICES}
    for client in clients.values():
        await client.connect()
    try:
        urgent = clients[1].register("app.meter", urgency="URGENT")
        normal = [clients[n].register("app.meter") for n in (2, 3, 4)]
        results = await asyncio.gather(urgent, *normal)
    finally:
        for client in clients.values():
            client.close()
    return Registered(dict(zip(DEVICES, results)))


async def fetch_until(session: MessagingSession, predicate) -> list:
    """Fetch the UE's inbox until an item matches; fail after WAIT_SECONDS."""
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            items = await session.fetch()
            matching = [item for item in items if predicate(item)]
            if matching:
                await session.fetch(ack=[item.delivery_id for item in items], max_items=1)
                return matching
            await asyncio.sleep(0.1)


async def device_fetch_until(client: DeviceClient) -> list:
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            result = await client.fetch()
            if result.items:
                return result.items
            await asyncio.sleep(0.1)


async def test_gateway_upstream_registered(gateway):
    assert gateway.upstream.state.startswith("registered as gateway-e2e")


async def test_devices_registered_per_entry(registered, gateway):
    results = registered.results

    assert [results[n].accepted for n in ASSOCIATED_DEVICES] == [True, True, True]
    assert results[4].cause == "UE_SERVICE_ID_NOT_ASSOCIATED"
    assert results[4].code.class_ == 4
    assert gateway.service.batcher.bulks_sent == 1


async def test_unassociated_device_cannot_send(registered, gateway):
    async with DeviceClient("127.0.0.1", gateway.port, "dev-04", device_psk(4)) as client:
        result = await client.send("ue-b", "not allowed")

    assert result.cause == "DEVICE_NOT_REGISTERED"


async def test_device_message_reaches_ue(registered, gateway, ue_b):
    async with DeviceClient("127.0.0.1", gateway.port, "dev-01", device_psk(1)) as client:
        result = await client.send("ue-b", "21.5 C", msg_id="e2e-1", delivery_report=True)

    items = await fetch_until(ue_b, lambda item: item.message.get("msgId") == "e2e-1")

    assert result.document["status"] == "DELY_QUEUED"
    assert items[0].message["oriAddr"] == "meter-01"
    assert items[0].message["payload"] == "21.5 C"


async def test_ue_message_reaches_device_with_report(registered, gateway, ue_b):
    sent = await ue_b.send("meter-02", "set interval 60", msg_id="e2e-2", delivery_report=True)

    async with DeviceClient("127.0.0.1", gateway.port, "dev-02", device_psk(2)) as client:
        items = await device_fetch_until(client)
        await client.fetch(ack=[item["deliveryId"] for item in items])
    reports = await fetch_until(
        ue_b, lambda item: item.message["messageType"] == "IMDN" and item.message["msgId"] == "e2e-2"
    )

    assert sent.accepted, sent.detail
    assert items[0]["message"]["payload"] == "set interval 60"
    assert reports[0].message["oriAddr"] == "meter-02"
    assert reports[0].message["delivSt"] == "REPT_DELY_SUCCESS"


async def read_ready_line(process: asyncio.subprocess.Process) -> dict:
    async with asyncio.timeout(WAIT_SECONDS * 2):
        line = await process.stdout.readline()
    return json.loads(line)


async def test_gateway_run_process(deployment, tmp_path):
    document = {
        "ue": ue_section(deployment, GATEWAY_SUPI, "gateway-e2e"),
        "listener": {"transport": "dtls", "host": "127.0.0.1", "port": 0},
        "devices": [device_entry(3)],
    }
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(document))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "msgin5g", "gateway", "run", "--config", str(path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        ready = await read_ready_line(process)
        port = ready["uri"].rsplit(":", 1)[1]
        device = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "msgin5g", "device", "register", "--gateway", f"127.0.0.1:{port}",
            "--device-id", "dev-03", "--psk", device_psk(3).hex(), "--application-id", "app.meter",
            "--urgency", "URGENT", stdout=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(WAIT_SECONDS * 2):
            device_output, _ = await device.communicate()
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(WAIT_SECONDS):
            status = await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    assert ready["service"] == "gateway"
    assert ready["upstream"] == "registered as gateway-e2e over psk-tls1.3"
    assert ready["devices"] == 1
    assert device.returncode == 0
    assert device_output.decode().startswith("registered over coaps: ")
    assert status == 0
