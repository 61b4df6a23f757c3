"""`msgin5g ue send` and `msgin5g ue listen`: MSG, MSGRESP, inbox and delivery reports.

Both commands authenticate the UE (5G AKA, AKMA), open its secured session
and register its UE service ID before they send or fetch. `send` prints the
server's MSGRESP and, with --delivery-report, waits for the delivery report (IMDN) on
the message. `listen` prints every message and report that arrives, sends an
IMDN for each message that requests one, and stops after --duration seconds
or --count items, or at Ctrl-C.
"""

import argparse
import asyncio
import json
import signal
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from msgin5g.cli.errors import UsageError
from msgin5g.service.client import new_http_client
from msgin5g.service.messages import (
    DeliveryStatus,
    InboxItem,
    MessageType,
    Operation,
    invalid_msg_id,
    request_schema,
)
from msgin5g.service.messaging_client import MessagingError, MessagingSession, new_msg_id
from msgin5g.service.ue_profile import UeProfile
from msgin5g.service.usim import Usim

DEFAULT_REPORT_WAIT_SECONDS = 10.0
# The MSG schema's limit, so that the CLI and the server agree.
MAX_PAYLOAD_CHARACTERS: int = request_schema(Operation.MSG)["properties"]["payload"]["maxLength"]
# A stored message waits at most this long unless the server's maximum is lower.
MAX_EXPIRY_SECONDS = 7 * 24 * 3600

# Adds the options that build a UE profile; the parser's `build_profile` default builds it.
AddOptions = Callable[[argparse.ArgumentParser], None]

# Hints in CLI terms for rejections whose server detail names JSON members.
CAUSE_HINTS = {
    "RECIPIENT_NOT_REGISTERED": "hint: add --store-and-forward to let the server keep it until the recipient registers",
    "ORIGINATOR_NOT_REGISTERED": "hint: check --ue-service-id; it must be a UE service ID associated with this UE",
}


def add_send_command(commands: argparse._SubParsersAction, add_ue_options: AddOptions) -> argparse.ArgumentParser:
    command = commands.add_parser(
        "send",
        help="register and send one MSG to another UE service ID",
        description=(
            "Authenticate with 5G AKA, derive K_AF, register the UE service ID and send one "
            "MSG to --to. The exit status is 0 when the server accepted the message (queued "
            "for a registered recipient, or stored for an offline one) and, with "
            "--delivery-report, a "
            "successful delivery report arrived; 1 otherwise."
        ),
    )
    add_ue_options(command)
    command.add_argument("--to", required=True, help="recipient UE service ID")
    command.add_argument("--payload", required=True, help=f"message text, at most {MAX_PAYLOAD_CHARACTERS} characters")
    command.add_argument("--msg-id", help="message ID (default: a random one)")
    command.add_argument(
        "--delivery-report", action="store_true",
        help="request a delivery report (IMDN) and wait for it (see --wait)",
    )
    command.add_argument(
        "--store-and-forward", action="store_true",
        help="let the server store the message for a recipient that is not registered",
    )
    command.add_argument("--expiry", type=float, help="seconds a stored message waits for its recipient (with --store-and-forward)")
    command.add_argument(
        "--wait", type=float, default=DEFAULT_REPORT_WAIT_SECONDS,
        help=f"seconds to wait for the delivery report with --delivery-report (default {DEFAULT_REPORT_WAIT_SECONDS:.0f})",
    )
    command.set_defaults(handler=_run_send)
    return command


def add_listen_command(commands: argparse._SubParsersAction, add_ue_options: AddOptions) -> argparse.ArgumentParser:
    command = commands.add_parser(
        "listen",
        help="register and print the messages and delivery reports that arrive",
        description=(
            "Authenticate with 5G AKA, derive K_AF, register the UE service ID, then fetch its "
            "inbox every --interval seconds. Each message or delivery report is printed once; "
            "a message that requests a delivery report gets one. Stops after --duration "
            "seconds, after --count items, or at Ctrl-C; the exit status is 0 unless the "
            "session failed."
        ),
    )
    add_ue_options(command)
    command.add_argument("--duration", type=float, help="stop after this many seconds (default: run until Ctrl-C)")
    command.add_argument("--count", type=int, help="stop after this many items")
    command.add_argument("--interval", type=float, default=1.0, help="seconds between inbox fetches (default 1)")
    command.set_defaults(handler=_run_listen)
    return command


