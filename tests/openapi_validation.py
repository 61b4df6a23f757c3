"""Check every SBI request and response that crosses the wire against the 3GPP OpenAPI files.

`TrafficRecorder` wraps a network function's ASGI application before it is
served: it records each exchange as the server received and sent it over
HTTP/2. The `sbi_traffic` fixture then validates every recorded exchange with
openapi-core at the end of the test. Each OpenAPI file is loaded once per
test session.

Where openapi-core cannot apply a file as written, the check falls back to
jsonschema on the component schema, resolved through a `referencing`
registry of all the files. A schema that cannot be found fails the test.
The fallbacks are:

- the `val-tgt-ue` query parameter of ss-upr: the file declares an object
  without `content`, so openapi-core expects the exploded form
  (`?valUeId=...`). This project sends it as JSON text, which is checked
  against the ValTargetUe schema;
- the NEF's OAuth 2.0 token endpoint (`/oauth2/token`, TS29510_Nnrf_AccessToken.yaml):
  an AF is not a network function and sends no nfInstanceId, so the form is
  checked member by member against the AccessTokenReq properties, with
  grant_type required. A 401 carries the RFC 6749 clause 5.2 error body, so
  both 400 and 401 bodies are checked against AccessTokenErr, and a 200
  body against AccessTokenRsp with its Cache-Control and Pragma headers;
- error responses with a status that the file does not declare: 405 from
  the HTTP layer, and the AUSF's 504 UPSTREAM_SERVER_ERROR when the UDM is
  unreachable (the TS 29.509 file declares no 504). Their body is checked
  against ProblemDetails.

A request rejected with 400, 405, 413 or 415 failed on its syntax, and a
request rejected with 404 RESOURCE_URI_STRUCTURE_NOT_FOUND names no
operation, so only their responses are checked. A request rejected with 401 or
403 and a WWW-Authenticate header failed on its bearer token before the
server read its body, so only its response is checked too. Every other
request must be valid.

The module also runs applications on loopback for the tests (`serving`).
"""

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
import yaml
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_schema_validator import OAS30Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4
from werkzeug.datastructures import Headers, ImmutableMultiDict

from msgin5g.sbi.server import bind_socket, serve, socket_uri

# API root -> the OpenAPI file that defines it.
SPEC_FILES = {
    "/nudm-ueau/v1": "TS29503_Nudm_UEAU.yaml",
    "/nausf-auth/v1": "TS29509_Nausf_UEAuthentication.yaml",
    "/naanf-akma/v1": "TS29535_Naanf_AKMA.yaml",
    "/ss-upr/v1": "TS29549_SS_UserProfileRetrieval.yaml",
    "/3gpp-akma/v1": "TS29522_AKMA.yaml",
    "/nudm-sdm/v2": "TS29503_Nudm_SDM.yaml",
}
TOKEN_PATH = "/oauth2/token"
TOKEN_FILE = "TS29510_Nnrf_AccessToken.yaml"
COMMON_DATA_FILE = "TS29571_CommonData.yaml"

SYNTAX_REJECTIONS = frozenset({400, 405, 413, 415})
# (API root, status) pairs of error responses that the file does not declare.
UNDECLARED_ERROR_STATUSES = frozenset({("/nausf-auth/v1", 504)})
HTTP_LAYER_STATUSES = frozenset({405})



@dataclass
class Exchange:
    """One request and its response, as the server saw them."""

    method: str
    host_url: str
    path: str
    query: str
    request_headers: dict[str, str]
    request_body: bytes
    status: int = 0
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: bytes = b""

    def describe(self) -> str:
        return f"{self.method} {self.path} -> {self.status}"

    def response_json(self) -> Any:
        return json.loads(self.response_body)


