"""`msgin5g device ...` and `msgin5g gateway run` as processes, against a gateway on loopback.

The device commands talk to a gateway that runs in the test's event loop with
the recording fake upstream; the subject is the command line.
"""

import asyncio
import json
import signal
import socket
import sys

import pytest
import yaml

from gateway_fakes import FakeUpstream, device_psk, gateway_config, gateway_document
from msgin5g.cli.main import main as cli_main
from msgin5g.gateway.runner import running_gateway
from msgin5g.gateway.upstream import InboxItem

PROCESS_TIMEOUT = 30.0


async def msgin5g(*arguments: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "msgin5g", *arguments,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(PROCESS_TIMEOUT):
            stdout, stderr = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return process.returncode, stdout.decode(), stderr.decode()


def device_options(gateway, number: int, *, psk: bytes | None = None) -> list[str]:
    return [
        "--gateway", f"127.0.0.1:{gateway.port}", "--device-id", f"dev-{number:02d}",
        "--psk", (psk or device_psk(number)).hex(),
    ]


@pytest.fixture
async def gateway(tmp_path):
    upstream = FakeUpstream(rejected={"meter-03"})
    config = gateway_config(tmp_path, bulk_wait_ms=50, poll_interval_seconds=30)
    async with running_gateway(config, upstream) as running:
        yield running, upstream


async def test_device_register_outcome_line(gateway):
    running, upstream = gateway

    status, stdout, stderr = await msgin5g(
        "device", "register", *device_options(running, 1), "--application-id", "app.meter.01", "--urgency", "URGENT"
    )

    assert status == 0, stderr
    assert stdout.startswith("registered over coaps: ")
    assert upstream.calls_of("register") == ["meter-01"]


async def test_device_register_json(gateway):
    running, _ = gateway

    status, stdout, stderr = await msgin5g(
        "device", "register", *device_options(running, 3), "--application-id", "app.meter.03", "--json"
    )

    document = json.loads(stdout)
    assert status == 1, stderr
    assert document["outcome"] == "rejected"
    assert document["cause"] == "UE_SERVICE_ID_NOT_ASSOCIATED"
    assert document["code"] == "4.03 Forbidden"
    assert document["device_id"] == "dev-03"


async def test_device_mismatch_rejected(gateway):
    running, upstream = gateway

    status, stdout, _ = await msgin5g(
        "device", "register", *device_options(running, 1), "--application-id", "app.meter.02"
    )

    assert status == 1
    assert stdout.startswith("rejected (DEVICE_NOT_AUTHORIZED) over coaps: ")
    assert upstream.calls_of("register_bulk") == []


async def test_device_unknown_identity_fails(gateway):
    running, _ = gateway
    options = ["--gateway", f"127.0.0.1:{running.port}", "--device-id", "dev-42", "--psk", device_psk(1).hex()]

    status, stdout, _ = await msgin5g("device", "fetch", *options)

    assert status == 1
    assert stdout.startswith("failed (DEVICE_UNKNOWN) over coaps: ")


async def test_device_send_and_fetch(gateway):
    running, upstream = gateway
    options = device_options(running, 2)
    await msgin5g("device", "register", *options, "--application-id", "app.meter.02", "--urgency", "URGENT")
    upstream.inbox = [InboxItem("d9", "meter-02", {
        "messageType": "MSG", "oriAddr": "ue-a", "destAddr": "meter-02", "msgId": "q1",
        "payload": "ping", "delivStReqInd": True,
    })]
    await running.poller.poll_once()

    sent = await msgin5g("device", "send", *options, "--to", "ue-a", "--payload", "pong", "--msg-id", "r1")
    fetched = await msgin5g("device", "fetch", *options, "--ack-received")

    assert sent[0] == 0, sent[2]
    assert sent[1].startswith("sent (DELY_QUEUED) msgId r1 to ue-a over coaps: ")
    assert fetched[0] == 0, fetched[2]
    assert fetched[1].splitlines()[1] == "  d9 MSG from ue-a msgId q1: ping"
    assert upstream.calls_of("report")[0]["msgId"] == "q1"


async def test_device_fetch_counts_one_item(gateway):
    running, upstream = gateway
    options = device_options(running, 1)
    await msgin5g("device", "register", *options, "--application-id", "app.meter.01", "--urgency", "URGENT")
    upstream.inbox = [InboxItem("d1", "meter-01", {"messageType": "MSG", "oriAddr": "ue-a", "msgId": "q1", "payload": "hi"})]
    await running.poller.poll_once()

    status, stdout, stderr = await msgin5g("device", "fetch", *options)

    assert status == 0, stderr
    assert stdout.startswith("fetched 1 item over coaps (more: no) ")


async def test_device_offline_recipient_hint(gateway):
    running, upstream = gateway
    upstream.offline = {"ue-off"}
    options = device_options(running, 1)
    await msgin5g("device", "register", *options, "--application-id", "app.meter.01", "--urgency", "URGENT")

    status, stdout, _ = await msgin5g("device", "send", *options, "--to", "ue-off", "--payload", "hi")
    as_json = await msgin5g("device", "send", *options, "--to", "ue-off", "--payload", "hi", "--json")

    assert status == 1
    assert stdout.startswith("rejected (RECIPIENT_NOT_REGISTERED) over coaps: ")
    assert "use --store-and-forward" in stdout
    assert "use --store-and-forward" in json.loads(as_json[1])["detail"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--payload", "z" * 8193], "--payload has 8193 characters: send at most 8192"),
        (["--payload", "hi", "--msg-id", "no spaces"], "invalid --msg-id 'no spaces': use 1 to 64 characters"),
        (["--payload", "hi", "--msg-id", "m" * 65], "invalid --msg-id"),
        (["--payload", "hi", "--expiry", "5"], "--expiry applies to stored messages"),
    ],
)
def test_device_send_checks_options(capsys, arguments, message):
    # In-process: the options are rejected before any socket is opened, so no gateway is needed.
    options = ["--gateway", "127.0.0.1:9", "--device-id", "dev-01", "--psk", device_psk(1).hex()]

    status = cli_main(["device", "send", *options, "--to", "ue-a", *arguments])

    captured = capsys.readouterr()
    assert status == 2
    assert captured.out == ""
    assert message in captured.err
    assert "z" * 100 not in captured.err


