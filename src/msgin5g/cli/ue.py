"""`msgin5g ue register|deregister|send|listen`: one UE runs 5G AKA, AKMA and MSGin5G-1.

`send` and `listen` register the UE service ID first (a repeated REG only
renews it), because the server accepts messages only from and for registered
UE service IDs.
"""

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

import yaml

from msgin5g.cli.errors import UsageError
from msgin5g.cli.ue_messaging import add_listen_command, add_send_command
from msgin5g.service.client import (
    DEREGISTERED,
    REGISTERED,
    RegistrationOutcome,
    deregister_ue,
    new_http_client,
    register_ue,
)
from msgin5g.service.ue_profile import SECURITY_PROFILES, ProfileError, UeProfile, profile_from_mapping
from msgin5g.service.usim import Usim

# Options that override (or replace) keys of the YAML file: option -> key path.
OPTION_KEYS = {
    "supi": ("supi",),
    "k": ("k",),
    "op": ("op",),
    "opc": ("opc",),
    "mcc": ("home_network", "mcc"),
    "mnc": ("home_network", "mnc"),
    "rid": ("routing_indicator",),
    "ue_service_id": ("ue_service_id",),
    "ausf": ("ausf", "uri"),
    "server_fqdn": ("server", "fqdn"),
    "profile": ("server", "profile"),
    "ca_file": ("server", "ca_file"),
}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    ue = subparsers.add_parser(
        "ue",
        help="run a simulated UE (MSGin5G Client)",
        description=(
            "A simulated UE with a software USIM: it runs 5G AKA with the AUSF, derives "
            "K_AKMA, the A-KID and K_AF, and talks to the MSGin5G Server over the "
            "security profile that --profile names (CoAP over TLS 1.3, TLS 1.2 or "
            "DTLS 1.2 keyed by K_AF, or HTTPS with HTTP Digest)."
        ),
    )
    commands = ue.add_subparsers(dest="ue_command", metavar="UE_COMMAND", required=True)

    for name, help_text in (
        ("register", "authenticate with 5G AKA, derive K_AF and register at the MSGin5G Server"),
        ("deregister", "authenticate with 5G AKA, derive K_AF and deregister at the MSGin5G Server"),
    ):
        command = commands.add_parser(
            name,
            help=help_text,
            description=(
                f"{help_text[0].upper()}{help_text[1:]}. Values come from --config (a YAML file) "
                "and from options; an option overrides the same key of the file. The exit "
                "status is 0 when the server accepted the request, 1 otherwise."
            ),
        )
        add_ue_options(command)
        command.set_defaults(handler=run_command)

    for add_command in (add_send_command, add_listen_command):
        add_command(commands, add_ue_options).set_defaults(build_profile=ue_profile)


def add_ue_options(command: argparse.ArgumentParser) -> None:
    """Add the options that build a UE profile (see `ue_profile`)."""
    command.add_argument("--config", type=Path, help="UE configuration YAML file")
    command.add_argument("--supi", help="SUPI, for example imsi-001010000000001")
    command.add_argument("--k", help="subscriber key K, 32 hexadecimal digits (16 octets)")
    command.add_argument("--op", help="operator variant OP, 32 hexadecimal digits")
    command.add_argument("--opc", help="OPc, 32 hexadecimal digits (instead of --op)")
    command.add_argument("--mcc", help="home network MCC, 3 digits")
    command.add_argument("--mnc", help="home network MNC, 2 or 3 digits")
    command.add_argument("--rid", help="routing indicator, 1 to 4 digits (default 0)")
    command.add_argument("--ue-service-id", help="UE service ID to register or deregister")
    command.add_argument("--ausf", help="AUSF base URI, for example http://127.0.0.1:8002")
    command.add_argument("--server", help="MSGin5G Server address as HOST:PORT")
    command.add_argument("--server-fqdn", help="MSGin5G Server FQDN (enters AF_ID and SNI)")
    command.add_argument(
        "--profile",
        choices=SECURITY_PROFILES,
        help="Ua* security profile of the server address (default psk-tls1.3)",
    )
    command.add_argument("--ca-file", help="CA certificate (PEM) that verifies the server, for https-digest")
    command.add_argument("--json", action="store_true", help="print the result as JSON")


def run_command(args: argparse.Namespace) -> int:
    profile = ue_profile(args)
    outcome = asyncio.run(_run(profile, deregister=args.ue_command == "deregister"))

    if args.json:
        print(json.dumps({
            "ue_service_id": profile.ue_service_id,
            "outcome": outcome.outcome,
            "cause": outcome.cause,
            "detail": outcome.detail,
            "ms": round(outcome.milliseconds, 1),
            "profile": outcome.profile,
        }, indent=2))
    else:
        cause = f" ({outcome.cause})" if outcome.cause else ""
        print(f"{outcome.outcome}{cause} over {outcome.profile}: {outcome.detail} [{outcome.milliseconds:.0f} ms]")
    return 0 if outcome.outcome in (REGISTERED, DEREGISTERED) else 1


async def _run(profile: UeProfile, *, deregister: bool) -> RegistrationOutcome:
    usim = Usim(k=profile.k, opc=profile.opc)
    async with new_http_client() as http:
        if deregister:
            return await deregister_ue(http, profile, usim)
        return await register_ue(http, profile, usim)


def ue_profile(args: argparse.Namespace) -> UeProfile:
    """Build the UE profile from --config and the options that override its keys."""
    document = _read_config(args.config) if args.config else {}
    server = document.get("server")
    if args.config and isinstance(server, dict) and isinstance(server.get("ca_file"), str):
        # Like the services, a relative path in the file is taken from the file's folder.
        server["ca_file"] = str(args.config.parent / server["ca_file"])
    for option, path in OPTION_KEYS.items():
        value = getattr(args, option)
        if value is not None:
            _set(document, path, value)
    if args.op is not None:
        document.pop("opc", None)
    if args.opc is not None:
        document.pop("op", None)
    if args.server is not None:
        host, port = _split_address(args.server)
        _set(document, ("server", "host"), host)
        _set(document, ("server", "port"), port)

    try:
        return profile_from_mapping(document)
    except ProfileError as error:
        raise UsageError(f"{error} (in --config or as an option)") from error


def _read_config(path: Path) -> dict[str, Any]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise UsageError(f"cannot read --config {path}: {error.strerror}") from error
    except yaml.YAMLError as error:
        raise UsageError(f"--config {path} is not valid YAML: {error}") from error
    if not isinstance(document, dict):
        raise UsageError(f"--config {path} must hold a mapping of keys to values")
    return document


def _set(document: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        document = document.setdefault(key, {})
    document[path[-1]] = value


def _split_address(text: str) -> tuple[str, int]:
    host, separator, port = text.rpartition(":")
    if not separator or not host or not port.isdigit():
        raise UsageError(f"invalid --server {text!r}: use HOST:PORT, for example 127.0.0.1:5684")
    return host.strip("[]"), int(port)
