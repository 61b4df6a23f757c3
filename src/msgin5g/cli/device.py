"""`msgin5g device register|deregister|send|fetch`: a constrained UE talks to its Gateway UE.

The device reaches the gateway's local listener over CoAP over DTLS 1.2 with
its PSK (identity = device ID), or with --plain over unsecured CoAP on
loopback. Each command prints one outcome line (or JSON with --json) and exits
with 0 when the gateway accepted the request, 1 when it rejected it or could
not be reached, and 2 for invalid options.
"""

import argparse
import asyncio
import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from msgin5g.cli.errors import UsageError
from msgin5g.gateway.config import GatewayConfigError, parse_psk_hex
from msgin5g.gateway.device import DeviceClient, DeviceError, DeviceResult
from msgin5g.gateway.service import local_schema
from msgin5g.service.messages import format_time

OUTCOMES = {
    "register": "registered",
    "deregister": "deregistered",
    "send": "sent",
    "fetch": "fetched",
}
# The hint for a MSG to an offline recipient, in place of the server's member name stoAndFwInd.
STORE_AND_FORWARD_HINT = "use --store-and-forward to let the server store the message until the recipient registers"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    device = subparsers.add_parser(
        "device",
        help="run a constrained device that talks to a Gateway UE",
        description=(
            "A constrained UE behind a Gateway UE: it reaches the gateway's local listener "
            "over CoAP over DTLS 1.2 with its PSK (PSK identity = device ID), or over "
            "unsecured CoAP on loopback with --plain."
        ),
    )
    commands = device.add_subparsers(dest="device_command", metavar="DEVICE_COMMAND", required=True)

    register = _add_command(commands, "register", "ask the gateway to register this device upstream")
    register.add_argument("--application-id", required=True, help="Application ID configured for this device")
    register.add_argument(
        "--urgency", choices=("NORMAL", "URGENT"), default="NORMAL",
        help="URGENT registers at once; NORMAL joins the gateway's next bulk registration (default)",
    )
    register.add_argument(
        "--expiration", help="RFC 3339 time after which the request is void, e.g. 2030-01-01T00:00:00Z"
    )

    deregister = _add_command(commands, "deregister", "ask the gateway to deregister this device upstream")
    deregister.add_argument("--application-id", required=True, help="Application ID configured for this device")

    send = _add_command(commands, "send", "send a message through the gateway")
    send.add_argument("--to", required=True, metavar="UE_SERVICE_ID", help="recipient's UE service ID")
    send.add_argument("--payload", required=True, help="message text, at most 8192 characters")
    send.add_argument(
        "--msg-id", help="message ID, 1 to 64 characters of A-Z a-z 0-9 . _ ~ : - (default: one the gateway picks)"
    )
    send.add_argument("--delivery-report", action="store_true", help="request a delivery report (IMDN)")
    send.add_argument(
        "--store-and-forward", action="store_true",
        help="let the server store the message while the recipient is offline"
    )
    send.add_argument("--expiry", type=float, help="seconds a stored message waits for its recipient (with --store-and-forward)")

    fetch = _add_command(commands, "fetch", "fetch the messages the gateway queued for this device")
    fetch.add_argument(
        "--ack", action="append", default=[], metavar="DELIVERY_ID", help="acknowledge this item first (repeatable)"
    )
    fetch.add_argument(
        "--ack-received", action="store_true",
        help="acknowledge the fetched items at once (the gateway then sends requested delivery reports)",
    )
    fetch.add_argument("--max-items", type=int, help="at most this many items, 1 to 100 (default 20)")


