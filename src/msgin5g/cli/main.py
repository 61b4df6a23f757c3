"""The `msgin5g` command: one subcommand per task, each defined in its own module."""

import argparse
import importlib
import sys

from msgin5g import __version__
from msgin5g.cli.errors import UsageError

# Each module exposes add_parser(subparsers); the parser it adds sets `handler`,
# a function that takes the parsed arguments and returns the exit status.
SUBCOMMAND_MODULES = (
    "msgin5g.cli.keys",
    "msgin5g.cli.provision",
    "msgin5g.cli.serve",
    "msgin5g.cli.ue",
    "msgin5g.cli.demo",
    "msgin5g.cli.certs",
    "msgin5g.cli.gateway",
    "msgin5g.cli.device",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="msgin5g",
        description="AKMA-based authentication and authorization for MSGin5G.",
    )
    parser.add_argument("--version", action="version", version=f"msgin5g {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    for module_name in SUBCOMMAND_MODULES:
        importlib.import_module(module_name).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except UsageError as error:
        print(f"msgin5g {_command_name(args)}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("msgin5g: interrupted", file=sys.stderr)
        return 130


def _command_name(args: argparse.Namespace) -> str:
    """Return the subcommand as typed, for example "keys milenage" or "ue register"."""
    words = [args.command]
    for nested in ("derivation", f"{args.command}_command"):
        value = getattr(args, nested, None)
        if isinstance(value, str):
            words.append(value)
    return " ".join(words)
