"""Run one network function's SBI server until a shutdown event."""

import asyncio
import logging
from collections.abc import Callable

from starlette.types import ASGIApp

from msgin5g.nf.config import SbiBinding
from msgin5g.sbi.server import bind_socket, serve, socket_uri

logger = logging.getLogger(__name__)

# Called once the socket listens, with the URI that peers should use.
ReadyCallback = Callable[[str], None]


async def serve_nf(
    name: str,
    app: ASGIApp,
    binding: SbiBinding,
    ready: ReadyCallback,
    shutdown: asyncio.Event,
) -> None:
    """Bind, report readiness, then serve `app` until `shutdown` is set.

    `name` is the function's name in log lines, e.g. "AAnF".
    """
    try:
        sock = bind_socket(binding.host, binding.port)
    except OSError as error:
        raise OSError(
            error.errno, f"cannot listen on {binding.host}:{binding.port}: {error.strerror}; "
            "choose another sbi.port, or 0 for a free one"
        ) from error
    try:
        uri = socket_uri(sock)
        logger.info("%s listening on %s", name, uri)
        ready(uri)
        await serve(app, sock, shutdown, server=binding.server)
    finally:
        sock.close()
    logger.info("%s stopped", name)