async def test_device_bad_psk_is_usage_error(gateway):
    running, _ = gateway
    options = ["--gateway", f"127.0.0.1:{running.port}", "--device-id", "dev-01", "--psk", "abcd"]

    status, stdout, stderr = await msgin5g("device", "fetch", *options)

    assert status == 2
    assert stdout == ""
    assert "invalid --psk: the PSK has 2 octets" in stderr


async def test_device_plain_transport(tmp_path):
    upstream = FakeUpstream()
    config = gateway_config(tmp_path, transport="coap", bulk_wait_ms=0)
    async with running_gateway(config, upstream) as running:
        status, stdout, stderr = await msgin5g(
            "device", "register", "--gateway", f"127.0.0.1:{running.port}", "--device-id", "dev-01",
            "--plain", "--application-id", "app.meter.01",
        )

    assert status == 0, stderr
    assert stdout.startswith("registered over coap: ")


async def test_gateway_run_rejects_bad_config(tmp_path):
    document = gateway_document(tmp_path)
    document["listener"] = {"transport": "coap", "host": "0.0.0.0", "port": 0}
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(document))

    status, stdout, stderr = await msgin5g("gateway", "run", "--config", str(path))

    assert status == 2
    assert stdout == ""
    assert "only a loopback address" in stderr


async def test_gateway_run_without_upstream(tmp_path):
    with socket.socket() as probe:  # a port that nothing listens on: the AUSF is down
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    document = gateway_document(tmp_path)
    document["ue"] = {**document["ue"], "ausf": {"uri": f"http://127.0.0.1:{closed_port}"}}
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(document))

    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "msgin5g", "gateway", "run", "--config", str(path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(PROCESS_TIMEOUT):
            ready = json.loads(await process.stdout.readline())
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(PROCESS_TIMEOUT):
            status = await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    assert ready["event"] == "ready"
    assert ready["uri"].startswith("coaps://127.0.0.1:")
    assert ready["upstream"] == "unavailable (AUSF_UNREACHABLE)"
    assert status == 0
