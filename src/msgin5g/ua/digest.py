"""HTTP Digest access authentication keyed by K_AF (sans-IO).

The HTTPS profile of AKMA (TS 33.535 Annex B.1.2, TS 24.109 Annex K.2) runs
HTTP Digest (RFC 7616) inside a TLS connection that authenticates the AF with
a certificate:

- the UE puts the product token "3gpp-akma" in its User-Agent header;
- the AF challenges with a realm that contains "3GPP-bootstrapping-akma". This
  project uses exactly `3GPP-bootstrapping-akma@<AF FQDN>`, so that the UE can
  check the FQDN in the realm against the FQDN it connected to;
- username = A-KID, password = base64(K_AF) (RFC 4648 clause 4, with padding),
  as TS 33.220 does with Ks_NAF for GBA;
- K_AF is derived for AF_ID = FQDN || 01 00 01 yy zz, yy zz being the TLS cipher
  suite that the connection negotiated (TS 33.220 Annex H.3).

This module builds and parses the header fields and computes and verifies the
response, with qop "auth" and the algorithms MD5 and SHA-256. Nonces are
stateless: a timestamp and an HMAC over it with a server secret, so any
server process holding the secret can check them and tell stale from forged.
"""

import base64
import binascii
import dataclasses
import enum
import functools
import hashlib
import hmac
import re
import secrets
import ssl
import time
from collections.abc import Callable, Iterable
from typing import Any

from msgin5g.crypto.akma import ua_tls12

__all__ = [
    "AKMA_REALM_PREFIX",
    "ALGORITHMS",
    "USER_AGENT_PRODUCT",
    "Challenge",
    "Credentials",
    "DigestError",
    "NonceSource",
    "NonceStatus",
    "akma_realm",
    "answer_challenge",
    "cipher_suite_code",
    "compute_response",
    "digest_password",
    "has_akma_product",
    "parse_authorization",
    "parse_challenges",
    "realm_fqdn",
    "ua_protocol_id_for_cipher",
    "verify_response",
]

AKMA_REALM_PREFIX = "3GPP-bootstrapping-akma@"
USER_AGENT_PRODUCT = "3gpp-akma"
QOP_AUTH = "auth"

# RFC 7616 clause 3.4: the algorithm names and their hash functions. MD5 is the
# default when a challenge names no algorithm.
ALGORITHMS: dict[str, Callable[..., Any]] = {
    "MD5": hashlib.md5,
    "SHA-256": hashlib.sha256,
}
DEFAULT_ALGORITHM = "MD5"

DEFAULT_NONCE_LIFETIME_SECONDS = 300.0
NONCE_SECRET_OCTETS = 32
NONCE_MAC_OCTETS = 16
NONCE_TIME_OCTETS = 8

# RFC 9110 clause 5.6.2: token characters.
TOKEN_PATTERN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
NC_PATTERN = re.compile(r"[0-9A-Fa-f]{8}")

TLS_VERSION_CODES = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


class DigestError(ValueError):
    """A header field that is not valid HTTP Digest; the message names the field and the fix."""


# Realm, password, User-Agent


def akma_realm(af_fqdn: str) -> str:
    """Return the realm `3GPP-bootstrapping-akma@<AF FQDN>` of this project."""
    return AKMA_REALM_PREFIX + af_fqdn


def realm_fqdn(realm: str) -> str | None:
    """Return the AF FQDN of an AKMA realm, or None when the realm is not an AKMA realm."""
    if not realm.startswith(AKMA_REALM_PREFIX):
        return None
    fqdn = realm[len(AKMA_REALM_PREFIX) :]
    return fqdn or None


def digest_password(k_af: bytes) -> str:
    """Return the Digest password for K_AF: base64 with padding (RFC 4648 clause 4)."""
    return base64.b64encode(k_af).decode("ascii")


def has_akma_product(user_agent: str | None) -> bool:
    """Return True when the User-Agent value contains the product token "3gpp-akma".

    RFC 9110 clause 10.1.5: products are `name[/version]` separated by spaces,
    with comments in parentheses. The name is compared case-insensitively.
    """
    if not user_agent:
        return False
    without_comments = re.sub(r"\([^)]*\)", " ", user_agent)
    for product in without_comments.split():
        name = product.split("/", 1)[0]
        if name.lower() == USER_AGENT_PRODUCT:
            return True
    return False


