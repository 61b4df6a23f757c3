"""Start `msgin5g serve` processes, wait for their ready line, and stop them.

Each service binds its own port (port 0 in its configuration) and prints one
JSON line on stdout once it listens:
`{"event": "ready", "service": NAME, "uri": URI}`. Reading that line avoids
any race on picking free ports.
"""

import asyncio
import json
import logging
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

READY_TIMEOUT_SECONDS = 30.0
STOP_GRACE_SECONDS = 5.0


class ServiceStartError(RuntimeError):
    """A service exited or stayed silent before it printed its ready line."""


@dataclass
class ServiceProcess:
    """One running `msgin5g serve` process and the URI it listens on."""

    name: str
    uri: str
    log_path: Path
    process: asyncio.subprocess.Process = field(repr=False)
    # URI per security profile, for a service with several listeners.
    uris: dict[str, str] = field(default_factory=dict)


async def start_service(
    name: str,
    config_path: Path,
    log_dir: Path,
    *,
    service: str | None = None,
    command: tuple[str, ...] | None = None,
) -> ServiceProcess:
    """Start `msgin5g serve SERVICE --config CONFIG` and wait until it is ready.

    NAME labels this instance (SERVICE defaults to it), so that two instances
    of one service can run side by side. COMMAND replaces `serve SERVICE` for a
    process with its own subcommand, such as `gateway run`. Its stderr (the
    service log) goes to LOG_DIR/NAME.log.
    """
    service = service or name
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log_file:
        process = await _spawn(command or ("serve", service), config_path, log_file)

    try:
        event = await asyncio.wait_for(_read_ready_event(service, process), READY_TIMEOUT_SECONDS)
    except (TimeoutError, ServiceStartError) as error:
        await stop_process(process)
        raise ServiceStartError(
            f"service {name} did not become ready ({error or 'timed out'}); see {log_path}"
        ) from error
    except BaseException:
        # Cancelled (Ctrl-C) while waiting: no caller has this process yet, so stop it here.
        await stop_process(process)
        raise
    return ServiceProcess(
        name=name,
        uri=str(event["uri"]),
        log_path=log_path,
        process=process,
        uris={str(key): str(value) for key, value in dict(event.get("uris") or {}).items()},
    )


async def _spawn(command: tuple[str, ...], config_path: Path, log_file) -> asyncio.subprocess.Process:
    """Start the process; if cancelled meanwhile, wait for it to exist, stop it and re-raise.

    Without this, a cancellation between fork and return would leave a
    process running that no caller can stop.
    """
    spawning = asyncio.ensure_future(asyncio.create_subprocess_exec(
        sys.executable, "-m", "msgin5g", *command, "--config", str(config_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=log_file,
        stdin=asyncio.subprocess.DEVNULL,
        env=_child_environment(),
    ))
    try:
        return await asyncio.shield(spawning)
    except asyncio.CancelledError:
        process = await spawning
        await stop_process(process)
        raise


async def _read_ready_event(name: str, process: asyncio.subprocess.Process) -> dict:
    if process.stdout is None:
        raise ServiceStartError("started without a stdout pipe")
    while True:
        line = await process.stdout.readline()
        if not line:
            raise ServiceStartError(f"exited with status {await process.wait()}")

        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") == "ready" and event.get("service") == name:
            return event


async def stop_process(process: asyncio.subprocess.Process) -> None:
    """Send SIGTERM, then SIGKILL if the process is still running after the grace period."""
    if process.returncode is not None:
        return
    try:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), STOP_GRACE_SECONDS)
    except ProcessLookupError:
        return
    except TimeoutError:
        logger.warning("process %d ignored SIGTERM; killing it", process.pid)
        process.kill()
        await process.wait()


def _child_environment() -> dict[str, str]:
    """Return the current environment, with this package importable even when not installed."""
    environment = dict(os.environ)
    source_dir = str(Path(__file__).resolve().parents[2])
    existing = environment.get("PYTHONPATH")
    environment["PYTHONPATH"] = source_dir if not existing else f"{source_dir}{os.pathsep}{existing}"
    return environment
