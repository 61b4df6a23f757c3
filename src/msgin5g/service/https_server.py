"""The MSGin5G Server over HTTPS with HTTP Digest keyed by K_AF (TS 33.535 B.1.2, TS 24.109 K.2).

The AF authenticates itself with a certificate in TLS 1.2 or 1.3, and the UE
authenticates with HTTP Digest: username = A-KID, password = base64(K_AF), with
K_AF for AF_ID = FQDN || 01 00 01 yy zz and yy zz the cipher suite that this
connection negotiated (`ua.digest`). The MSGin5G-1 JSON bodies are POSTed to
the same paths as over CoAP; each request becomes a CoAP message for
`Msgin5gRouter.handle`, and the CoAP response code is mapped
to an HTTP status.

Hypercorn serves the Starlette application over HTTP/1.1 and HTTP/2 (ALPN).
Hypercorn 0.18 puts no TLS details in the ASGI scope, so this module accepts
the TLS connections itself and runs Hypercorn's connection handler on each,
adding the ASGI TLS extension (`scope["extensions"]["tls"]` with `tls_version`
and `cipher_suite`) for that connection.
"""

import asyncio
import contextlib
import logging
import secrets
import ssl
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from aiocoap import Message
from aiocoap.numbers.codes import Code
from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.asyncio.worker_context import WorkerContext
from hypercorn.config import Config
from hypercorn.utils import wrap_app
from pydantic import Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from msgin5g.crypto.akma import parse_a_kid, ua_tls12
from msgin5g.nf.config import ConfigModel
from msgin5g.sbi.server import GRACEFUL_SHUTDOWN_SECONDS, KEEP_ALIVE_MAX_REQUESTS, bind_socket
from msgin5g.service import messages
from msgin5g.service.config import Limits
from msgin5g.service.kaf import AanfError, KafEntry, KafProvider
from msgin5g.service.router import CoapHandler
from msgin5g.ua import digest

logger = logging.getLogger(__name__)

PROFILE = "https-digest"
ALPN_PROTOCOLS = ["h2", "http/1.1"]

# CoAP response codes of the MSGin5G-1 resources and the HTTP status for each. 2.02
# Deleted has no HTTP counterpart that carries a body, so DEREG success is 200.
HTTP_STATUS_FOR_COAP = {
    Code.CREATED: 201,
    Code.CHANGED: 200,
    Code.DELETED: 200,
    Code.BAD_REQUEST: 400,
    Code.UNAUTHORIZED: 401,
    Code.BAD_OPTION: 400,
    Code.FORBIDDEN: 403,
    Code.NOT_FOUND: 404,
    Code.METHOD_NOT_ALLOWED: 405,
    Code.NOT_ACCEPTABLE: 406,
    Code.CONFLICT: 409,
    Code.REQUEST_ENTITY_TOO_LARGE: 413,
    Code.UNSUPPORTED_CONTENT_FORMAT: 415,
    Code.INTERNAL_SERVER_ERROR: 500,
    Code.SERVICE_UNAVAILABLE: 503,
}

TLS_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}

# Nonces whose K_AF expiry the authenticator remembers (see `KafExpiries`).
MAX_REMEMBERED_NONCES = 10_000


class HttpsDigestOptions(ConfigModel):
    """Options of the `https-digest` profile."""

    # PEM files of the AF's certificate (chain) and private key, for example from `msgin5g certs`.
    certfile: Path
    keyfile: Path
    # Digest algorithms offered, one challenge each, in this order of preference.
    algorithms: tuple[Literal["SHA-256", "MD5"], ...] = Field(default=("SHA-256", "MD5"), min_length=1)
    # Seconds a nonce stays valid; an older one gets a challenge with stale=true.
    nonce_lifetime: float = Field(default=digest.DEFAULT_NONCE_LIFETIME_SECONDS, gt=0, le=86400)
    # OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites stay OpenSSL's defaults).
    ciphers: str = "ECDHE+AESGCM"
    min_tls_version: Literal["1.2", "1.3"] = "1.2"