# TLS cipher suite of the connection


def cipher_suite_code(cipher_name: str) -> int:
    """Return the IANA code point of an OpenSSL cipher suite name, as `SSLSocket.cipher()` names it.

    Raises ValueError when the local OpenSSL does not know the name.
    """
    for cipher in _known_ciphers():
        if cipher["name"] == cipher_name:
            # OpenSSL ids are 0x0300yyzz for TLS suites; the low two octets are the code point.
            return cipher["id"] & 0xFFFF
    raise ValueError(
        f"unknown TLS cipher suite {cipher_name!r}: this OpenSSL ({ssl.OPENSSL_VERSION}) "
        "does not list it, so its code point for the AF_ID is unknown"
    )


@functools.cache
def _known_ciphers() -> tuple[dict[str, Any], ...]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.set_ciphers("ALL:@SECLEVEL=0")  # Lists every TLS 1.2 suite; TLS 1.3 suites always appear.
    return tuple(context.get_ciphers())


def ua_protocol_id_for_cipher(cipher_name: str) -> bytes:
    """Return the Ua* protocol identifier 01 00 01 yy zz for the negotiated cipher suite.

    NOTE: TS 33.220 Annex H.3 defines 01 00 01 yy zz with a TLS cipher suite and
    does not single out TLS 1.3. A TLS 1.3 connection gives its TLS 1.3 suite's
    code point in yy zz here (for example 13 02 for TLS_AES_256_GCM_SHA384).
    """
    return ua_tls12(cipher_suite_code(cipher_name))


def tls_version_code(version: str | None) -> int | None:
    """Return the protocol version code (0x0303, 0x0304) of `SSLObject.version()`, or None."""
    return TLS_VERSION_CODES.get(version or "")


# Nonces


class NonceStatus(enum.Enum):
    VALID = "valid"
    STALE = "stale"  # issued by this server, but older than the lifetime
    INVALID = "invalid"  # not issued by this server, or damaged


