"""The NEF's OAuth 2.0 token endpoint: `POST /oauth2/token` with the client credentials grant.

RFC 6749 clause 4.4: the AF authenticates with its client id and secret,
either with HTTP Basic (clause 2.3.1, which every server must support) or as
`client_id` and `client_secret` in the form body, and gets a bearer access
token for the scopes it requests, or for all its configured scopes when it
names none. The form members and the response bodies are those of TS 29.510
AccessTokenReq, AccessTokenRsp and AccessTokenErr, except that an AF is not a
network function and so sends no nfInstanceId.
"""

import base64
import binascii
import hmac
import json
import logging
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote_plus

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from msgin5g.nf.nef.config import AfClient
from msgin5g.sbi.app import read_limited_body, sbi_route
from msgin5g.sbi.oauth import TokenIssuer, format_scope, parse_scope
from msgin5g.sbi.problem import SbiError

logger = logging.getLogger(__name__)

TOKEN_PATH = "/oauth2/token"
FORM = "application/x-www-form-urlencoded"
CLIENT_CREDENTIALS = "client_credentials"
REALM = "3gpp-akma"
# TS 29.510 requires these headers on the token responses (RFC 6749 clause 5.1).
NO_STORE_HEADERS = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# Compared against when the client id is unknown, so both cases cost the same.
UNKNOWN_CLIENT_SECRET = b"\x00" * 32


class TokenError(Exception):
    """An RFC 6749 clause 5.2 error; `code` is the AccessTokenErr.error value."""

    def __init__(self, status: int, code: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.code = code
        self.description = description


@dataclass(frozen=True)
class ClientCredentials:
    client_id: str
    client_secret: str


def token_routes(clients: list[AfClient], issuer: TokenIssuer, audience: str) -> list[Route]:
    """Build the token endpoint for the AFs in `clients`."""
    by_id = {client.client_id: client for client in clients}

    async def access_token_request(request: Request) -> Response:
        try:
            form = await read_form(request)
            client = authenticate_client(by_id, client_credentials(request, form))
            check_grant_type(form)
            scopes = granted_scopes(client, form.get("scope"))
        except TokenError as error:
            return token_error_response(request, error)

        token = issuer.issue(client.client_id, scopes, audience)
        logger.info("issued an access token to client %s for scope %s", client.client_id, format_scope(scopes))
        body = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": issuer.lifetime,
            "scope": format_scope(scopes),
        }
        return Response(json.dumps(body), media_type="application/json", headers=NO_STORE_HEADERS)

    return [sbi_route(TOKEN_PATH, access_token_request, ["POST"], operation="AccessTokenRequest")]


async def read_form(request: Request) -> dict[str, str]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM:
        raise TokenError(400, "invalid_request", f"the body must be {FORM}, not {content_type or 'absent'}")
    try:
        raw = (await read_limited_body(request)).decode("ascii")
    except SbiError as error:
        raise TokenError(400, "invalid_request", error.detail) from None
    except UnicodeDecodeError:
        raise TokenError(400, "invalid_request", "the form body must be ASCII (percent-encoded)") from None

    form: dict[str, str] = {}
    for name, value in parse_qsl(raw, keep_blank_values=True):
        # RFC 6749 clause 3.2: a parameter must not appear more than once.
        if name in form:
            raise TokenError(400, "invalid_request", f"parameter {name} appears more than once")
        form[name] = value
    return form


def client_credentials(request: Request, form: dict[str, str]) -> ClientCredentials:
    """Read HTTP Basic credentials, else client_id and client_secret from the form."""
    authorization = request.headers.get("authorization")
    if authorization is not None:
        return basic_credentials(authorization)
    if "client_id" in form and "client_secret" in form:
        return ClientCredentials(form["client_id"], form["client_secret"])
    raise TokenError(
        401,
        "invalid_client",
        "no client credentials: send HTTP Basic authentication, or client_id and client_secret",
    )


def basic_credentials(authorization: str) -> ClientCredentials:
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        raise TokenError(401, "invalid_client", f"authorization scheme {scheme!r} is not Basic")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise TokenError(401, "invalid_client", "the Basic credentials are not base64 of UTF-8") from None
    client_id, separator, secret = decoded.partition(":")
    if not separator:
        raise TokenError(401, "invalid_client", "the Basic credentials lack the ':' separator")
    # RFC 6749 clause 2.3.1: both are form-urlencoded before the Basic encoding.
    return ClientCredentials(unquote_plus(client_id), unquote_plus(secret))


def authenticate_client(clients: dict[str, AfClient], credentials: ClientCredentials) -> AfClient:
    client = clients.get(credentials.client_id)
    expected = UNKNOWN_CLIENT_SECRET if client is None else client.client_secret.get_secret_value().encode()
    matches = hmac.compare_digest(expected, credentials.client_secret.encode())
    if client is None or not matches:
        raise TokenError(401, "invalid_client", "client authentication failed: unknown client_id or wrong secret")
    return client


def check_grant_type(form: dict[str, str]) -> None:
    grant_type = form.get("grant_type")
    if grant_type is None:
        raise TokenError(400, "invalid_request", "grant_type is missing; send grant_type=client_credentials")
    if grant_type != CLIENT_CREDENTIALS:
        raise TokenError(
            400, "unsupported_grant_type", f"grant_type {grant_type!r} is not supported; use client_credentials"
        )


def granted_scopes(client: AfClient, requested: str | None) -> frozenset[str]:
    """Return the requested scopes, or all the client's scopes when it requests none."""
    allowed = frozenset(client.scopes)
    if requested is None:
        return allowed
    try:
        scopes = parse_scope(requested)
    except ValueError as error:
        raise TokenError(400, "invalid_scope", str(error)) from None
    extra = scopes - allowed
    if not scopes or extra:
        raise TokenError(
            400,
            "invalid_scope",
            f"scope {format_scope(extra) or '(empty)'} is not granted to client {client.client_id}; "
            f"its scopes are {format_scope(allowed)}",
        )
    return scopes


def token_error_response(request: Request, error: TokenError) -> Response:
    peer = f"{request.client.host}:{request.client.port}" if request.client else "unknown peer"
    logger.info("rejected AccessTokenRequest from %s: %d %s: %s", peer, error.status, error.code, error.description)
    headers = dict(NO_STORE_HEADERS)
    if error.status == 401:
        headers["WWW-Authenticate"] = f'Basic realm="{REALM}"'
    body = {"error": error.code, "error_description": error.description}
    return Response(json.dumps(body), status_code=error.status, media_type="application/json", headers=headers)