def server_ssl_context(options: HttpsDigestOptions) -> ssl.SSLContext:
    """Return the TLS server context: the AF's certificate, ALPN h2 and http/1.1, no client certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[options.min_tls_version]
    try:
        context.set_ciphers(options.ciphers)
    except ssl.SSLError as error:
        raise ValueError(
            f"invalid TLS 1.2 cipher list {options.ciphers!r}: {error.reason or error}; use an "
            "OpenSSL cipher list such as 'ECDHE+AESGCM'"
        ) from None
    try:
        context.load_cert_chain(options.certfile, options.keyfile)
    except (OSError, ssl.SSLError) as error:
        raise ValueError(
            f"cannot load the certificate {options.certfile} with key {options.keyfile}: "
            f"{getattr(error, 'strerror', None) or error}; create them with `msgin5g certs`"
        ) from None
    context.set_alpn_protocols(ALPN_PROTOCOLS)
    context.num_tickets = 0
    return context


class KafExpiries:
    """The expiry of the K_AF that first verified each (nonce, A-KID), as seconds since the epoch.

    A UE may reuse a nonce for later requests (nc > 1). Once the K_AF that
    authenticated the nonce has expired, the nonce must not authenticate
    anything else, even though the AF would fetch a fresh K_AF for the A-KID.
    The table is bounded: when full it drops expired entries first, then the
    oldest, and a dropped nonce is simply checked as a new one.
    """

    def __init__(self, clock: Callable[[], float] = time.time, max_entries: int = MAX_REMEMBERED_NONCES) -> None:
        self.clock = clock
        self._max_entries = max_entries
        self._expiries: dict[tuple[str, str], float] = {}

    def __len__(self) -> int:
        return len(self._expiries)

    def remember(self, nonce: str, a_kid: str, expiry: float) -> None:
        """Store the first K_AF expiry seen for (nonce, A-KID); later ones do not extend it."""
        key = (nonce, a_kid)
        if key in self._expiries:
            return
        if len(self._expiries) >= self._max_entries:
            now = self.clock()
            for old in [old for old, value in self._expiries.items() if value <= now]:
                del self._expiries[old]
        if len(self._expiries) >= self._max_entries:
            # Dicts keep insertion order, so this drops the oldest entry.
            self._expiries.pop(next(iter(self._expiries)))
        self._expiries[key] = expiry

    def expired(self, nonce: str, a_kid: str) -> float | None:
        """Return the passed expiry of (nonce, A-KID) and forget it, or None while it is valid."""
        key = (nonce, a_kid)
        expiry = self._expiries.get(key)
        if expiry is None or self.clock() < expiry:
            return None
        del self._expiries[key]
        return expiry


class DigestAuthenticator:
    """Decides the Authorization of one HTTP request: the UE's KafEntry, or the error response."""

    def __init__(
        self, kaf: KafProvider, options: HttpsDigestOptions, nonces: digest.NonceSource | None = None
    ) -> None:
        self._kaf = kaf
        self._algorithms = options.algorithms
        self._nonces = nonces or digest.NonceSource(lifetime=options.nonce_lifetime)
        self.kaf_expiries = KafExpiries()
        self.realm = digest.akma_realm(kaf.fqdn)

    def challenge_response(self, detail: str, *, stale: bool = False) -> Response:
        """Return 401 with one Digest challenge per configured algorithm."""
        nonce = self._nonces.issue(self.realm)
        response = PlainTextResponse(detail, status_code=401)
        for algorithm in self._algorithms:
            challenge = digest.Challenge(realm=self.realm, nonce=nonce, algorithm=algorithm, stale=stale)
            response.headers.append("WWW-Authenticate", challenge.to_header())
        return response

    async def authenticate(self, request: Request, request_id: str) -> KafEntry | Response:
        if not digest.has_akma_product(request.headers.get("user-agent")):
            logger.info("request %s rejected: no %s product in User-Agent", request_id, digest.USER_AGENT_PRODUCT)
            return PlainTextResponse(
                f"this server authenticates UEs with AKMA only: add the product token "
                f"{digest.USER_AGENT_PRODUCT!r} to the User-Agent header",
                status_code=403,
            )

        header = request.headers.get("authorization")
        if header is None or not header.lower().startswith("digest"):
            return self.challenge_response("authenticate with HTTP Digest: username A-KID, password base64(K_AF)")
        try:
            credentials = digest.parse_authorization(header)
        except digest.DigestError as error:
            logger.info("request %s rejected: invalid Authorization: %s", request_id, error)
            return PlainTextResponse(f"invalid Authorization header: {error}", status_code=400)

        rejection = self._check_parameters(credentials, request, request_id)
        if rejection is not None:
            return rejection
        rejection = self._check_kaf_expiry(credentials, request_id)
        if rejection is not None:
            return rejection

        outcome = await self._verify(credentials, request, request_id)
        if isinstance(outcome, KafEntry):
            self.kaf_expiries.remember(credentials.nonce, credentials.username, outcome.expiry.timestamp())
        return outcome

    def _check_kaf_expiry(self, credentials: digest.Credentials, request_id: str) -> Response | None:
        """Challenge again a nonce whose K_AF expired (TS 33.535 clause 6: K_AF has a lifetime).

        The K_AF cache has dropped the expired entry, so the answer to the new
        challenge makes the AF request K_AF from the AAnF again.
        """
        expiry = self.kaf_expiries.expired(credentials.nonce, credentials.username)
        if expiry is None:
            return None
        logger.info(
            "request %s: the K_AF of this nonce expired at %s; sending a new challenge",
            request_id,
            datetime.fromtimestamp(expiry, UTC).isoformat(),
        )
        return self.challenge_response(
            "K_AF expired; answer the new challenge with the current K_AF, or run primary "
            "authentication again if the server then rejects the A-KID"
        )

    def _check_parameters(self, credentials: digest.Credentials, request: Request, request_id: str) -> Response | None:
        if credentials.realm != self.realm:
            logger.info("request %s: credentials for realm %r, not this AF's", request_id, credentials.realm)
            return self.challenge_response(f"use the realm {self.realm!r} of this AF")
        if credentials.algorithm not in self._algorithms or credentials.qop != digest.QOP_AUTH:
            return self.challenge_response(
                f"use qop 'auth' and one of the algorithms {', '.join(self._algorithms)}"
            )
        target = request.scope.get("raw_path", b"").decode("latin-1")
        if request.url.query:
            target += "?" + request.url.query
        if credentials.uri != target:
            logger.info("request %s rejected: Digest uri differs from the request target", request_id)
            return PlainTextResponse(
                f"the Digest uri {credentials.uri!r} must equal the request target {target!r}",
                status_code=400,
            )

        status = self._nonces.check(credentials.nonce, self.realm)
        if status is digest.NonceStatus.STALE:
            logger.info("request %s: stale nonce, sending a new one", request_id)
            return self.challenge_response("the nonce expired; answer the new challenge", stale=True)
        if status is digest.NonceStatus.INVALID:
            logger.info("request %s: nonce not issued by this server", request_id)
            return self.challenge_response("the nonce was not issued by this server")
        return None

    async def _verify(self, credentials: digest.Credentials, request: Request, request_id: str) -> KafEntry | Response:
        cipher_suite = _connection_cipher_suite(request)
        if cipher_suite is None:
            logger.error("request %s: the TLS cipher suite of the connection is unknown", request_id)
            return PlainTextResponse("internal server error", status_code=500)
        ua_protocol_id = ua_tls12(cipher_suite)

        a_kid = credentials.username
        logger.debug("request %s presents A-KID %s (cipher suite 0x%04x)", request_id, a_kid, cipher_suite)
        try:
            parse_a_kid(a_kid)
        except ValueError:
            return self._unknown_a_kid(request_id, "the username is not an A-KID in this deployment's layout")
        try:
            entry = await self._kaf.obtain(a_kid, ua_protocol_id)
        except AanfError as error:
            logger.warning("request %s: K_AF not available: %s", request_id, error)
            return PlainTextResponse(
                "the server could not obtain K_AF from the AAnF; retry later",
                status_code=503,
                headers={"Retry-After": "5"},
            )
        if entry is None:
            return self._unknown_a_kid(request_id, "the AAnF has no AKMA context for the A-KID")

        password = digest.digest_password(entry.k_af)
        if not digest.verify_response(credentials, password=password, method=request.method):
            logger.info("request %s rejected: the Digest response does not verify", request_id)
            return self.challenge_response(
                "the Digest response does not verify: K_AF differs (check the AF FQDN and the TLS "
                "cipher suite in AF_ID, or run primary authentication again)"
            )
        return entry

    @staticmethod
    def _unknown_a_kid(request_id: str, reason: str) -> Response:
        # TS 33.535 B.1.2: when the AF cannot obtain K_AF, its error response does
        # not contain the AKMA realm.
        # NOTE: RFC 9110 clause 15.5.2 requires a challenge in every 401; this 401
        # carries none, so that the UE cannot mistake it for an AKMA challenge.
        logger.info("request %s rejected: %s", request_id, reason)
        return PlainTextResponse(
            f"{reason}; run primary authentication again and derive a new A-KID and K_AF",
            status_code=401,
        )


