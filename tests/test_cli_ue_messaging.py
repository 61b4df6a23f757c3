"""`msgin5g ue send` and `msgin5g ue listen` as processes against a whole deployment."""

import json
import subprocess
import sys

import pytest
import pytest_asyncio

from msgin5g.cli.provision import provision
from msgin5g.deployment.local import DeploymentSettings, running_deployment
from msgin5g.deployment.plan import PlannedUe, default_config_path, load_plan

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def plan():
    return load_plan(default_config_path(), 3)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def deployment(plan, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("deployment")
    provision(workdir / "msgin5g.sqlite3", plan.provisioning_document())
    settings = DeploymentSettings(mcc=plan.mcc, mnc=plan.mnc, server_fqdn=plan.server_fqdn)
    async with running_deployment(workdir, settings) as running:
        yield running


def ue_arguments(plan, deployment, ue: PlannedUe) -> list[str]:
    host, port = deployment.server_address
    return [
        "--supi", ue.supi, "--k", ue.k.hex(), "--opc", ue.opc.hex(),
        "--mcc", plan.mcc, "--mnc", plan.mnc, "--ue-service-id", ue.ue_service_id,
        "--ausf", deployment.ausf_uri, "--server", f"{host}:{port}",
        "--server-fqdn", plan.server_fqdn,
    ]


def msgin5g(*arguments: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "msgin5g", *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=90)


def start_listener(plan, deployment, ue: PlannedUe, *options: str) -> subprocess.Popen:
    """Start `ue listen` and wait until it has registered (its first stderr line)."""
    command = [sys.executable, "-m", "msgin5g", "ue", "listen", *ue_arguments(plan, deployment, ue), *options]
    listener = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # readline() blocks until the first line; pytest-timeout bounds the wait.
    line = listener.stderr.readline()
    if "listening as" not in line:
        listener.kill()
        pytest.fail(f"ue listen did not start: {line!r} {listener.stderr.read()}")
    return listener


async def test_send_with_delivery_report_to_listener(plan, deployment):
    sender, recipient = plan.ues[0], plan.ues[1]
    listener = start_listener(plan, deployment, recipient, "--count", "1")
    try:
        sent = msgin5g(
            "ue", "send", *ue_arguments(plan, deployment, sender), "--json",
            "--to", recipient.ue_service_id, "--payload", "meter reading 42", "--delivery-report",
        )
        output, errors = listener.communicate(timeout=60)
    finally:
        if listener.poll() is None:
            listener.kill()

    report = json.loads(sent.stdout)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert report["status"] == "DELY_QUEUED"
    assert report["delivery_report"] == "REPT_DELY_SUCCESS"
    assert listener.returncode == 0, errors
    assert f"from {sender.ue_service_id} to {recipient.ue_service_id}: meter reading 42" in output
    assert "stopped after --count 1 with 1 item" in errors


async def test_send_to_offline_ue_is_stored(plan, deployment):
    sent = msgin5g(
        "ue", "send", *ue_arguments(plan, deployment, plan.ues[0]),
        "--to", plan.offline_ue.ue_service_id, "--payload", "wake up", "--store-and-forward", "--expiry", "300",
    )

    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert "DELY_STORED, stored until the recipient registers" in sent.stdout


async def test_stored_message_reaches_ue_that_registers_later(plan, deployment):
    sender, offline = plan.ues[0], plan.offline_ue
    msgin5g(
        "ue", "send", *ue_arguments(plan, deployment, sender),
        "--to", offline.ue_service_id, "--payload", "stored for later", "--store-and-forward",
    )

    listened = msgin5g("ue", "listen", *ue_arguments(plan, deployment, offline), "--json", "--duration", "3")
    items = [json.loads(line) for line in listened.stdout.splitlines()]

    assert listened.returncode == 0, listened.stderr
    assert "stored for later" in [item["message"]["payload"] for item in items]


async def test_send_offline_without_store_rejected(plan, deployment):
    sent = msgin5g(
        "ue", "send", *ue_arguments(plan, deployment, plan.ues[0]), "--json",
        "--to", "msgin5g-ue-999", "--payload", "hello",
    )

    assert sent.returncode == 1
    assert json.loads(sent.stdout)["cause"] == "RECIPIENT_NOT_REGISTERED"


async def test_rejection_hint_names_cli_option(plan, deployment):
    sent = msgin5g(
        "ue", "send", *ue_arguments(plan, deployment, plan.ues[0]), "--to", "msgin5g-ue-999", "--payload", "hello",
    )

    assert sent.returncode == 1
    assert "hint: add --store-and-forward" in sent.stdout


async def test_max_payload_fits_when_escaped(plan, deployment):
    # JSON escapes each of these characters as \u0001 (6 octets): the MSG still fits.
    sent = msgin5g(
        "ue", "send", *ue_arguments(plan, deployment, plan.ues[0]), "--json",
        "--to", plan.ues[1].ue_service_id, "--payload", "\x01" * 8192,
    )

    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert json.loads(sent.stdout)["status"] == "DELY_QUEUED"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--msg-id", "bad id"], "invalid --msg-id 'bad id'"),
        (["--expiry", "60"], "add --store-and-forward"),
        (["--store-and-forward", "--expiry", "0"], "invalid --expiry 0"),
        (["--wait", "0"], "invalid --wait 0"),
    ],
)
async def test_send_rejects_bad_options(plan, deployment, options, message):
    sent = msgin5g(
        "ue", "send", *ue_arguments(plan, deployment, plan.ues[0]), "--to", "x", "--payload", "y", *options,
    )

    assert sent.returncode == 2
    assert message in sent.stderr


async def test_listen_rejects_bad_interval(plan, deployment):
    listened = msgin5g("ue", "listen", *ue_arguments(plan, deployment, plan.ues[1]), "--interval", "0")

    assert listened.returncode == 2
    assert "invalid --interval 0" in listened.stderr