class TrafficRecorder:
    """Record the HTTP exchanges of ASGI applications."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []

    def wrap(self, app: Callable) -> Callable:
        async def recorded(scope: dict, receive: Callable, send: Callable) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return

            host, port = scope["server"]
            exchange = Exchange(
                method=scope["method"],
                host_url=f"{scope['scheme']}://{host}:{port}",
                path=scope["path"],
                query=scope["query_string"].decode("latin-1"),
                request_headers={k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]},
                request_body=b"",
            )

            async def receive_and_record() -> dict:
                message = await receive()
                if message["type"] == "http.request":
                    exchange.request_body += message.get("body", b"")
                return message

            async def send_and_record(message: dict) -> None:
                if message["type"] == "http.response.start":
                    exchange.status = message["status"]
                    exchange.response_headers = {
                        k.decode("latin-1"): v.decode("latin-1") for k, v in message.get("headers", [])
                    }
                elif message["type"] == "http.response.body":
                    exchange.response_body += message.get("body", b"")
                await send(message)

            await app(scope, receive_and_record, send_and_record)
            self.exchanges.append(exchange)

        return recorded


@dataclass
class OpenApiRequest:
    """A request in the shape openapi-core reads (its Request protocol)."""

    host_url: str
    path: str
    method: str
    body: bytes | None
    content_type: str
    parameters: RequestParameters


@dataclass
class OpenApiResponse:
    status_code: int
    content_type: str
    headers: Headers
    data: bytes


class OpenApiValidator:
    """Validate recorded exchanges against the OpenAPI files in one folder."""

    def __init__(self, openapi_dir: Path) -> None:
        self.openapi_dir = openapi_dir
        needed = [*SPEC_FILES.values(), COMMON_DATA_FILE, TOKEN_FILE]
        missing = [name for name in needed if not (openapi_dir / name).is_file()]
        if missing:
            raise FileNotFoundError(f"OpenAPI files missing from {openapi_dir}: {', '.join(missing)}")

        config = Config(
            extra_media_type_deserializers={
                "application/problem+json": json.loads,
                # openapi-core looks the deserializer up by the lowercased name.
                "application/3gppHal+json": json.loads,
                "application/3gpphal+json": json.loads,
            }
        )
        self.specs = {
            root: OpenAPI.from_file_path(str(openapi_dir / name), config=config)
            for root, name in SPEC_FILES.items()
        }
        self.registry = build_registry(openapi_dir)
        self.checked = 0

    def component_validator(self, file_name: str, schema_name: str) -> OAS30Validator:
        """Return a validator for components/schemas/<schema_name> of a file; fail if it is absent."""
        uri = (self.openapi_dir / file_name).resolve().as_uri()
        pointer = f"#/components/schemas/{schema_name}"
        self.registry.resolver(base_uri=uri).lookup(pointer)  # raises if the schema is missing
        return OAS30Validator(
            {"$ref": uri + pointer},
            registry=self.registry,
            format_checker=OAS30Validator.FORMAT_CHECKER,
        )

    def validate_problem_details(self, exchange: Exchange) -> None:
        validator = self.component_validator(COMMON_DATA_FILE, "ProblemDetails")
        validator.validate(exchange.response_json())

    def validate(self, exchange: Exchange) -> None:
        root = api_root_of(exchange.path)
        try:
            if exchange.path == TOKEN_PATH:
                self._validate_token_exchange(exchange)
            elif is_unknown_uri(exchange):
                self.validate_problem_details(exchange)
            else:
                if exchange.status not in SYNTAX_REJECTIONS and not is_token_rejection(exchange):
                    self._validate_request(root, exchange)
                self._validate_response(root, exchange)
        except Exception as error:
            raise AssertionError(
                f"{exchange.describe()} does not match the OpenAPI file: {error}"
            ) from error
        self.checked += 1

    def _validate_token_exchange(self, exchange: Exchange) -> None:
        if exchange.status not in SYNTAX_REJECTIONS:
            form = dict(parse_qsl(exchange.request_body.decode("ascii"), keep_blank_values=True))
            if "grant_type" not in form:
                raise AssertionError("the token request has no grant_type")
            for name in ("grant_type", "scope", "nfInstanceId"):
                if name in form:
                    schema = f"AccessTokenReq/properties/{name}"
                    self.component_validator(TOKEN_FILE, schema).validate(form[name])

        body = exchange.response_json()
        if exchange.status == 200:
            self.component_validator(TOKEN_FILE, "AccessTokenRsp").validate(body)
            if exchange.response_headers.get("cache-control") != "no-store":
                raise AssertionError("a token response needs Cache-Control: no-store")
            if exchange.response_headers.get("pragma") != "no-cache":
                raise AssertionError("a token response needs Pragma: no-cache")
        elif exchange.status in (400, 401):
            self.component_validator(TOKEN_FILE, "AccessTokenErr").validate(body)
        else:
            self.validate_problem_details(exchange)

    def _validate_request(self, root: str | None, exchange: Exchange) -> None:
        if root is None:
            raise AssertionError("no API of the OpenAPI files serves this path")
        if root == "/ss-upr/v1":
            self._validate_val_services_query(exchange)
            return
        self.specs[root].validate_request(openapi_request(exchange))

    def _validate_val_services_query(self, exchange: Exchange) -> None:
        query = dict(parse_qsl(exchange.query))
        if "val-tgt-ue" not in query:
            raise AssertionError("the mandatory query parameter val-tgt-ue is missing")
        target = json.loads(query["val-tgt-ue"])
        self.component_validator(SPEC_FILES["/ss-upr/v1"], "ValTargetUe").validate(target)

    def _validate_response(self, root: str | None, exchange: Exchange) -> None:
        undeclared = (root, exchange.status) in UNDECLARED_ERROR_STATUSES
        if root is None or exchange.status in HTTP_LAYER_STATUSES or undeclared:
            self.validate_problem_details(exchange)
            return
        self.specs[root].validate_response(openapi_request(exchange), openapi_response(exchange))


def is_unknown_uri(exchange: Exchange) -> bool:
    """Return whether the server responded that no resource exists at this URI."""
    if exchange.status != 404 or not exchange.response_body:
        return False
    return exchange.response_json().get("cause") == "RESOURCE_URI_STRUCTURE_NOT_FOUND"


def is_token_rejection(exchange: Exchange) -> bool:
    """Return whether the server rejected the request's bearer token (RFC 6750 clause 3)."""
    challenge = exchange.response_headers.get("www-authenticate", "")
    return exchange.status in (401, 403) and challenge.startswith("Bearer")


