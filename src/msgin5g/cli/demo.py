"""`msgin5g demo`: start a whole deployment on loopback and register UEs concurrently."""

import argparse
import asyncio
import json
import signal
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from msgin5g.cli.certs import FILE_NAMES, write_certificates
from msgin5g.cli.demo_gateway import gateway_address, register_devices, start_gateway
from msgin5g.cli.demo_messaging import run_message_round
from msgin5g.cli.demo_lifecycle import lifecycle_profile, run_lifecycle
from msgin5g.cli.errors import UsageError
from msgin5g.cli.provision import provision
from msgin5g.deployment.local import DeploymentSettings, LocalDeployment, running_deployment
from msgin5g.deployment.plan import DemoPlan, PlanError, PlannedUe, default_config_path, load_plan
from msgin5g.deployment.processes import ServiceStartError
from msgin5g.service.client import RegistrationOutcome, new_http_client, register_ue
from msgin5g.service.ue_profile import UeProfile
from msgin5g.service.usim import Usim

DEFAULT_UES = 20
MAX_UES = 5000
DEFAULT_CONCURRENCY = 100
OUTCOME_STYLES = {"registered": "green", "rejected": "yellow", "failed": "red"}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="start every service on loopback and register UEs concurrently",
        description=(
            "Starts the UDM, AUSF, AAnF, NEF, CM server and two MSGin5G Servers (one asking "
            "the AAnF, one outside the operator going through the NEF) as separate processes "
            "on free loopback ports, provisions subscribers, and runs N UEs that must register "
            "over the four security profiles, one UE that must be rejected by authorization "
            "and one that must fail primary authentication. A Gateway UE then registers its "
            "constrained devices (one of them not associated with it, which the server must "
            "reject), UEs and devices exchange messages with delivery reports (one to a UE that "
            "registers only afterwards), and one UE outlives its K_AF and is re-keyed. Exits 0 "
            "only if every UE, device and message gets its expected outcome and both lifecycle "
            "rounds end ok."
        ),
    )
    demo.add_argument("--ues", type=int, default=DEFAULT_UES, help=f"number of UEs that must register, 1 to {MAX_UES} (default {DEFAULT_UES})")
    demo.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY, help=f"maximum number of UEs registering at the same time (default {DEFAULT_CONCURRENCY})")
    demo.add_argument("--json", action="store_true", help="print the results as one JSON document")
    demo.add_argument("--config", type=Path, default=None, help="demo configuration YAML (default: the packaged demo.yaml)")
    demo.add_argument("--workdir", type=Path, default=None, help="keep configurations, database and service logs in this folder (default: a temporary folder, deleted afterwards)")
    demo.set_defaults(handler=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    if not 1 <= args.ues <= MAX_UES:
        raise UsageError(f"invalid number of UEs {args.ues}: use 1 to {MAX_UES}")
    if args.concurrency < 1:
        raise UsageError(f"invalid --concurrency {args.concurrency}: use 1 or more")
    try:
        plan = load_plan(args.config or default_config_path(), args.ues)
    except PlanError as error:
        raise UsageError(str(error)) from error

    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        return _run_in(args.workdir, plan, args)
    with tempfile.TemporaryDirectory(prefix="msgin5g-demo-") as workdir:
        return _run_in(Path(workdir), plan, args)


def _run_in(workdir: Path, plan: DemoPlan, args: argparse.Namespace) -> int:
    console = Console(stderr=args.json)
    if not console.is_terminal:
        # Rich assumes 80 columns without a terminal, which would cut the SUPI and cause.
        console.width = 120
    provision(workdir / "msgin5g.sqlite3", plan.provisioning_document())

    try:
        rows, wall_ms, rounds = asyncio.run(_main(workdir, plan, args.concurrency, console))
    except ServiceStartError as error:
        console.print(f"[red]error:[/red] {error}")
        return 1
    except asyncio.CancelledError:
        # SIGTERM cancels the main task; every service has been stopped by then.
        console.print("msgin5g demo: terminated; every service it started is stopped")
        return 128 + signal.SIGTERM

    totals = _totals(rows, wall_ms)
    lifecycle, devices, messages = rounds["lifecycle"], rounds["devices"], rounds["messages"]
    if args.json:
        print(json.dumps({"ues": rows, "totals": totals, "devices": devices, "messages": messages, "lifecycle": lifecycle}, indent=2))
    else:
        _print_table(console, rows)
        print_devices(console, devices)
        print_messages(console, messages)
        _print_lifecycle(console, lifecycle)
        _print_summary(console, totals)
        _print_round_summary(console, devices, messages)
        if not lifecycle["as_expected"]:
            console.print("[bold red]The key lifecycle round did not show an expiry and a rekey round that both ended ok.[/bold red]")
    rounds_ok = lifecycle["as_expected"] and all(row["as_expected"] for row in devices + messages)
    return 0 if totals["unexpected"] == 0 and rounds_ok else 1


async def _main(
    workdir: Path, plan: DemoPlan, concurrency: int, console: Console
) -> tuple[list[dict[str, Any]], float, dict[str, Any]]:
    """Run the deployment and every round; return the UE rows, their wall time and the other rounds."""
    main_task = asyncio.current_task()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)

    certificates = {name: workdir / name for name in FILE_NAMES}
    write_certificates(certificates, [plan.server_fqdn, plan.external_server_fqdn], days=1)
    settings = DeploymentSettings(
        mcc=plan.mcc,
        mnc=plan.mnc,
        server_fqdn=plan.server_fqdn,
        k_af_lifetime_seconds=plan.k_af_lifetime_seconds,
        certfile=certificates["server.pem"],
        keyfile=certificates["server.key"],
        external_fqdn=plan.external_server_fqdn,
    )
    with console.status("starting UDM, AUSF, AAnF, NEF, CM server and two MSGin5G Servers ..."):
        async with running_deployment(workdir, settings) as deployment:
            console.print("services ready:")
            for line in _service_list(deployment):
                console.print(f"  {line}", soft_wrap=True)
            with console.status(f"registering {len(plan.ues)} UEs concurrently ..."):
                started = time.perf_counter()
                outcomes = await _run_ues(deployment, plan, concurrency)
                wall_ms = (time.perf_counter() - started) * 1000.0
            ca_file = str(deployment.workdir / "ca.pem")
            with console.status("starting the Gateway UE and registering its devices ..."):
                address = gateway_address(await start_gateway(plan, deployment))
                devices = await register_devices(plan, address)
            with console.status("exchanging messages and delivery reports ..."):
                messages = await run_message_round(
                    plan, address, lambda ue: _profile(ue, plan, deployment, ca_file)
                )
            wait = plan.k_af_lifetime_seconds
            with console.status(f"lifecycle: holding {plan.ues[0].label}'s channel past its K_AF expiry ({wait} s), then re-keying ..."):
                profile = lifecycle_profile(deployment, plan, plan.ues[0], ca_file, _profile)
                lifecycle = await run_lifecycle(profile, plan.ues[0], plan.k_af_lifetime_seconds)

    rows = [_row(ue, outcome) for ue, outcome in zip(plan.ues, outcomes)]
    return rows, wall_ms, {"lifecycle": lifecycle, "devices": devices, "messages": messages}


