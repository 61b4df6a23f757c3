"""OAuth 2.0 bearer access tokens: issue and verify HMAC-signed tokens (RFC 6749, RFC 6750).

A token is a JWS in compact serialization (RFC 7515) with the HS256
algorithm (RFC 7518 clause 3.2), which is the form TS 29.510 gives for
AccessTokenRsp.access_token. Its claims are those of TS 29.510
AccessTokenClaims that apply here: `iss`, `sub` (the client id), `aud`,
`scope` (space-separated, RFC 6749 clause 3.3) and `exp` (seconds since the
epoch), plus `iat`.

Issuer and verifier share one signing key. NOTE: this project has no NRF, so
the key is configured at both ends by the operator; the NRF would sign
tokens with its own key in a full 5G core.
"""

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import Response

from msgin5g.sbi.app import reject
from msgin5g.sbi.problem import SbiError

# RFC 6749 clause 3.3 scope-token, narrowed to the pattern of TS 29.510 AccessTokenReq.scope.
SCOPE_TOKEN_PATTERN = re.compile(r"[a-zA-Z0-9_:-]+")
MIN_SIGNING_KEY_OCTETS = 32
JWS_HEADER = {"alg": "HS256", "typ": "JWT"}
# Accepted clock difference between issuer and verifier, in seconds.
CLOCK_SKEW_SECONDS = 5


class InvalidTokenError(Exception):
    """The bearer token is malformed, not signed with the expected key, expired or for another audience.

    The message names the failed check and never contains the token.
    """


@dataclass(frozen=True)
class TokenClaims:
    """Verified claims of an access token."""

    issuer: str
    client_id: str
    audience: str
    scopes: frozenset[str]
    expires_at: int

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


def parse_scope(value: str) -> frozenset[str]:
    """Split a space-separated scope string; raise ValueError naming a bad scope token."""
    tokens = value.split(" ") if value else []
    for token in tokens:
        if not SCOPE_TOKEN_PATTERN.fullmatch(token):
            raise ValueError(
                f"scope token {token!r} is invalid: use letters, digits, '_', ':' and '-', "
                "separated by single spaces"
            )
    return frozenset(tokens)


def format_scope(scopes: Collection[str]) -> str:
    return " ".join(sorted(scopes))


def check_signing_key(key: bytes) -> bytes:
    if len(key) < MIN_SIGNING_KEY_OCTETS:
        raise ValueError(
            f"the token signing key must have at least {MIN_SIGNING_KEY_OCTETS} octets, "
            f"got {len(key)}"
        )
    return key


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidTokenError("a token part is not base64url") from None


def _sign(key: bytes, signing_input: bytes) -> bytes:
    return hmac.new(key, signing_input, hashlib.sha256).digest()


@dataclass
class TokenIssuer:
    """Issues access tokens signed with `signing_key` that last `lifetime` seconds."""

    signing_key: bytes = field(repr=False)
    issuer: str
    lifetime: int = 3600
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        check_signing_key(self.signing_key)
        if self.lifetime <= 0:
            raise ValueError(f"token lifetime must be positive, got {self.lifetime} s")

    def issue(self, client_id: str, scopes: Collection[str], audience: str) -> str:
        """Return a compact JWS whose claims grant `scopes` to `client_id` for `audience`."""
        now = int(self.clock())
        claims = {
            "iss": self.issuer,
            "sub": client_id,
            "aud": audience,
            "scope": format_scope(scopes),
            "iat": now,
            "exp": now + self.lifetime,
        }
        header = _b64url(json.dumps(JWS_HEADER, separators=(",", ":")).encode())
        payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{header}.{payload}".encode("ascii")
        return f"{header}.{payload}.{_b64url(_sign(self.signing_key, signing_input))}"


