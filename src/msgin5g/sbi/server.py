"""Serve an SBI application over HTTP/2 cleartext (h2c) with Granian or Hypercorn.

The caller binds the listening socket (`bind_socket`), so port 0 works and
the real port is known before the server starts. Both stacks accept HTTP/2
with prior knowledge on the same port as HTTP/1.1. Granian, the default, runs
as an embedded server in the caller's event loop (`msgin5g.sbi.granian_server`).
Hypercorn 0.18 takes a pre-bound socket through an `fd://N` bind. It wraps that
descriptor in its own socket object and closes it on shutdown, so `serve`
passes a duplicate and the caller keeps and closes the original.
"""

import asyncio
import ipaddress
import logging
import os
import socket
from typing import Literal

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

GRACEFUL_SHUTDOWN_SECONDS = 2.0
KEEP_ALIVE_MAX_REQUESTS = 2**31 - 1
LISTEN_BACKLOG = 128
DRAIN_LIMIT_OCTETS = 1024 * 1024
DRAIN_TIMEOUT_SECONDS = 5.0
# Hypercorn 0.18's HTTP/2 defaults, applied to Granian too so that both stacks
# enforce the same limits.
MAX_CONCURRENT_STREAMS = 100
MAX_HEADER_LIST_OCTETS = 64 * 1024

type ServerStack = Literal["granian", "hypercorn"]
# On a 2-core virtual machine, the AAnF on Granian 2.8 served 2.4 to 3.1 times
# the requests per second of Hypercorn 0.18, with 35 to 60% of its CPU time
# per request (docs/benchmarks.md, "HTTP/2 server stack").
DEFAULT_SERVER_STACK: ServerStack = "granian"


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind a listening TCP socket on an IP address (v4 or v6); port 0 picks a free port.

    The socket listens at once, so a peer that connects before the server
    task runs waits in the backlog instead of being refused.
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"SBI host {host!r} must be an IP address such as 127.0.0.1 or ::1"
        ) from None
    if not 0 <= port <= 65535:
        raise ValueError(f"SBI port {port} must be between 0 and 65535 (0 picks a free port)")

    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def socket_uri(sock: socket.socket) -> str:
    """Return the http:// URI of a bound socket, e.g. http://127.0.0.1:40123."""
    host, port = sock.getsockname()[:2]
    if sock.family == socket.AF_INET6:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def hypercorn_config(sock: socket.socket) -> Config:
    config = Config()
    config.bind = [f"fd://{os.dup(sock.fileno())}"]
    config.accesslog = None
    # A Logger object keeps Hypercorn from installing its own handlers, so its
    # messages follow the logging set up by the application.
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = GRACEFUL_SHUTDOWN_SECONDS
    # Hypercorn closes a connection after 1000 requests by default. SBI peers keep
    # one HTTP/2 connection for many UEs, and requests in flight on a closed
    # connection fail, so the cap is lifted.
    config.keep_alive_max_requests = KEEP_ALIVE_MAX_REQUESTS
    config.include_server_header = False
    config.backlog = LISTEN_BACKLOG
    return config


async def serve(
    app: ASGIApp,
    sock: socket.socket,
    shutdown_event: asyncio.Event,
    *,
    server: ServerStack = DEFAULT_SERVER_STACK,
) -> None:
    """Serve `app` on the bound socket `sock` with the `server` stack until `shutdown_event` is set."""
    logger.debug("serving on %s with %s", socket_uri(sock), server)
    if server == "granian":
        await serve_with_granian(drain_request_body(app), sock, shutdown_event)
        return
    if server != "hypercorn":
        raise ValueError(f"unknown SBI server stack {server!r}; use 'granian' or 'hypercorn'")

    config = hypercorn_config(sock)
    await hypercorn_serve(drain_request_body(app), config, shutdown_trigger=shutdown_event.wait)


async def serve_with_granian(app: ASGIApp, sock: socket.socket, shutdown_event: asyncio.Event) -> None:
    # Imported here so that processes that never serve the SBI (the UE
    # commands) do not load Granian's native module.
    from granian.http import HTTP2Settings

    from msgin5g.sbi.granian_server import serve_granian

    http2 = HTTP2Settings(
        max_concurrent_streams=MAX_CONCURRENT_STREAMS, max_headers_size=MAX_HEADER_LIST_OCTETS
    )
    await serve_granian(
        app,
        sock,
        shutdown_event,
        backlog=LISTEN_BACKLOG,
        graceful_seconds=GRACEFUL_SHUTDOWN_SECONDS,
        http2=http2,
    )


def drain_request_body(app: ASGIApp) -> ASGIApp:
    """Read the rest of the request body before the last response message goes out.

    Hypercorn 0.18 removes an HTTP/2 stream once its response is complete, and
    a DATA frame that arrives for it afterwards raises KeyError and drops the
    whole connection, with the peer's other streams. A response sent before the
    body was read (404, 413, or any early error) would trigger that, so this
    wrapper consumes the remaining body first, up to DRAIN_LIMIT_OCTETS and
    DRAIN_TIMEOUT_SECONDS. Granian 2.8 keeps the connection but resets the
    stream after such a response, and httpx (h2 4.4) then fails the request
    with LocalProtocolError while it still sends the body, so the wrapper
    serves both stacks.
    """

    async def drained(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        body_complete = False

        async def tracked_receive() -> Message:
            nonlocal body_complete
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_complete = True
            return message

        async def send_after_draining(message: Message) -> None:
            nonlocal body_complete
            is_body = message["type"] == "http.response.body"
            if is_body and not message.get("more_body", False) and not body_complete:
                await discard_request_body(tracked_receive)
                body_complete = True
            await send(message)

        await app(scope, tracked_receive, send_after_draining)

    return drained


async def discard_request_body(receive: Receive) -> None:
    discarded = 0
    try:
        async with asyncio.timeout(DRAIN_TIMEOUT_SECONDS):
            while discarded <= DRAIN_LIMIT_OCTETS:
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body", False):
                    return
                discarded += len(message.get("body", b""))
    except TimeoutError:
        pass
    logger.debug("stopped discarding an unread request body after %d octets", discarded)
