"""Serve an SBI application with Granian's embedded server (`sbi.server: granian`).

Granian 2.8 runs its embedded server as one worker inside the caller's event
loop, so the network function stays one process. Its HTTP/1.1 and HTTP/2
code is Rust (hyper), and the ASGI calls run on this loop. The embedded server
binds its own socket from an address and a port. `BoundSocketServer` hands it a
duplicate of the caller's pre-bound socket instead, so port 0 and the ready
line work as with Hypercorn. In the `auto` HTTP mode Granian serves HTTP/1.1
and HTTP/2 with prior knowledge (h2c) on the same port, as Hypercorn does.

NOTE: this relies on Granian internals (`embed.Server._init_shared_socket`
and `SocketHolder(fd, is_uds, backlog)`), which Granian may change in any
release. The `granian` requirement is pinned to a minor version for that reason.
"""

import asyncio
import contextlib
import logging
import os
import socket

from granian._granian import SocketHolder
from granian.constants import HTTPModes, Interfaces
from granian.http import HTTP2Settings
from granian.log import LogLevels
from granian.server.embed import Server
from starlette.types import ASGIApp, Receive, Scope, Send

logger = logging.getLogger(__name__)

# Granian's logger, which its Rust code uses too.
GRANIAN_LOGGER = "_granian"
EXPERIMENTAL_WARNING = "Embedded server is experimental!"


class BoundSocketServer(Server):
    """Granian's embedded server, listening on a socket that the caller has bound already."""

    def __init__(self, app: ASGIApp, sock: socket.socket, *, backlog: int, http2: HTTP2Settings) -> None:
        self._bound_socket = sock
        host, port = sock.getsockname()[:2]
        super().__init__(
            app,
            address=host,
            port=port,
            interface=Interfaces.ASGI,
            http=HTTPModes.auto,
            http2_settings=http2,
            websockets=False,
            backlog=backlog,
            # An incremental logging configuration only sets the levels of
            # Granian's loggers. Its default configuration would replace the
            # application's logging handlers and print to stdout, where the
            # ready line goes.
            log_dictconfig={"incremental": True, "handlers": {}, "formatters": {}, "loggers": {}},
            log_level=LogLevels.warning,
        )

    def _init_shared_socket(self) -> None:
        # Granian closes the descriptor it holds when it stops, so it gets a
        # duplicate and the caller closes the original.
        descriptor = os.dup(self._bound_socket.fileno())
        self._ssp = None
        self._shd = SocketHolder(descriptor, False, self.backlog)
        self._sfd = self._shd.get_fd()


# Seconds between the last response of a stop and Granian's GOAWAY.
RESPONSE_FLUSH_SECONDS = 0.2


async def serve_granian(
    app: ASGIApp,
    sock: socket.socket,
    shutdown_event: asyncio.Event,
    *,
    backlog: int,
    graceful_seconds: float,
    http2: HTTP2Settings,
) -> None:
    """Serve `app` on the bound socket `sock` with Granian until `shutdown_event` is set.

    A stop first waits for the requests in progress, then has Granian send
    GOAWAY and close its connections. The whole stop takes at most
    `graceful_seconds`, and connections still open then are left to the
    process exit.
    """
    quiet_experimental_warning()
    tracker = RequestTracker(app)
    server = BoundSocketServer(tracker, sock, backlog=backlog, http2=http2)
    serving = asyncio.create_task(server.serve(), name="granian")
    stopping = asyncio.create_task(shutdown_event.wait(), name="granian-shutdown")

    try:
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if serving.done():
        serving.result()  # The server failed before any shutdown request: raise its error.
        return

    loop = asyncio.get_running_loop()
    deadline = loop.time() + graceful_seconds
    await tracker.wait_idle(deadline)
    # NOTE: a pause so that peers read the last responses before the GOAWAY and
    # its PING: httpx (h2 4.4) fails every stream still unread on a PING after
    # GOAWAY. The pause suits loopback and LAN round trips; it is a heuristic.
    await asyncio.sleep(max(0.0, min(RESPONSE_FLUSH_SECONDS, deadline - loop.time())))
    server.stop()
    await wait_until(serving, deadline)


async def wait_until(serving: asyncio.Task, deadline: float) -> None:
    """Wait for Granian to close its connections, and cancel the wait at `deadline`.

    Granian (hyper) closes an HTTP/2 connection only after the client
    acknowledges the PING sent with its GOAWAY. httpx, the SBI client of this
    project, does not: h2 4.4 raises ProtocolError on a PING after GOAWAY, and
    an idle connection is not read at all. So with an SBI peer connected,
    this wait runs to the deadline.
    """
    try:
        async with asyncio.timeout_at(deadline):
            await asyncio.shield(serving)
    except TimeoutError:
        serving.cancel()
        # NOTE: cancelling releases this coroutine only. Granian's Rust threads
        # keep the remaining connections until the peers close them or the
        # process exits.
        logger.info("SBI connections still open at the end of the graceful stop; leaving them to the process exit")
        with contextlib.suppress(asyncio.CancelledError):
            await serving


class RequestTracker:
    """An ASGI wrapper that counts the HTTP requests in progress."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.in_progress = 0
        self.idle = asyncio.Event()
        self.idle.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        self.in_progress += 1
        self.idle.clear()
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_progress -= 1
            if self.in_progress == 0:
                self.idle.set()

    async def wait_idle(self, deadline: float) -> None:
        """Wait until no request is in progress, or until `deadline` (event loop time)."""
        try:
            async with asyncio.timeout_at(deadline):
                await self.idle.wait()
        except TimeoutError:
            logger.warning(
                "%d SBI requests still in progress at the end of the graceful stop; closing their connections",
                self.in_progress,
            )


def quiet_experimental_warning() -> None:
    """Drop the warning that Granian logs each time an embedded server starts."""
    granian_logger = logging.getLogger(GRANIAN_LOGGER)
    if not any(isinstance(item, ExperimentalWarningFilter) for item in granian_logger.filters):
        granian_logger.addFilter(ExperimentalWarningFilter())


class ExperimentalWarningFilter(logging.Filter):
    """A filter that rejects Granian's "embedded server is experimental" record, which repeats at every start."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != EXPERIMENTAL_WARNING