@dataclass
class TokenVerifier:
    """Verifies tokens signed with `signing_key` for `audience`."""

    signing_key: bytes = field(repr=False)
    audience: str
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        check_signing_key(self.signing_key)

    def verify(self, token: str) -> TokenClaims:
        """Check the signature (in constant time), the audience and the expiry; return the claims."""
        parts = token.split(".")
        if len(parts) != 3:
            raise InvalidTokenError("the token is not a JWS in compact serialization")
        header_part, payload_part, signature_part = parts

        expected = _sign(self.signing_key, f"{header_part}.{payload_part}".encode("ascii"))
        if not hmac.compare_digest(expected, _b64url_decode(signature_part)):
            raise InvalidTokenError("the token signature does not verify")

        header = _json_part(header_part)
        if header.get("alg") != "HS256":
            raise InvalidTokenError("the token algorithm is not HS256")
        claims = _json_part(payload_part)
        return self._check_claims(claims)

    def _check_claims(self, claims: dict) -> TokenClaims:
        try:
            issuer, client_id, audience = str(claims["iss"]), str(claims["sub"]), claims["aud"]
            expires_at, scope = int(claims["exp"]), str(claims["scope"])
        except (KeyError, TypeError, ValueError):
            raise InvalidTokenError("the token lacks iss, sub, aud, scope or exp") from None

        audiences = audience if isinstance(audience, list) else [audience]
        if self.audience not in audiences:
            raise InvalidTokenError(f"the token is not for audience {self.audience}")
        if self.clock() >= expires_at + CLOCK_SKEW_SECONDS:
            raise InvalidTokenError("the token has expired; request a new one")
        try:
            scopes = parse_scope(scope)
        except ValueError as error:
            raise InvalidTokenError(str(error)) from None
        return TokenClaims(issuer, client_id, self.audience, scopes, expires_at)


def _json_part(part: str) -> dict:
    try:
        value = json.loads(_b64url_decode(part))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidTokenError("a token part is not JSON") from None
    if not isinstance(value, dict):
        raise InvalidTokenError("a token part is not a JSON object")
    return value


def bearer_token(authorization: str | None) -> str | None:
    """Return the token of an `Authorization: Bearer <token>` header (RFC 6750 clause 2.1), or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def bearer_challenge(realm: str, error: str | None = None, *, scope: str | None = None) -> str:
    """Build a WWW-Authenticate value for the Bearer scheme (RFC 6750 clause 3)."""
    challenge = f'Bearer realm="{realm}"'
    if error is not None:
        challenge += f', error="{error}"'
    if scope is not None:
        challenge += f', scope="{scope}"'
    return challenge


class BearerError(SbiError):
    """A 401 or 403 for a request whose bearer token is missing, invalid or lacks a scope.

    `challenge` is the WWW-Authenticate value that the response carries.
    """

    def __init__(self, status: int, cause: str, detail: str, challenge: str) -> None:
        super().__init__(status, cause, detail)
        self.challenge = challenge


def authenticate_bearer(
    authorization: str | None, verifier: TokenVerifier, realm: str, scopes: Collection[str]
) -> TokenClaims:
    """Verify the bearer token of a request and require one of `scopes`; raise BearerError.

    RFC 6750 clause 3.1: a request without a token gets a challenge without an
    error code, an invalid or expired token gets `invalid_token` (401), and a
    token without a required scope gets `insufficient_scope` (403).
    """
    token = bearer_token(authorization)
    if token is None:
        raise BearerError(
            401,
            "INVALID_TOKEN",
            "the request has no bearer access token; get one from the token endpoint "
            "and send it as 'Authorization: Bearer <token>'",
            bearer_challenge(realm),
        )
    try:
        claims = verifier.verify(token)
    except InvalidTokenError as error:
        raise BearerError(
            401, "INVALID_TOKEN", str(error), bearer_challenge(realm, "invalid_token")
        ) from None

    if not any(claims.has_scope(scope) for scope in scopes):
        wanted = " or ".join(sorted(scopes))
        raise BearerError(
            403,
            "INSUFFICIENT_SCOPE",
            f"the access token does not grant scope {wanted}",
            bearer_challenge(realm, "insufficient_scope", scope=format_scope(scopes)),
        )
    return claims


def bearer_error_response(request: Request, operation: str, error: BearerError) -> Response:
    """Log the rejection and return its ProblemDetails with the WWW-Authenticate header."""
    response = reject(request, operation, error)
    response.headers["WWW-Authenticate"] = error.challenge
    return response


# A token is renewed this many seconds before it expires.
TOKEN_RENEW_MARGIN_SECONDS = 30


@dataclass
class SelfIssuedToken:
    """A bearer token that a client signs for itself with a key it shares with the server.

    It replaces the NRF's token endpoint (TS 29.510), which this project does
    not have. `headers()` returns the Authorization header, with a new
    token once the old one is about to expire.
    """

    issuer: TokenIssuer
    client_id: str
    scopes: Collection[str]
    audience: str
    _token: str | None = field(default=None, repr=False)
    _expires_at: float = 0.0

    def headers(self) -> dict[str, str]:
        now = self.issuer.clock()
        if self._token is None or now >= self._expires_at - TOKEN_RENEW_MARGIN_SECONDS:
            self._token = self.issuer.issue(self.client_id, self.scopes, self.audience)
            self._expires_at = now + self.issuer.lifetime
        return {"Authorization": f"Bearer {self._token}"}