async def _run_ues(deployment: LocalDeployment, plan: DemoPlan, concurrency: int) -> list[RegistrationOutcome]:
    slots = asyncio.Semaphore(concurrency)
    ca_file = str(deployment.workdir / "ca.pem")

    async def run_one(http, ue: PlannedUe) -> RegistrationOutcome:
        async with slots:
            profile = _profile(ue, plan, deployment, ca_file)
            return await register_ue(http, profile, Usim(k=ue.k, opc=ue.opc))

    async with new_http_client() as http:
        return await asyncio.gather(*(run_one(http, ue) for ue in plan.ues))


def _profile(ue: PlannedUe, plan: DemoPlan, deployment: LocalDeployment, ca_file: str) -> UeProfile:
    server_name, fqdn = ("server-nef", plan.external_server_fqdn) if ue.via == "nef" else ("server", plan.server_fqdn)
    host, port = deployment.profile_address(ue.profile, server_name)
    return UeProfile(
        supi=ue.supi,
        k=ue.k,
        opc=ue.opc,
        mcc=plan.mcc,
        mnc=plan.mnc,
        routing_indicator=plan.routing_indicator,
        ue_service_id=ue.ue_service_id,
        ausf_uri=deployment.ausf_uri,
        server_host=host,
        server_port=port,
        server_fqdn=fqdn,
        security_profile=ue.profile,
        ca_file=ca_file,
    )


def _row(ue: PlannedUe, outcome: RegistrationOutcome) -> dict[str, Any]:
    as_expected = outcome.outcome == ue.expected and (
        ue.expected_cause is None or outcome.cause == ue.expected_cause
    )
    return {
        "ue": ue.label,
        "supi": mask_supi(ue.supi),
        "outcome": outcome.outcome,
        "expected": ue.expected,
        "cause": outcome.cause,
        "expected_cause": ue.expected_cause,
        "as_expected": as_expected,
        "detail": outcome.detail,
        "ms": round(outcome.milliseconds, 1),
        "profile": outcome.profile,
        "via": ue.via,
    }


def mask_supi(supi: str) -> str:
    """Keep the type prefix, the MCC and MNC digits and the last two digits of a SUPI."""
    prefix, _, value = supi.rpartition("-")
    if len(value) <= 7:
        return supi[: len(prefix) + 1] + "*" * len(value)
    masked = value[:5] + "*" * (len(value) - 7) + value[-2:]
    return f"{prefix}-{masked}" if prefix else masked


def _totals(rows: list[dict[str, Any]], wall_ms: float) -> dict[str, Any]:
    registered_ms = [row["ms"] for row in rows if row["outcome"] == "registered"]
    unexpected = sum(1 for row in rows if not row["as_expected"])
    return {
        "ues": len(rows),
        "registered": sum(1 for row in rows if row["outcome"] == "registered"),
        "rejected": sum(1 for row in rows if row["outcome"] == "rejected"),
        "failed": sum(1 for row in rows if row["outcome"] == "failed"),
        "as_expected": len(rows) - unexpected,
        "unexpected": unexpected,
        "wall_ms": round(wall_ms, 1),
        "median_registration_ms": round(statistics.median(registered_ms), 1) if registered_ms else None,
        "max_registration_ms": round(max(registered_ms), 1) if registered_ms else None,
    }


