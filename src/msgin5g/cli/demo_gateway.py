"""The demo's Gateway UE round: a gateway process and its constrained devices.

The Gateway UE authenticates with AKMA like any UE and registers the devices
behind it at the MSGin5G Server (TS 33.501 Annex Y.6, TS 23.554 clause
8.2.7). Each device reaches the gateway over CoAP on DTLS 1.2 with its own
PSK, the stand-in for PC5 unicast security. One device requests
registration at once (URGENT), and the gateway bulks the others. The server
must reject the one device that has no association with the gateway.
"""

import asyncio
from typing import Any
from urllib.parse import urlsplit

import yaml

from msgin5g.deployment.local import LOOPBACK, LocalDeployment
from msgin5g.deployment.plan import REGISTERED, REJECTED, DemoPlan, PlannedDevice, PlannedGateway
from msgin5g.deployment.processes import ServiceProcess, start_service
from msgin5g.gateway.device import DeviceClient, DeviceError

GATEWAY_SERVICE = "gateway"
GATEWAY_COMMAND = ("gateway", "run")
# Short, so that the demo's NORMAL registrations travel in one BULK_REG and
# messages for devices reach the gateway's queue within a second.
BULK_WAIT_MS = 300
POLL_INTERVAL_SECONDS = 0.3


def gateway_config(plan: DemoPlan, deployment: LocalDeployment) -> dict[str, Any]:
    """Return the gateway's YAML document: its own UE profile, the listener and the devices."""
    gateway = _gateway(plan)
    host, port = deployment.profile_address("psk-tls1.3")
    ue = gateway.ue
    return {
        "ue": {
            "supi": ue.supi,
            "k": ue.k.hex(),
            "opc": ue.opc.hex(),
            "home_network": {"mcc": plan.mcc, "mnc": plan.mnc},
            "routing_indicator": plan.routing_indicator,
            "ue_service_id": ue.ue_service_id,
            "ausf": {"uri": deployment.ausf_uri},
            "server": {"host": host, "port": port, "fqdn": plan.server_fqdn, "profile": "psk-tls1.3"},
        },
        "listener": {"transport": "dtls", "host": LOOPBACK, "port": 0},
        "database": "gateway.sqlite3",
        "bulk_wait_ms": BULK_WAIT_MS,
        "poll_interval_seconds": POLL_INTERVAL_SECONDS,
        "devices": [
            {
                "device_id": device.device_id,
                "psk": device.psk.hex(),
                "application_id": device.application_id,
                "ue_service_id": device.ue_service_id,
            }
            for device in gateway.devices
        ],
    }


async def start_gateway(plan: DemoPlan, deployment: LocalDeployment) -> ServiceProcess:
    """Write gateway.yaml into the deployment's folder and start `msgin5g gateway run`."""
    path = deployment.workdir / "gateway.yaml"
    # The file contains the device PSKs and the gateway's K, so only this user may read it.
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump(gateway_config(plan, deployment), sort_keys=False), encoding="utf-8")
    service = await start_service(
        GATEWAY_SERVICE, path, deployment.workdir, service=GATEWAY_SERVICE, command=GATEWAY_COMMAND
    )
    deployment.services[GATEWAY_SERVICE] = service
    return service


def gateway_address(service: ServiceProcess) -> tuple[str, int]:
    parts = urlsplit(service.uri)
    if parts.port is None:
        raise ValueError(f"the gateway's ready line has no port in {service.uri!r}")
    return parts.hostname or LOOPBACK, parts.port


async def register_devices(plan: DemoPlan, address: tuple[str, int]) -> list[dict[str, Any]]:
    """Let every device ask the gateway for registration at the same time; return one row each."""
    gateway = _gateway(plan)
    return list(await asyncio.gather(
        *(_register_device(device, gateway, address) for device in gateway.devices)
    ))


async def _register_device(
    device: PlannedDevice, gateway: PlannedGateway, address: tuple[str, int]
) -> dict[str, Any]:
    host, port = address
    try:
        async with DeviceClient(host, port, device.device_id, device.psk) as client:
            result = await client.register(device.application_id, urgency=device.urgency)
        outcome = REGISTERED if result.accepted else REJECTED
        cause, detail = result.cause, result.detail
    except DeviceError as error:
        outcome, cause, detail = "failed", error.cause, error.detail

    as_expected = outcome == device.expected and (
        device.expected_cause is None or cause == device.expected_cause
    )
    return {
        "device": device.device_id,
        "gateway": gateway.ue.ue_service_id,
        "ue_service_id": device.ue_service_id,
        "urgency": device.urgency,
        "outcome": outcome,
        "expected": device.expected,
        "cause": cause,
        "expected_cause": device.expected_cause,
        "as_expected": as_expected,
        "detail": detail,
    }


def _gateway(plan: DemoPlan) -> PlannedGateway:
    if plan.gateway is None:
        raise ValueError("the demo plan has no gateway")
    return plan.gateway