def _add_command(commands: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    command = commands.add_parser(
        name,
        help=help_text,
        description=(
            f"{help_text[0].upper()}{help_text[1:]}. The exit status is 0 when the gateway "
            "accepted the request, 1 otherwise."
        ),
    )
    command.add_argument("--gateway", required=True, metavar="HOST:PORT", help="the gateway's local listener")
    command.add_argument("--device-id", required=True, help="this device's ID (its DTLS PSK identity)")
    command.add_argument("--psk", help="this device's PSK, 32 to 128 hexadecimal digits")
    command.add_argument("--psk-file", type=Path, help="file that contains the PSK in hexadecimal (instead of --psk)")
    command.add_argument(
        "--plain", action="store_true", help="unsecured CoAP over UDP (test gateways on loopback only)"
    )
    command.add_argument("--json", action="store_true", help="print the result as JSON")
    command.set_defaults(handler=run_command)
    return command


def run_command(args: argparse.Namespace) -> int:
    host, port = _split_address(args.gateway)
    psk = None if args.plain else _psk(args)
    if getattr(args, "max_items", None) is not None and not 1 <= args.max_items <= 100:
        raise UsageError(f"invalid --max-items {args.max_items}: use 1 to 100")
    if args.device_command == "send":
        _check_send_options(args)

    started = time.perf_counter()
    outcome, result, cause, detail = asyncio.run(_run(args, host, port, psk))
    milliseconds = (time.perf_counter() - started) * 1000.0
    transport = "coap" if args.plain else "coaps"

    if args.json:
        print(json.dumps({
            "device_id": args.device_id,
            "operation": args.device_command,
            "outcome": outcome,
            "code": str(result.code) if result is not None else None,
            "cause": cause,
            "detail": _with_hint(args, cause, detail),
            "ms": round(milliseconds, 1),
            "response": result.document if result is not None else None,
        }, indent=2))
    else:
        _print_outcome(args, outcome, result, cause, _with_hint(args, cause, detail), transport, milliseconds)
    return 0 if outcome == OUTCOMES[args.device_command] else 1


def _check_send_options(args: argparse.Namespace) -> None:
    """Check --payload, --msg-id and --expiry against the gateway's message schema before anything is sent."""
    members = local_schema("message.json")["properties"]
    max_payload = members["payload"]["maxLength"]
    if len(args.payload) > max_payload:
        raise UsageError(f"--payload has {len(args.payload)} characters: send at most {max_payload}")

    msg_id = members["msgId"]
    if args.msg_id is not None and not (
        msg_id["minLength"] <= len(args.msg_id) <= msg_id["maxLength"] and re.search(msg_id["pattern"], args.msg_id)
    ):
        excerpt = args.msg_id if len(args.msg_id) <= 40 else args.msg_id[:37] + "..."
        raise UsageError(
            f"invalid --msg-id {excerpt!r}: use {msg_id['minLength']} to {msg_id['maxLength']} characters "
            "of A-Z a-z 0-9 . _ ~ : -"
        )

    if args.expiry is not None:
        if not args.store_and_forward:
            raise UsageError("--expiry applies to stored messages: add --store-and-forward")
        if args.expiry <= 0:
            raise UsageError(f"invalid --expiry {args.expiry}: use a number of seconds above 0")


def _with_hint(args: argparse.Namespace, cause: str | None, detail: str) -> str:
    """Add the command-line fix to a detail that names a member of the server's MSG."""
    if cause == "RECIPIENT_NOT_REGISTERED" and not getattr(args, "store_and_forward", True):
        return f"{detail}; {STORE_AND_FORWARD_HINT}"
    return detail


async def _run(
    args: argparse.Namespace, host: str, port: int, psk: bytes | None
) -> tuple[str, DeviceResult | None, str | None, str]:
    try:
        async with DeviceClient(host, port, args.device_id, psk, plain=args.plain) as client:
            result = await _request(args, client)
    except DeviceError as error:
        return "failed", None, error.cause, error.detail
    if result.accepted:
        return OUTCOMES[args.device_command], result, None, result.detail
    return "rejected", result, result.cause or str(result.code), result.detail


async def _request(args: argparse.Namespace, client: DeviceClient) -> DeviceResult:
    command = args.device_command
    if command == "register":
        return await client.register(args.application_id, args.urgency, args.expiration)
    if command == "deregister":
        return await client.deregister(args.application_id)
    if command == "send":
        return await client.send(
            args.to, args.payload, msg_id=args.msg_id, delivery_report=args.delivery_report,
            store_and_forward=args.store_and_forward, expiry=_expiry_time(args.expiry),
        )
    result = await client.fetch(args.ack, args.max_items)
    if args.ack_received and result.accepted and result.items:
        acked = await client.fetch([item["deliveryId"] for item in result.items], max_items=1)
        if not acked.accepted:
            return acked
    return result


def _expiry_time(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return format_time(datetime.now(UTC) + timedelta(seconds=seconds))


def _print_outcome(
    args: argparse.Namespace,
    outcome: str,
    result: DeviceResult | None,
    cause: str | None,
    detail: str,
    transport: str,
    milliseconds: float,
) -> None:
    shown_cause = f" ({cause})" if cause else ""
    if outcome == "sent" and result is not None:
        status = result.document.get("status", "")
        msg_id = result.document.get("msgId")
        print(f"sent ({status}) msgId {msg_id} to {args.to} over {transport}: {detail} [{milliseconds:.0f} ms]")
        return
    if outcome == "fetched" and result is not None:
        more = "yes" if result.document.get("more") else "no"
        count = len(result.items)
        items = "1 item" if count == 1 else f"{count} items"
        print(f"fetched {items} over {transport} (more: {more}) [{milliseconds:.0f} ms]")
        for item in result.items:
            print("  " + describe_item(item))
        return
    print(f"{outcome}{shown_cause} over {transport}: {detail} [{milliseconds:.0f} ms]")


def describe_item(item: dict[str, Any]) -> str:
    """Describe one inbox item in one line: delivery ID, type, originator and content."""
    message = item.get("message", {})
    kind = message.get("messageType", "?")
    head = f"{item.get('deliveryId')} {kind} from {message.get('oriAddr')} msgId {message.get('msgId')}"
    if kind == "IMDN":
        return f"{head}: {message.get('delivSt')}"
    return f"{head}: {message.get('payload')}"


def _psk(args: argparse.Namespace) -> bytes:
    if (args.psk is None) == (args.psk_file is None):
        raise UsageError("give exactly one of --psk and --psk-file (or --plain for a test gateway)")
    if args.psk_file is not None:
        try:
            text = args.psk_file.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError) as error:
            raise UsageError(f"cannot read --psk-file {args.psk_file}: {error}") from error
        name = f"--psk-file {args.psk_file}"
    else:
        text, name = args.psk.strip(), "--psk"
    try:
        return parse_psk_hex(text, name)
    except GatewayConfigError as error:
        raise UsageError(str(error)) from None


def _split_address(text: str) -> tuple[str, int]:
    host, separator, port = text.rpartition(":")
    if not separator or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise UsageError(f"invalid --gateway {text!r}: use HOST:PORT, for example 127.0.0.1:5690")
    return host.strip("[]"), int(port)
