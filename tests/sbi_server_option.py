"""A pytest plugin that runs the in-process SBI servers of the tests on one server stack.

    PYTHONPATH=tests python -m pytest -p sbi_server_option --sbi-server=granian tests/test_nf_aanf.py

The tests start their servers with `msgin5g.sbi.server.serve`, or through
`serve_nf` with the stack named in `sbi.server`. With `--sbi-server`, the
plugin replaces `serve` before the test modules import it, so every such
server uses the given stack. Services that the tests start as `msgin5g serve`
processes keep the stack of their configuration file.
"""

import functools

import pytest

from msgin5g.sbi import server as sbi_server

STACKS = ("hypercorn", "granian")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--sbi-server",
        choices=STACKS,
        default=None,
        help="HTTP/2 server stack for the SBI servers that the tests run in process (default: each caller's choice)",
    )


def pytest_configure(config: pytest.Config) -> None:
    stack = config.getoption("--sbi-server")
    if stack is None:
        return

    original = sbi_server.serve

    @functools.wraps(original)
    async def serve_on_stack(app, sock, shutdown_event, *, server=None) -> None:
        await original(app, sock, shutdown_event, server=stack)

    sbi_server.serve = serve_on_stack
