"""`msgin5g gateway run --config gateway.yaml`: run a Gateway UE until SIGTERM or SIGINT.

Once the local listener listens, the gateway prints one line on stdout:

    {"event": "ready", "service": "gateway", "uri": "coaps://127.0.0.1:5690",
     "devices": 10, "upstream": "registered as gateway-001 over psk-tls1.3"}

`upstream` describes the MSGin5G-1 session; when it failed, the gateway runs
anyway and retries every poll interval. Logs go to stderr. SIGTERM or SIGINT
stops it cleanly (exit status 0); an invalid configuration exits with 2.
"""

import argparse
import asyncio
import json
import logging
import signal
from pathlib import Path

from msgin5g.cli.errors import UsageError
from msgin5g.cli.serve import configure_logging
from msgin5g.gateway.config import GatewayConfig, GatewayConfigError, load_gateway_config
from msgin5g.gateway.runner import running_gateway
from msgin5g.store.sqlite import StoreError

logger = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    gateway = subparsers.add_parser(
        "gateway",
        help="run a Gateway UE for constrained devices",
        description=(
            "A Gateway UE (TS 23.554 clause 8.11): it authenticates with 5G AKA and AKMA like "
            "any UE, opens its own MSGin5G-1 session, and relays the requests of the "
            "constrained devices configured in its YAML file."
        ),
    )
    commands = gateway.add_subparsers(dest="gateway_command", metavar="GATEWAY_COMMAND", required=True)
    run = commands.add_parser(
        "run",
        help="run the gateway until SIGTERM or SIGINT",
        description=(
            "Run the gateway. When its local listener listens, it prints one JSON line on "
            'stdout: {"event": "ready", "service": "gateway", "uri": ..., "upstream": ...}. '
            "Logs go to stderr. Configuration keys: ue (the keys of a UE file), listener "
            "{transport dtls|coap, host, port}, database, bulk_wait_ms, poll_interval_seconds, "
            "devices (list of {device_id, psk or psk_file, application_id, ue_service_id})."
        ),
    )
    run.add_argument("--config", type=Path, required=True, metavar="FILE", help="the gateway's YAML configuration")
    run.add_argument(
        "--log-level", choices=("debug", "info", "warning"), default="info",
        help="stderr log level (SUPIs appear only at debug; default: info)",
    )
    run.set_defaults(handler=run_gateway)


def run_gateway(args: argparse.Namespace) -> int:
    if not args.config.is_file():
        raise UsageError(f"configuration file {args.config} not found: give the path of the gateway's YAML file")
    try:
        config = load_gateway_config(args.config)
    except GatewayConfigError as error:
        raise UsageError(f"{args.config}: {error}") from None
    configure_logging(args.log_level)
    try:
        asyncio.run(_serve(config))
    except (OSError, StoreError) as error:
        logger.error("gateway stopped: %s", error)
        return 1
    logger.info("gateway exited cleanly")
    return 0


async def _serve(config: GatewayConfig) -> None:
    # Imported here: the upstream session pulls in the whole UE stack.
    from msgin5g.gateway.messaging_upstream import MessagingUpstream

    shutdown = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_number, shutdown.set)

    async with running_gateway(config, MessagingUpstream(config.ue)) as gateway:
        ready = {
            "event": "ready",
            "service": "gateway",
            "uri": gateway.uri,
            "devices": len(config.devices),
            "upstream": gateway.upstream.state,
        }
        print(json.dumps(ready), flush=True)
        await shutdown.wait()
        logger.info("stopping the gateway")
