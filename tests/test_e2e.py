"""End to end: every service as its own `msgin5g serve` process on loopback.

The UE side runs in the test process through the client library, so the
tests can reach into the keys (an old A-KID, a wrong K_AF) that a real UE
would never misuse.
"""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from msgin5g.cli.provision import provision
from msgin5g.crypto.akma import UA_TLS13, af_id, format_a_kid, k_af
from msgin5g.deployment.local import DeploymentSettings, running_deployment
from msgin5g.deployment.plan import default_config_path, load_plan
from msgin5g.service.channel import ChannelError, SecureChannel
from msgin5g.service.client import FAILED, REGISTERED, REJECTED, new_http_client, register_ue
from msgin5g.service.primary_auth import authenticate
from msgin5g.service.ue_profile import UeProfile
from msgin5g.service.usim import Usim
from msgin5g.ua.alerts import AlertDescription

pytestmark = pytest.mark.asyncio(loop_scope="module")

UE_COUNT = 3


@pytest.fixture(scope="module")
def plan():
    return load_plan(default_config_path(), UE_COUNT)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def deployment(plan, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("deployment")
    provision(workdir / "msgin5g.sqlite3", plan.provisioning_document())
    settings = DeploymentSettings(mcc=plan.mcc, mnc=plan.mnc, server_fqdn=plan.server_fqdn)
    async with running_deployment(workdir, settings) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="module")
async def http():
    async with new_http_client() as client:
        yield client


def profile_of(plan, deployment, index: int) -> UeProfile:
    ue = plan.ues[index]
    host, port = deployment.server_address
    return UeProfile(
        supi=ue.supi, k=ue.k, opc=ue.opc, mcc=plan.mcc, mnc=plan.mnc,
        routing_indicator=plan.routing_indicator, ue_service_id=ue.ue_service_id,
        ausf_uri=deployment.ausf_uri, server_host=host, server_port=port,
        server_fqdn=plan.server_fqdn,
    )


def k_af_for(profile: UeProfile, k_akma: bytes) -> bytes:
    return k_af(k_akma, af_id(profile.server_fqdn, UA_TLS13))


async def test_ue_registers_and_deregisters(plan, deployment, http):
    profile = profile_of(plan, deployment, 0)
    keys = await authenticate(http, profile, Usim(k=profile.k, opc=profile.opc))
    host, port = deployment.server_address

    async with SecureChannel.open(host, port, profile.server_fqdn, keys.a_kid, k_af_for(profile, keys.k_akma)) as channel:
        registered = await channel.register(profile.ue_service_id)
        deregistered = await channel.deregister(profile.ue_service_id)

    assert registered.accepted, registered.detail
    assert deregistered.accepted, deregistered.detail


@pytest.mark.parametrize("security_profile", ["psk-tls1.3", "psk-tls1.2", "psk-dtls1.2"])
async def test_psk_profile_registers(plan, deployment, http, security_profile):
    host, port = deployment.profile_address(security_profile)
    profile = dataclasses.replace(
        profile_of(plan, deployment, 0), server_host=host, server_port=port, security_profile=security_profile
    )

    outcome = await register_ue(http, profile, Usim(k=profile.k, opc=profile.opc))

    assert outcome.outcome == REGISTERED, outcome.detail
    assert outcome.profile == security_profile


async def test_unassociated_service_id_rejected(plan, deployment, http):
    profile = dataclasses.replace(profile_of(plan, deployment, 1), ue_service_id=plan.ues[0].ue_service_id)

    outcome = await register_ue(http, profile, Usim(k=profile.k, opc=profile.opc))

    assert outcome.outcome == REJECTED
    assert outcome.cause == "UE_SERVICE_ID_NOT_ASSOCIATED"


async def test_wrong_k_fails_primary_authentication(plan, deployment, http):
    profile = profile_of(plan, deployment, 2)
    wrong_k = bytes([profile.k[0] ^ 0x80]) + profile.k[1:]

    outcome = await register_ue(http, profile, Usim(k=wrong_k, opc=profile.opc))

    assert outcome.outcome == FAILED
    assert outcome.cause == "MAC_FAILURE"


async def test_old_a_kid_rejected_after_reauthentication(plan, deployment, http):
    profile = profile_of(plan, deployment, 1)
    usim = Usim(k=profile.k, opc=profile.opc)
    old = await authenticate(http, profile, usim)
    new = await authenticate(http, profile, usim)
    host, port = deployment.server_address
    assert old.a_kid != new.a_kid

    with pytest.raises(ChannelError) as raised:
        await SecureChannel.connect(host, port, profile.server_fqdn, old.a_kid, k_af_for(profile, old.k_akma))
    async with SecureChannel.open(host, port, profile.server_fqdn, new.a_kid, k_af_for(profile, new.k_akma)) as channel:
        result = await channel.register(profile.ue_service_id)

    assert raised.value.alert is AlertDescription.unknown_psk_identity
    assert result.accepted, result.detail


async def test_unknown_a_kid_rejected(plan, deployment):
    profile = profile_of(plan, deployment, 0)
    unknown = format_a_kid("0", bytes(32), plan.mcc, plan.mnc)
    host, port = deployment.server_address

    with pytest.raises(ChannelError) as raised:
        await SecureChannel.connect(host, port, profile.server_fqdn, unknown, bytes(32))

    assert raised.value.alert is AlertDescription.unknown_psk_identity
    assert "A-KID" in raised.value.cause


async def test_wrong_k_af_rejected(plan, deployment, http):
    profile = profile_of(plan, deployment, 2)
    keys = await authenticate(http, profile, Usim(k=profile.k, opc=profile.opc))
    other_fqdn_k_af = k_af(keys.k_akma, af_id("other-af.example.test", UA_TLS13))
    host, port = deployment.server_address

    with pytest.raises(ChannelError) as raised:
        await SecureChannel.connect(host, port, profile.server_fqdn, keys.a_kid, other_fqdn_k_af)

    assert raised.value.alert is not None
    assert "K_AF" in raised.value.cause


def ue_command(plan, deployment, action: str) -> subprocess.CompletedProcess:
    ue = plan.ues[0]
    host, port = deployment.server_address
    command = [
        sys.executable, "-m", "msgin5g", "ue", action, "--json",
        "--supi", ue.supi, "--k", ue.k.hex(), "--opc", ue.opc.hex(),
        "--mcc", plan.mcc, "--mnc", plan.mnc, "--ue-service-id", ue.ue_service_id,
        "--ausf", deployment.ausf_uri, "--server", f"{host}:{port}",
        "--server-fqdn", plan.server_fqdn,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


async def test_ue_register_and_deregister_commands(plan, deployment):
    registered = ue_command(plan, deployment, "register")
    deregistered = ue_command(plan, deployment, "deregister")
    repeated = ue_command(plan, deployment, "deregister")

    assert registered.returncode == 0, registered.stderr
    assert json.loads(registered.stdout)["outcome"] == REGISTERED
    assert deregistered.returncode == 0, deregistered.stderr
    assert json.loads(deregistered.stdout)["outcome"] == "deregistered"
    assert repeated.returncode == 1
    assert json.loads(repeated.stdout)["cause"] == "NOT_REGISTERED"