def _print_table(console: Console, rows: list[dict[str, Any]]) -> None:
    # Every column but the cause keeps its whole value, so in a narrow terminal
    # the cause wraps over several lines instead of being cut. The expected
    # outcome appears only where it differs.
    table = Table(title="MSGin5G registrations", box=box.SIMPLE_HEAD, pad_edge=False)
    for column, key in (("UE", "ue"), ("SUPI", "supi"), ("profile", "profile"), ("via", "via"), ("outcome", "outcome")):
        width = max([len(column)] + [len(row[key]) for row in rows])
        table.add_column(column, no_wrap=True, min_width=width)
    table.add_column("cause", overflow="fold", min_width=12)
    table.add_column("ms", justify="right", no_wrap=True, min_width=5)

    for row in rows:
        style = OUTCOME_STYLES.get(row["outcome"], "")
        table.add_row(
            row["ue"], row["supi"], row["profile"], row["via"], f"[{style}]{row['outcome']}[/{style}]",
            row["cause"] or "-", f"{row['ms']:.0f}",
        )
    console.print(table)

    for row in rows:
        if not row["as_expected"]:
            console.print(f"[red]{row['ue']}[/red] expected {row['expected']}, got {row['outcome']}: {row['detail']}")


def print_devices(console: Console, devices: list[dict[str, Any]]) -> None:
    table = Table(title="Constrained devices behind the Gateway UE", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("device", "gateway", "UE service ID", "urgency", "outcome"):
        table.add_column(column, no_wrap=True)
    table.add_column("cause", overflow="fold", min_width=12)
    for row in devices:
        style = OUTCOME_STYLES.get(row["outcome"], "")
        table.add_row(
            row["device"], row["gateway"], row["ue_service_id"], row["urgency"],
            f"[{style}]{row['outcome']}[/{style}]", row["cause"] or "-",
        )
    console.print(table)
    for row in devices:
        if not row["as_expected"]:
            console.print(f"[red]{row['device']}[/red] expected {row['expected']}, got {row['outcome']}: {row['detail']}")


def print_messages(console: Console, messages: list[dict[str, Any]]) -> None:
    table = Table(title="Messages", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("from", "to", "MSGRESP", "outcome", "delivery report"):
        table.add_column(column, no_wrap=True)
    for row in messages:
        style = "green" if row["as_expected"] else "red"
        table.add_row(
            row["from"], row["to"], row["cause"] or row["status"] or "-",
            f"[{style}]{row['outcome']}[/{style}]", row["delivery_report"] or "-",
        )
    console.print(table)


def _print_lifecycle(console: Console, lifecycle: dict[str, Any]) -> None:
    rounds = ", ".join(
        f"{round_['kind']} {round_['outcome']} ({round_['milliseconds']:.0f} ms)" for round_ in lifecycle["rounds"]
    )
    style = "green" if lifecycle["as_expected"] else "bold red"
    console.print(f"key lifecycle of {lifecycle['ue']} over {lifecycle['profile']}: [{style}]{rounds or 'no rounds'}[/{style}]")


def _print_summary(console: Console, totals: dict[str, Any]) -> None:
    console.print(
        f"{totals['ues']} UEs in {totals['wall_ms']:.0f} ms: {totals['registered']} registered, "
        f"{totals['rejected']} rejected, {totals['failed']} failed; "
        f"median registration {totals['median_registration_ms']} ms."
    )
    if totals["unexpected"]:
        console.print(f"[bold red]{totals['unexpected']} UEs did not get their expected outcome.[/bold red]")
    else:
        console.print("[bold green]Every UE got its expected outcome.[/bold green]")


def _print_round_summary(console: Console, devices: list[dict[str, Any]], messages: list[dict[str, Any]]) -> None:
    registered = sum(1 for row in devices if row["outcome"] == "registered")
    delivered = sum(1 for row in messages if row["outcome"] == "delivered")
    reported = sum(1 for row in messages if row["delivery_report"] == "REPT_DELY_SUCCESS")
    console.print(
        f"{len(devices)} devices behind the Gateway UE: {registered} registered, "
        f"{len(devices) - registered} not; {len(messages)} messages: {delivered} delivered, "
        f"{reported} with a successful delivery report."
    )
    unexpected = [row for row in devices + messages if not row["as_expected"]]
    if unexpected:
        console.print(f"[bold red]{len(unexpected)} devices or messages did not get their expected outcome.[/bold red]")
    else:
        console.print("[bold green]Every device and message got its expected outcome.[/bold green]")


def _service_list(deployment: LocalDeployment) -> list[str]:
    lines = []
    for name, service in deployment.services.items():
        if service.uris:
            # Each server has one listener per profile, so each line starts with the server's name.
            lines.extend(f"{name} {label} {uri}" for label, uri in service.uris.items())
        else:
            lines.append(f"{name} {service.uri}")
    return lines