class NonceSource:
    """Issue and check stateless nonces: base64url(timestamp || HMAC-SHA-256(secret, timestamp || realm)).

    NOTE: a stateless nonce does not stop a replay of the same Authorization
    within its lifetime; TLS protects the request from anyone but the UE.
    """

    def __init__(
        self,
        secret: bytes | None = None,
        *,
        lifetime: float = DEFAULT_NONCE_LIFETIME_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if lifetime <= 0:
            raise ValueError(f"nonce lifetime must be positive seconds, got {lifetime}")
        self._secret = secret if secret is not None else secrets.token_bytes(NONCE_SECRET_OCTETS)
        self.lifetime = lifetime
        self._clock = clock

    def __repr__(self) -> str:
        return f"NonceSource(lifetime={self.lifetime})"

    def issue(self, realm: str) -> str:
        """Return a new nonce for `realm`."""
        stamp = int(self._clock() * 1000).to_bytes(NONCE_TIME_OCTETS, "big")
        return _b64url(stamp + self._mac(stamp, realm))

    def check(self, nonce: str, realm: str) -> NonceStatus:
        """Return whether `nonce` was issued by this source for `realm` and is still fresh."""
        try:
            octets = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except (binascii.Error, ValueError):
            return NonceStatus.INVALID
        if len(octets) != NONCE_TIME_OCTETS + NONCE_MAC_OCTETS:
            return NonceStatus.INVALID

        stamp, mac = octets[:NONCE_TIME_OCTETS], octets[NONCE_TIME_OCTETS:]
        if not hmac.compare_digest(mac, self._mac(stamp, realm)):
            return NonceStatus.INVALID
        issued = int.from_bytes(stamp, "big") / 1000
        age = self._clock() - issued
        if age < 0 or age > self.lifetime:
            return NonceStatus.STALE
        return NonceStatus.VALID

    def _mac(self, stamp: bytes, realm: str) -> bytes:
        digest = hmac.new(self._secret, stamp + realm.encode("utf-8"), hashlib.sha256).digest()
        return digest[:NONCE_MAC_OCTETS]


def _b64url(octets: bytes) -> str:
    return base64.urlsafe_b64encode(octets).rstrip(b"=").decode("ascii")


# Header fields


@dataclasses.dataclass(frozen=True)
class Challenge:
    """One Digest challenge of a WWW-Authenticate field (RFC 7616 clause 3.3)."""

    realm: str
    nonce: str
    algorithm: str = DEFAULT_ALGORITHM
    qop: tuple[str, ...] = (QOP_AUTH,)
    opaque: str | None = None
    stale: bool = False

    def to_header(self) -> str:
        """Return the field value, for example `Digest realm="...", nonce="...", ...`."""
        parts = [
            f"realm={_quote(self.realm)}",
            f"nonce={_quote(self.nonce)}",
            f"qop={_quote(', '.join(self.qop))}",
            f"algorithm={self.algorithm}",
        ]
        if self.opaque is not None:
            parts.append(f"opaque={_quote(self.opaque)}")
        if self.stale:
            parts.append("stale=true")
        return "Digest " + ", ".join(parts)


@dataclasses.dataclass(frozen=True)
class Credentials:
    """The Digest credentials of an Authorization field (RFC 7616 clause 3.4)."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str = dataclasses.field(repr=False)
    algorithm: str = DEFAULT_ALGORITHM
    qop: str = QOP_AUTH
    nc: str = "00000001"
    cnonce: str = ""
    opaque: str | None = None

    def to_header(self) -> str:
        parts = [
            f"username={_quote(self.username)}",
            f"realm={_quote(self.realm)}",
            f"uri={_quote(self.uri)}",
            f"algorithm={self.algorithm}",
            f"nonce={_quote(self.nonce)}",
            f"nc={self.nc}",
            f"cnonce={_quote(self.cnonce)}",
            f"qop={self.qop}",
            f"response={_quote(self.response)}",
        ]
        if self.opaque is not None:
            parts.append(f"opaque={_quote(self.opaque)}")
        return "Digest " + ", ".join(parts)


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _parse_auth_fields(text: str) -> list[tuple[str, dict[str, str]]]:
    """Split a WWW-Authenticate or Authorization value into (scheme, parameters) pairs.

    RFC 9110 clause 11.6.1: challenges and parameters are both comma-separated,
    so a token that is not followed by "=" starts the next challenge. Parameter
    names are lowercased. token68 credentials of other schemes are skipped.
    """
    fields: list[tuple[str, dict[str, str]]] = []
    position = 0
    length = len(text)
    while position < length:
        position = _skip(text, position, " \t,")
        if position >= length:
            break
        match = TOKEN_PATTERN.match(text, position)
        if match is None:
            raise DigestError(f"invalid character {text[position]!r} at position {position}")
        name = match.group()
        after = _skip(text, match.end(), " \t")
        if after < length and text[after] == "=" and fields:
            value, position = _parse_value(text, _skip(text, after + 1, " \t"))
            fields[-1][1][name.lower()] = value
        elif after < length and text[after] == "=":
            raise DigestError(f"parameter {name!r} before any authentication scheme")
        else:
            fields.append((name, {}))
            position = after
    return fields


def _skip(text: str, position: int, characters: str) -> int:
    while position < len(text) and text[position] in characters:
        position += 1
    return position


def _parse_value(text: str, position: int) -> tuple[str, int]:
    if position < len(text) and text[position] == '"':
        value: list[str] = []
        position += 1
        while position < len(text):
            character = text[position]
            if character == "\\" and position + 1 < len(text):
                value.append(text[position + 1])
                position += 2
            elif character == '"':
                return "".join(value), position + 1
            else:
                value.append(character)
                position += 1
        raise DigestError("unterminated quoted string")

    # A token, or a token68 value of another scheme that ends with "=" padding.
    end = position
    while end < len(text) and text[end] not in " \t,":
        end += 1
    if end == position:
        raise DigestError(f"missing parameter value at position {position}")
    return text[position:end], end


def parse_challenges(values: Iterable[str]) -> list[Challenge]:
    """Return the Digest challenges of WWW-Authenticate field values, in order.

    Challenges of other schemes, and Digest challenges without a realm or nonce,
    are skipped. Raises DigestError for a value that cannot be parsed.
    """
    challenges = []
    for value in values:
        for scheme, parameters in _parse_auth_fields(value):
            if scheme.lower() != "digest" or "realm" not in parameters or "nonce" not in parameters:
                continue
            qop = tuple(item.strip() for item in parameters.get("qop", "").split(",") if item.strip())
            challenges.append(
                Challenge(
                    realm=parameters["realm"],
                    nonce=parameters["nonce"],
                    algorithm=parameters.get("algorithm", DEFAULT_ALGORITHM),
                    qop=qop,
                    opaque=parameters.get("opaque"),
                    stale=parameters.get("stale", "").lower() == "true",
                )
            )
    return challenges


REQUIRED_CREDENTIALS = ("username", "realm", "nonce", "uri", "response", "qop", "nc", "cnonce")


def parse_authorization(value: str) -> Credentials:
    """Parse an Authorization field value with Digest credentials.

    Raises DigestError naming the missing or invalid parameter. Credentials
    without qop (RFC 2069) are rejected, because this server sends qop="auth".
    """
    fields = _parse_auth_fields(value)
    if len(fields) != 1 or fields[0][0].lower() != "digest":
        raise DigestError("the Authorization field must carry one Digest credential")
    parameters = fields[0][1]

    missing = [name for name in REQUIRED_CREDENTIALS if name not in parameters]
    if missing:
        raise DigestError(f"Digest credentials lack {', '.join(missing)}")
    if "username*" in parameters or parameters.get("userhash", "false").lower() == "true":
        raise DigestError("userhash and username* are not supported; send the A-KID as username")
    if NC_PATTERN.fullmatch(parameters["nc"]) is None:
        raise DigestError(f"invalid nc {parameters['nc']!r}: expected 8 hex digits")

    return Credentials(
        username=parameters["username"],
        realm=parameters["realm"],
        nonce=parameters["nonce"],
        uri=parameters["uri"],
        response=parameters["response"],
        algorithm=parameters.get("algorithm", DEFAULT_ALGORITHM),
        qop=parameters["qop"],
        nc=parameters["nc"],
        cnonce=parameters["cnonce"],
        opaque=parameters.get("opaque"),
    )


# Response computation


def compute_response(
    *,
    algorithm: str,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    nc: str,
    cnonce: str,
    qop: str = QOP_AUTH,
) -> str:
    """Return the lowercase hex `response` of RFC 7616 clause 3.4.1 for qop "auth".

    response = H(H(username:realm:password):nonce:nc:cnonce:qop:H(method:uri))
    """
    hash_function = ALGORITHMS.get(algorithm)
    if hash_function is None:
        raise DigestError(f"unsupported algorithm {algorithm!r}; use one of {', '.join(ALGORITHMS)}")
    if qop != QOP_AUTH:
        raise DigestError(f"unsupported qop {qop!r}; use {QOP_AUTH!r}")

    def h(text: str) -> str:
        return hash_function(text.encode("utf-8")).hexdigest()

    ha1 = h(f"{username}:{realm}:{password}")
    ha2 = h(f"{method}:{uri}")
    return h(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


def answer_challenge(
    challenge: Challenge,
    *,
    username: str,
    password: str,
    method: str,
    uri: str,
    nc: int = 1,
    cnonce: str | None = None,
) -> Credentials:
    """Build the credentials that answer `challenge`, with a random cnonce unless one is given."""
    if QOP_AUTH not in challenge.qop:
        raise DigestError(
            f"the challenge offers qop {challenge.qop!r} but this client supports only {QOP_AUTH!r}"
        )
    cnonce = cnonce if cnonce is not None else _b64url(secrets.token_bytes(16))
    nc_text = f"{nc:08x}"
    response = compute_response(
        algorithm=challenge.algorithm,
        username=username,
        realm=challenge.realm,
        password=password,
        method=method,
        uri=uri,
        nonce=challenge.nonce,
        nc=nc_text,
        cnonce=cnonce,
    )
    return Credentials(
        username=username,
        realm=challenge.realm,
        nonce=challenge.nonce,
        uri=uri,
        response=response,
        algorithm=challenge.algorithm,
        nc=nc_text,
        cnonce=cnonce,
        opaque=challenge.opaque,
    )


def verify_response(credentials: Credentials, *, password: str, method: str) -> bool:
    """Return True when the credentials' response matches `password` (constant-time compare)."""
    expected = compute_response(
        algorithm=credentials.algorithm,
        username=credentials.username,
        realm=credentials.realm,
        password=password,
        method=method,
        uri=credentials.uri,
        nonce=credentials.nonce,
        nc=credentials.nc,
        cnonce=credentials.cnonce,
        qop=credentials.qop,
    )
    return hmac.compare_digest(expected.encode("ascii"), credentials.response.lower().encode("ascii", "replace"))
