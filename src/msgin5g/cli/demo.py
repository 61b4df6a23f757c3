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

from rich.console import Console
from rich.table import Table

from msgin5g.cli.errors import UsageError
from msgin5g.cli.provision import provision
from msgin5g.deployment.local import DeploymentSettings, LocalDeployment, running_deployment
from msgin5g.deployment.plan import DemoPlan, PlanError, PlannedUe, default_config_path, load_plan
from msgin5g.deployment.processes import ServiceStartError
from msgin5g.service.client import RegistrationOutcome, new_http_client, register_ue
from msgin5g.service.ue_profile import UeProfile
from msgin5g.service.usim import Usim

DEFAULT_UES = 20
OUTCOME_STYLES = {"registered": "green", "rejected": "yellow", "failed": "red"}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="start every service on loopback and register UEs concurrently",
        description=(
            "Starts the UDM, AUSF, AAnF, CM server and MSGin5G Server as separate processes "
            "on free loopback ports, provisions subscribers, and runs N UEs that must register, "
            "one UE that must be rejected by authorization and one that must fail primary "
            "authentication. Exits 0 only if every UE gets its expected outcome."
        ),
    )
    demo.add_argument("--ues", type=int, default=DEFAULT_UES, help=f"number of UEs that must register (default {DEFAULT_UES})")
    demo.add_argument("--json", action="store_true", help="print the results as one JSON document")
    demo.add_argument("--config", type=Path, default=None, help="demo configuration YAML (default: the packaged demo.yaml)")
    demo.add_argument("--workdir", type=Path, default=None, help="keep configurations, database and service logs in this folder (default: a temporary folder, deleted afterwards)")
    demo.set_defaults(handler=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    try:
        plan = load_plan(args.config or default_config_path(), args.ues)
    except PlanError as error:
        raise UsageError(str(error)) from error

    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        return _run_in(args.workdir, plan, args.json)
    with tempfile.TemporaryDirectory(prefix="msgin5g-demo-") as workdir:
        return _run_in(Path(workdir), plan, args.json)


def _run_in(workdir: Path, plan: DemoPlan, as_json: bool) -> int:
    console = Console(stderr=as_json)
    if not console.is_terminal:
        # Rich assumes 80 columns without a terminal, which would cut the SUPI and cause.
        console.width = 120
    provision(workdir / "msgin5g.sqlite3", plan.provisioning_document())

    try:
        rows, wall_ms = asyncio.run(_main(workdir, plan, console))
    except ServiceStartError as error:
        console.print(f"[red]error:[/red] {error}")
        return 1

    totals = _totals(rows, wall_ms)
    if as_json:
        print(json.dumps({"ues": rows, "totals": totals}, indent=2))
    else:
        _print_table(console, rows)
        _print_summary(console, totals)
    return 0 if totals["unexpected"] == 0 else 1


async def _main(workdir: Path, plan: DemoPlan, console: Console) -> tuple[list[dict[str, Any]], float]:
    main_task = asyncio.current_task()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)

    settings = DeploymentSettings(
        mcc=plan.mcc,
        mnc=plan.mnc,
        server_fqdn=plan.server_fqdn,
        k_af_lifetime_seconds=plan.k_af_lifetime_seconds,
    )
    with console.status("starting UDM, AUSF, AAnF, CM server and MSGin5G Server ..."):
        async with running_deployment(workdir, settings) as deployment:
            console.print(f"services ready: {_service_list(deployment)}")
            with console.status(f"registering {len(plan.ues)} UEs concurrently ..."):
                started = time.perf_counter()
                outcomes = await _run_ues(deployment, plan)
                wall_ms = (time.perf_counter() - started) * 1000.0

    rows = [_row(ue, outcome) for ue, outcome in zip(plan.ues, outcomes)]
    return rows, wall_ms


async def _run_ues(deployment: LocalDeployment, plan: DemoPlan) -> list[RegistrationOutcome]:
    host, port = deployment.server_address
    async with new_http_client() as http:
        attempts = [
            register_ue(http, _profile(ue, plan, deployment.ausf_uri, host, port), Usim(k=ue.k, opc=ue.opc))
            for ue in plan.ues
        ]
        return await asyncio.gather(*attempts)


def _profile(ue: PlannedUe, plan: DemoPlan, ausf_uri: str, host: str, port: int) -> UeProfile:
    return UeProfile(
        supi=ue.supi,
        k=ue.k,
        opc=ue.opc,
        mcc=plan.mcc,
        mnc=plan.mnc,
        routing_indicator=plan.routing_indicator,
        ue_service_id=ue.ue_service_id,
        ausf_uri=ausf_uri,
        server_host=host,
        server_port=port,
        server_fqdn=plan.server_fqdn,
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
    table = Table(title="MSGin5G registrations")
    for column in ("UE", "SUPI", "profile", "outcome", "expected", "cause", "ms"):
        table.add_column(column, justify="right" if column == "ms" else "left")

    for row in rows:
        style = OUTCOME_STYLES.get(row["outcome"], "")
        mark = "" if row["as_expected"] else " [bold red](unexpected)[/bold red]"
        table.add_row(
            row["ue"], row["supi"], row["profile"], f"[{style}]{row['outcome']}[/{style}]{mark}",
            row["expected"], row["cause"] or "-", f"{row['ms']:.0f}",
        )
    console.print(table)

    for row in rows:
        if not row["as_expected"]:
            console.print(f"[red]{row['ue']}[/red]: {row['detail']}")


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


def _service_list(deployment: LocalDeployment) -> str:
    return ", ".join(f"{name} {service.uri}" for name, service in deployment.services.items())

