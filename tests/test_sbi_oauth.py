"""Bearer access tokens: issuing, verifying, and the Authorization header."""

import pytest

from msgin5g.sbi.oauth import (
    BearerError,
    InvalidTokenError,
    TokenIssuer,
    TokenVerifier,
    authenticate_bearer,
    bearer_token,
    parse_scope,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def issue(clock: Clock, scopes=("3gpp-akma",), audience: str = "nef", key: bytes = KEY) -> str:
    return TokenIssuer(key, issuer="nef", lifetime=60, clock=clock).issue("af-1", scopes, audience)


def test_token_round_trip():
    clock = Clock()

    claims = TokenVerifier(KEY, "nef", clock=clock).verify(issue(clock, ("3gpp-akma", "b")))

    assert claims.client_id == "af-1"
    assert claims.scopes == frozenset({"3gpp-akma", "b"})
    assert claims.expires_at == int(clock.now) + 60


def test_token_other_key_rejected():
    clock = Clock()

    with pytest.raises(InvalidTokenError, match="signature"):
        TokenVerifier(KEY, "nef", clock=clock).verify(issue(clock, key=OTHER_KEY))


def test_token_tampered_payload_rejected():
    clock = Clock()
    header, payload, signature = issue(clock).split(".")
    forged = TokenIssuer(OTHER_KEY, issuer="nef", clock=clock).issue("af-1", ["x"], "nef").split(".")[1]

    with pytest.raises(InvalidTokenError, match="signature"):
        TokenVerifier(KEY, "nef", clock=clock).verify(f"{header}.{forged}.{signature}")


def test_token_expired_rejected():
    clock = Clock()
    token = issue(clock)
    clock.now += 3600

    with pytest.raises(InvalidTokenError, match="expired"):
        TokenVerifier(KEY, "nef", clock=clock).verify(token)


def test_token_other_audience_rejected():
    clock = Clock()

    with pytest.raises(InvalidTokenError, match="audience"):
        TokenVerifier(KEY, "nef", clock=clock).verify(issue(clock, audience="aanf"))


@pytest.mark.parametrize("token", ["", "a.b", "a.b.c.d", "!!.??.**"])
def test_token_malformed_rejected(token):
    with pytest.raises(InvalidTokenError):
        TokenVerifier(KEY, "nef").verify(token)


def test_short_signing_key_rejected():
    with pytest.raises(ValueError, match="at least 32 octets"):
        TokenIssuer(b"short", issuer="nef")


def test_issuer_repr_hides_key():
    assert KEY.hex() not in repr(TokenIssuer(KEY, issuer="nef"))
    assert str(KEY) not in repr(TokenIssuer(KEY, issuer="nef"))


@pytest.mark.parametrize(
    ("header", "expected"),
    [("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Basic abc", None), ("Bearer", None), (None, None)],
)
def test_bearer_token_header(header, expected):
    assert bearer_token(header) == expected


def test_scope_with_bad_token_rejected():
    with pytest.raises(ValueError, match="scope token"):
        parse_scope("3gpp-akma  x")


def test_authenticate_missing_token_401():
    with pytest.raises(BearerError) as caught:
        authenticate_bearer(None, TokenVerifier(KEY, "nef"), "3gpp-akma", ["3gpp-akma"])

    assert caught.value.status == 401
    assert caught.value.challenge == 'Bearer realm="3gpp-akma"'


def test_authenticate_invalid_token_401():
    with pytest.raises(BearerError) as caught:
        authenticate_bearer("Bearer x.y.z", TokenVerifier(KEY, "nef"), "3gpp-akma", ["3gpp-akma"])

    assert caught.value.status == 401
    assert 'error="invalid_token"' in caught.value.challenge


def test_authenticate_insufficient_scope_403():
    clock = Clock()
    token = issue(clock, scopes=("other",))

    with pytest.raises(BearerError) as caught:
        authenticate_bearer(f"Bearer {token}", TokenVerifier(KEY, "nef", clock=clock), "r", ["3gpp-akma"])

    assert caught.value.status == 403
    assert 'error="insufficient_scope"' in caught.value.challenge