# send


def _run_send(args: argparse.Namespace) -> int:
    _check_send_options(args)
    profile = args.build_profile(args)
    try:
        report = asyncio.run(_send(profile, args))
    except MessagingError as error:
        return _print_failure(args, error.cause, error.detail)

    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_send_report(report)
    succeeded = report["outcome"] == "accepted"
    if args.delivery_report:
        succeeded = succeeded and report.get("delivery_report") == "REPT_DELY_SUCCESS"
    return 0 if succeeded else 1


def _check_send_options(args: argparse.Namespace) -> None:
    if len(args.payload) > MAX_PAYLOAD_CHARACTERS:
        raise UsageError(f"--payload has {len(args.payload)} characters: send at most {MAX_PAYLOAD_CHARACTERS}")
    if args.expiry is not None:
        if not args.store_and_forward:
            raise UsageError("--expiry applies to stored messages: add --store-and-forward")
        if not 0 < args.expiry <= MAX_EXPIRY_SECONDS:
            raise UsageError(f"invalid --expiry {args.expiry}: use more than 0 and at most {MAX_EXPIRY_SECONDS} seconds")
    if args.wait <= 0:
        raise UsageError(f"invalid --wait {args.wait}: use more than 0 seconds")
    if args.msg_id is not None and (reason := invalid_msg_id(args.msg_id)) is not None:
        raise UsageError(f"invalid --msg-id {args.msg_id!r}: {reason}")


async def _send(profile: UeProfile, args: argparse.Namespace) -> dict[str, Any]:
    usim = Usim(k=profile.k, opc=profile.opc)
    msg_id = args.msg_id or new_msg_id()
    expiry = datetime.now(UTC) + timedelta(seconds=args.expiry) if args.expiry else None

    async with new_http_client() as http, MessagingSession(http, profile, usim) as session:
        registration = await session.register()
        if registration.outcome != "registered":
            raise MessagingError(
                registration.cause or "REGISTRATION_FAILED",
                f"REG of {profile.ue_service_id} before sending failed: {registration.detail}",
            )
        response = await session.send(
            args.to, args.payload, msg_id=msg_id, delivery_report=args.delivery_report,
            store_and_forward=args.store_and_forward, expiry_time=expiry,
        )
        report = {
            "from": profile.ue_service_id,
            "to": args.to,
            "msg_id": msg_id,
            "outcome": "accepted" if response.accepted else "rejected",
            "status": str(response.status) if response.status is not None else None,
            "cause": response.cause.value if response.cause is not None else None,
            "detail": response.detail,
        }
        if args.delivery_report and response.accepted:
            imdn = await _await_report(session, args.to, msg_id, args.wait)
            report["delivery_report"] = imdn.get("delivSt") if imdn else None
            report["failure_cause"] = imdn.get("failureCause") if imdn else None
        return report


async def _await_report(
    session: MessagingSession, recipient: str, msg_id: str, wait: float
) -> dict[str, Any] | None:
    """Fetch until the IMDN on `msg_id` arrives or `wait` seconds pass; return the IMDN."""
    deadline = time.monotonic() + wait
    acks: list[str] = []
    while True:
        items = await session.fetch(acks)
        acks = [item.delivery_id for item in items]
        for item in items:
            message = item.message
            if item.message_type is MessageType.IMDN and message.get("msgId") == msg_id and message.get("oriAddr") == recipient:
                await session.fetch(acks, max_items=1)
                return message
        if time.monotonic() >= deadline:
            if acks:
                await session.fetch(acks, max_items=1)
            return None
        await asyncio.sleep(min(0.5, max(0.0, deadline - time.monotonic())))