def _connection_cipher_suite(request: Request) -> int | None:
    tls = request.scope.get("extensions", {}).get("tls") or {}
    return tls.get("cipher_suite")


class RegistrationEndpoint:
    """The Starlette application: Digest authentication, then every MSGin5G-1 request through the router."""

    def __init__(
        self, authenticator: DigestAuthenticator, service: CoapHandler, limits: Limits
    ) -> None:
        self._authenticator = authenticator
        self._service = service
        self._max_body = limits.max_message_size
        route = Route("/{path:path}", self._handle, methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
        self.app = Starlette(routes=[route])

    async def _handle(self, request: Request) -> Response:
        request_id = secrets.token_hex(4)
        # The body is read first, so that no 401 goes out while a large body is still arriving.
        body = await _read_body(request, self._max_body)
        if body is None:
            return PlainTextResponse(f"the body exceeds {self._max_body} octets", status_code=413)

        outcome = await self._authenticator.authenticate(request, request_id)
        if isinstance(outcome, Response):
            return outcome
        try:
            response = await self._service.handle(_coap_request(request, body), outcome.ue_id, request_id)
        except Exception:
            logger.exception("request %s failed", request_id)
            return PlainTextResponse("internal server error", status_code=500)
        return _http_response(response)


async def _read_body(request: Request, limit: int) -> bytes | None:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def _coap_request(request: Request, body: bytes) -> Message:
    method = Code.__members__.get(request.method, Code.EMPTY)
    message = Message(code=method, payload=body)
    message.opt.uri_path = tuple(part for part in request.url.path.split("/") if part)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        message.opt.content_format = messages.CONTENT_FORMAT_JSON
    return message


def _http_response(response: Message) -> Response:
    status = HTTP_STATUS_FOR_COAP.get(response.code)
    if status is None:
        status = 500 if response.code.is_server_error() else 400
    media_type = (
        "application/json"
        if response.opt.content_format == messages.CONTENT_FORMAT_JSON
        else "text/plain; charset=utf-8"
    )
    return Response(bytes(response.payload), status_code=status, media_type=media_type)


class _TlsScope:
    """Hypercorn application wrapper that adds the ASGI TLS extension of one connection."""

    def __init__(self, app: Any, tls: dict[str, Any]) -> None:
        self._app = app
        self._tls = tls

    async def __call__(self, scope: dict, receive: Any, send: Any, sync_spawn: Any, call_soon: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            scope.setdefault("extensions", {})["tls"] = self._tls
        await self._app(scope, receive, send, sync_spawn, call_soon)


def _tls_extension(ssl_object: ssl.SSLObject) -> dict[str, Any]:
    name = ssl_object.cipher()[0]
    return {
        "server_cert": None,
        "client_cert_chain": [],
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": digest.tls_version_code(ssl_object.version()),
        "cipher_suite": digest.cipher_suite_code(name),
    }


def _hypercorn_config() -> Config:
    # The listener accepts connections itself, so the config binds nothing and
    # only sets how Hypercorn runs HTTP on each connection.
    config = Config()
    config.bind = []
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = GRACEFUL_SHUTDOWN_SECONDS
    config.keep_alive_max_requests = KEEP_ALIVE_MAX_REQUESTS
    config.include_server_header = False
    return config


class HttpsListener:
    """The listening socket and its connections; create it with `start_https_listener`."""

    def __init__(self, app: Starlette, context: ssl.SSLContext, limits: Limits) -> None:
        self._app = wrap_app(app, 0, "asgi")
        self._context = context
        self._limits = limits
        self._server: asyncio.Server | None = None
        self._hypercorn_config = _hypercorn_config()
        self._worker = WorkerContext(None)
        self._connections: set[asyncio.Task[None]] = set()
        self.uri = ""

    async def start(self, host: str, port: int) -> None:
        sock = bind_socket(host, port)
        self._server = await asyncio.start_server(
            self._accept,
            sock=sock,
            ssl=self._context,
            ssl_handshake_timeout=self._limits.handshake_timeout,
        )
        bound_host, bound_port = sock.getsockname()[:2]
        shown_host = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.uri = f"https://{shown_host}:{bound_port}"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._connections) >= self._limits.max_connections:
            logger.warning("connection refused: the limit of %d connections is reached", self._limits.max_connections)
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()
            return

        # asyncio.start_server runs each connection in its own task.
        task = asyncio.current_task()
        self._connections.add(task)
        try:
            ssl_object = writer.get_extra_info("ssl_object")
            app = _TlsScope(self._app, _tls_extension(ssl_object))
            await TCPServer(app, asyncio.get_running_loop(), self._hypercorn_config, self._worker, {}, reader, writer)
        except Exception:
            logger.exception("HTTPS connection failed")
        finally:
            self._connections.discard(task)

    @property
    def active_connections(self) -> int:
        return len(self._connections)

    async def close(self) -> None:
        """Stop listening, let requests in progress finish for a grace period, then end the rest."""
        if self._server is not None:
            self._server.close()
        await self._worker.terminated.set()
        tasks = list(self._connections)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self._hypercorn_config.graceful_timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), timeout=1)
        logger.info("HTTPS listener %s stopped", self.uri)


async def start_https_listener(
    host: str,
    port: int,
    *,
    kaf: KafProvider,
    service: CoapHandler,
    limits: Limits,
    options: HttpsDigestOptions,
    nonces: digest.NonceSource | None = None,
) -> HttpsListener:
    """Listen for HTTPS on host:port (port 0 picks a free port) with Digest keyed by K_AF.

    `nonces` replaces the nonce source built from `options.nonce_lifetime`, for
    servers that share a nonce secret.
    """
    context = server_ssl_context(options)
    endpoint = RegistrationEndpoint(DigestAuthenticator(kaf, options, nonces), service, limits)
    listener = HttpsListener(endpoint.app, context, limits)
    await listener.start(host, port)
    logger.info("MSGin5G Server for AF %s listening on %s (HTTPS, HTTP Digest)", kaf.fqdn, listener.uri)
    return listener
