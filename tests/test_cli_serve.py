"""`msgin5g serve` as a separate process: ready line, SBI traffic, clean stop on SIGTERM."""

import asyncio
import json
import signal
import sys

import yaml
from openapi_validation import h2c_client

from msgin5g.cli.provision import provision

SUPI = "imsi-001010000000001"
READY_TIMEOUT_SECONDS = 30
EXIT_TIMEOUT_SECONDS = 15


async def start_service(service: str, config_path, *options: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "msgin5g", "serve", service, "--config", str(config_path), *options,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def stop(process: asyncio.subprocess.Process) -> tuple[int, str, str]:
    """Send SIGTERM; return the exit status, the rest of stdout and all of stderr."""
    process.send_signal(signal.SIGTERM)
    stdout, stderr = await asyncio.wait_for(process.communicate(), EXIT_TIMEOUT_SECONDS)
    return process.returncode, stdout.decode(), stderr.decode()


def write_config(tmp_path, document: dict):
    path = tmp_path / "service.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


async def test_serve_udm_ready_then_sigterm(tmp_path):
    provision(
        tmp_path / "db.sqlite3",
        {"subscribers": [{"supi": SUPI, "k": "00" * 16, "opc": "11" * 16, "akma_allowed": True}]},
    )
    config = write_config(tmp_path, {"sbi": {"host": "127.0.0.1", "port": 0}, "database": "db.sqlite3"})
    process = await start_service("udm", config)
    try:
        ready = json.loads(await asyncio.wait_for(process.stdout.readline(), READY_TIMEOUT_SECONDS))

        async with h2c_client(ready["uri"]) as client:
            response = await client.post(
                f"/nudm-ueau/v1/{SUPI}/security-information/generate-auth-data",
                json={
                    "servingNetworkName": "5G:mnc001.mcc001.3gppnetwork.org",
                    "ausfInstanceId": "2d7a3f5e-9c41-4b8e-a6d2-0f1e3c5b7a90",
                },
            )
    finally:
        status, rest_of_stdout, stderr = await stop(process)

    assert ready["event"] == "ready"
    assert ready["service"] == "udm"
    assert ready["uri"].startswith("http://127.0.0.1:")
    assert response.status_code == 200
    assert response.http_version == "HTTP/2"
    assert status == 0, stderr
    assert rest_of_stdout == ""
    assert "UDM listening on" in stderr
    assert "UDM stopped" in stderr
    assert SUPI not in stderr


async def test_serve_invalid_config_exits_2(tmp_path):
    config = write_config(tmp_path, {"sbi": {"port": 70000}, "databse": "db.sqlite3"})

    process = await start_service("aanf", config)
    stdout, stderr = await asyncio.wait_for(process.communicate(), EXIT_TIMEOUT_SECONDS)

    assert process.returncode == 2
    assert stdout == b""
    message = stderr.decode()
    assert "key 'sbi.port'" in message
    assert "key 'database': is required but missing" in message
    assert "key 'databse': is not a known key" in message


async def test_serve_ausf_unquoted_mcc(tmp_path):
    config = write_config(
        tmp_path,
        {"database": "db.sqlite3", "udm": {"uri": "http://127.0.0.1:1"}, "home_network": {"mcc": 1, "mnc": "01"}},
    )

    process = await start_service("ausf", config)
    _, stderr = await asyncio.wait_for(process.communicate(), EXIT_TIMEOUT_SECONDS)

    assert process.returncode == 2
    assert "key 'home_network.mcc': must be quoted text" in stderr.decode()