def _print_send_report(report: dict[str, Any]) -> None:
    if report["outcome"] != "accepted":
        print(f"rejected ({report['cause']}): {report['detail']}")
        hint = CAUSE_HINTS.get(report["cause"])
        if hint:
            print(hint)
        return
    where = "queued for the registered recipient" if report["status"] == DeliveryStatus.DELY_QUEUED else "stored until the recipient registers"
    print(f"sent {report['msg_id']} from {report['from']} to {report['to']}: {report['status']}, {where}")
    if "delivery_report" in report:
        status = report["delivery_report"] or "none within the --wait time (the recipient has not fetched it yet)"
        if report.get("failure_cause"):
            status += f" ({report['failure_cause']})"
        print(f"delivery report: {status}")


# listen


def _run_listen(args: argparse.Namespace) -> int:
    if args.duration is not None and args.duration <= 0:
        raise UsageError(f"invalid --duration {args.duration}: use more than 0 seconds")
    if args.count is not None and args.count < 1:
        raise UsageError(f"invalid --count {args.count}: use 1 or more")
    if args.interval <= 0:
        raise UsageError(f"invalid --interval {args.interval}: use more than 0 seconds")
    profile = args.build_profile(args)
    try:
        received, reason = asyncio.run(_listen(profile, args))
    except MessagingError as error:
        return _print_failure(args, error.cause, error.detail)

    if not args.json:
        print(f"stopped {reason} with {_count(received, 'item')}", file=sys.stderr)
    return 0


async def _listen(profile: UeProfile, args: argparse.Namespace) -> tuple[int, str]:
    """Listen until --duration, --count or a signal; return the items received and why it stopped."""
    main_task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, main_task.cancel)

    usim = Usim(k=profile.k, opc=profile.opc)
    received = 0
    stop = asyncio.Event()

    def show(item: InboxItem) -> None:
        nonlocal received
        received += 1
        _print_item(item, args.json)
        if args.count is not None and received >= args.count:
            stop.set()

    async with new_http_client() as http, MessagingSession(http, profile, usim) as session:
        registration = await session.register()
        if registration.outcome != "registered":
            raise MessagingError(
                registration.cause or "REGISTRATION_FAILED",
                f"REG of {profile.ue_service_id} failed: {registration.detail}",
            )
        if not args.json:
            print(f"listening as {profile.ue_service_id} over {profile.security_profile}", file=sys.stderr, flush=True)
        listening = asyncio.create_task(session.listen(show, interval=args.interval, duration=args.duration))
        stopping = asyncio.create_task(stop.wait())
        reason = f"after --duration {args.duration:g} s" if args.duration is not None else "when the session ended"
        try:
            await asyncio.wait({listening, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if stop.is_set():
                reason = f"after --count {args.count}"
        except asyncio.CancelledError:
            # Ctrl-C or SIGTERM: stop listening, but still acknowledge below.
            main_task.uncancel()
            reason = "on a signal"
        finally:
            stopping.cancel()
            if not listening.done():
                listening.cancel()
                await asyncio.gather(listening, return_exceptions=True)
                # Acknowledge what was printed, so the server does not deliver it again.
                await session.flush_acks()
            else:
                listening.result()
    return received, reason


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _print_item(item: InboxItem, as_json: bool) -> None:
    message = item.message
    if as_json:
        print(json.dumps(item.to_json()), flush=True)
    elif item.message_type is MessageType.IMDN:
        print(f"report on {message['msgId']} from {message['oriAddr']}: {message['delivSt']}", flush=True)
    else:
        print(f"message {message['msgId']} from {message['oriAddr']} to {item.ue_service_id}: {message.get('payload', '')}", flush=True)


def _print_failure(args: argparse.Namespace, cause: str, detail: str) -> int:
    if args.json:
        print(json.dumps({"outcome": "failed", "cause": cause, "detail": detail}, indent=2))
    else:
        print(f"failed ({cause}): {detail}")
        hint = CAUSE_HINTS.get(cause)
        if hint:
            print(hint)
    return 1