def api_root_of(path: str) -> str | None:
    for root in SPEC_FILES:
        if path.startswith(root + "/"):
            return root
    return None


def openapi_request(exchange: Exchange) -> OpenApiRequest:
    query = ImmutableMultiDict(parse_qsl(exchange.query, keep_blank_values=True))
    headers = Headers(exchange.request_headers)
    return OpenApiRequest(
        host_url=exchange.host_url,
        path=exchange.path,
        method=exchange.method.lower(),
        body=exchange.request_body or None,
        content_type=exchange.request_headers.get("content-type", "").lower(),
        parameters=RequestParameters(query=query, header=headers),
    )


def openapi_response(exchange: Exchange) -> OpenApiResponse:
    return OpenApiResponse(
        status_code=exchange.status,
        # Kept as sent: openapi-core matches media types case-sensitively, and
        # the 3GPP files spell application/3gppHal+json with capitals.
        content_type=exchange.response_headers.get("content-type", ""),
        headers=Headers(exchange.response_headers),
        data=exchange.response_body,
    )


def build_registry(openapi_dir: Path) -> Registry:
    """A registry that loads each file of the folder on first use, under its file:// URI."""

    def retrieve(uri: str) -> Resource:
        path = Path(urlsplit(uri).path)
        if path.parent != openapi_dir.resolve() or not path.is_file():
            raise FileNotFoundError(f"$ref target {uri} is not a file of {openapi_dir}")
        return Resource.from_contents(load_yaml(path), default_specification=DRAFT4)

    return Registry(retrieve=retrieve)


@cache
def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def openapi_validator(shared_dir: Path) -> OpenApiValidator:
    return OpenApiValidator(shared_dir / "openapi")


@pytest.fixture
def sbi_traffic(openapi_validator: OpenApiValidator) -> TrafficRecorder:
    """A recorder whose exchanges are all validated when the test ends."""
    recorder = TrafficRecorder()
    yield recorder
    if not recorder.exchanges:
        raise AssertionError("the test sent no SBI request through the recorder")
    for exchange in recorder.exchanges:
        openapi_validator.validate(exchange)


@asynccontextmanager
async def serving(app: Callable, recorder: TrafficRecorder) -> AsyncIterator[str]:
    """Serve `app` over HTTP/2 on a free loopback port; yield its http:// URI."""
    sock = bind_socket("127.0.0.1", 0)
    shutdown = asyncio.Event()
    server = asyncio.create_task(serve(recorder.wrap(app), sock, shutdown))
    try:
        yield socket_uri(sock)
    finally:
        shutdown.set()
        await server
        sock.close()


def h2c_client(base_uri: str) -> httpx.AsyncClient:
    """An HTTP/2 client with prior knowledge, as a peer network function would use."""
    return httpx.AsyncClient(base_url=base_uri, http1=False, http2=True, timeout=5.0)

