"""`msgin5g demo` and `msgin5g ue register` as a user runs them."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from msgin5g.cli.demo import mask_supi

DEMO_TIMEOUT_SECONDS = 180
# UDM, AUSF, AAnF, NEF, CM server, the operator's and the external MSGin5G Server,
# and the Gateway UE.
SERVICE_COUNT = 8


def run_msgin5g(*arguments: str, timeout: float = 60) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "msgin5g", *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def test_demo_json_reports_every_expected_outcome():
    completed = run_msgin5g("demo", "--ues", "20", "--json", timeout=DEMO_TIMEOUT_SECONDS)
    document = json.loads(completed.stdout)
    outcomes = [ue["outcome"] for ue in document["ues"]]

    assert completed.returncode == 0, completed.stderr
    assert outcomes.count("registered") == 20
    assert outcomes.count("rejected") == 1
    assert outcomes.count("failed") == 1
    assert all(ue["outcome"] == ue["expected"] for ue in document["ues"])
    assert {ue["profile"] for ue in document["ues"]} == {"psk-tls1.3", "psk-tls1.2", "https-digest", "psk-dtls1.2"}
    assert all(ue["outcome"] == "registered" for ue in document["ues"][:20])
    assert document["totals"]["unexpected"] == 0
    assert {ue["via"] for ue in document["ues"]} == {"aanf", "nef"}
    assert all(ue["outcome"] == "registered" for ue in document["ues"] if ue["via"] == "nef")
    assert [round_["kind"] for round_ in document["lifecycle"]["rounds"]] == ["expiry", "rekey"]
    assert all(round_["outcome"] == "ok" for round_ in document["lifecycle"]["rounds"])


def test_demo_json_reports_devices_and_messages():
    completed = run_msgin5g("demo", "--ues", "2", "--json", timeout=DEMO_TIMEOUT_SECONDS)
    document = json.loads(completed.stdout)
    devices, messages = document["devices"], document["messages"]

    assert completed.returncode == 0, completed.stderr
    assert len(devices) == 11
    assert {device["gateway"] for device in devices} == {"msgin5g-gw-001"}
    assert [device["outcome"] for device in devices].count("registered") == 10
    rejected = [device for device in devices if device["outcome"] == "rejected"]
    assert [(device["device"], device["cause"]) for device in rejected] == [("device-011", "UE_SERVICE_ID_NOT_ASSOCIATED")]

    assert len(messages) == 4
    assert all(message["outcome"] == "delivered" for message in messages)
    assert all(message["delivery_report"] == "REPT_DELY_SUCCESS" for message in messages)
    stored = [message for message in messages if message["status"] == "DELY_STORED"]
    assert [message["to"] for message in stored] == ["msgin5g-ue-005"]  # the offline UE
    assert {"msgin5g-dev-001", "msgin5g-ue-002"} <= {message["to"] for message in messages}
    assert "msgin5g-dev-002" in {message["from"] for message in messages}


def test_demo_table_masks_supi():
    completed = run_msgin5g("demo", "--ues", "2", timeout=DEMO_TIMEOUT_SECONDS)

    assert completed.returncode == 0, completed.stderr
    assert "Every UE got its expected outcome" in completed.stdout
    assert "imsi-00101********01" in completed.stdout
    assert "0010100000000" not in completed.stdout


def test_demo_rejects_zero_ues():
    completed = run_msgin5g("demo", "--ues", "0")

    assert completed.returncode == 2
    assert "invalid number of UEs 0" in completed.stderr


@pytest.mark.parametrize(("signal_number", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_demo_signal_stops_every_service(tmp_path, signal_number, status):
    workdir = tmp_path / "demo"
    demo = subprocess.Popen(
        [sys.executable, "-m", "msgin5g", "demo", "--ues", "2", "--workdir", str(workdir)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        wait_for_ready_services(workdir, count=SERVICE_COUNT)
        children = service_pids(demo.pid)
        demo.send_signal(signal_number)
        output, _ = demo.communicate(timeout=30)
    finally:
        if demo.poll() is None:
            demo.kill()

    assert len(children) == SERVICE_COUNT
    assert all(not process_exists(pid) for pid in children)
    assert demo.returncode == status
    assert "Traceback" not in output


def wait_for_ready_services(workdir, count: int) -> None:
    """Wait until COUNT service logs exist and each has its first log line (bounded to 60 s)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        logs = list(workdir.glob("*.log")) if workdir.exists() else []
        if len(logs) >= count and all(log.stat().st_size > 0 for log in logs):
            return
        time.sleep(0.2)
    pytest.fail(f"the demo did not start {count} services within 60 s")


def service_pids(parent_pid: int) -> list[int]:
    output = subprocess.run(["ps", "-o", "pid=", "--ppid", str(parent_pid)], capture_output=True, text=True)
    return [int(pid) for pid in output.stdout.split()]


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited but not been reaped: it no longer runs.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_ue_register_command_rejects_short_k():
    completed = run_msgin5g("ue", "register", "--supi", "imsi-001010000000001", "--k", "00ff")

    assert completed.returncode == 2
    assert "invalid k" in completed.stderr
    assert "32 hexadecimal digits" in completed.stderr


@pytest.mark.parametrize(
    ("supi", "masked"),
    [
        ("imsi-001010000000001", "imsi-00101********01"),
        ("imsi-20893", "imsi-*****"),
        ("001010000000001", "00101********01"),
    ],
)
def test_mask_supi(supi, masked):
    assert mask_supi(supi) == masked
