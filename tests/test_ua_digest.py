"""HTTP Digest keyed by K_AF: RFC 7616 vectors, header fields, nonces and verification."""

import base64
import hmac

import pytest

from msgin5g.ua import digest

# RFC 7616 clause 3.9.1: the example request and its responses for MD5 and SHA-256.
RFC7616_EXAMPLE = {
    "username": "Mufasa",
    "realm": "http-auth@example.org",
    "password": "Circle of Life",
    "method": "GET",
    "uri": "/dir/index.html",
    "nonce": "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
    "nc": "00000001",
    "cnonce": "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
}
RFC7616_RESPONSES = {
    "MD5": "8ca523f5e9506fed4657c9700eebdbec",
    "SHA-256": "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
}
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("algorithm", sorted(RFC7616_RESPONSES))
def test_rfc7616_response(algorithm):
    response = digest.compute_response(algorithm=algorithm, **RFC7616_EXAMPLE)

    assert response == RFC7616_RESPONSES[algorithm], f"{algorithm} response differs from RFC 7616 3.9.1"


@pytest.mark.parametrize("algorithm", sorted(RFC7616_RESPONSES))
def test_rfc7616_authorization_verifies(algorithm):
    example = RFC7616_EXAMPLE
    header = (
        f'Digest username="{example["username"]}", realm="{example["realm"]}", '
        f'uri="{example["uri"]}", algorithm={algorithm}, nonce="{example["nonce"]}", '
        f'nc={example["nc"]}, cnonce="{example["cnonce"]}", qop=auth, '
        f'response="{RFC7616_RESPONSES[algorithm]}", opaque="{RFC7616_OPAQUE}"'
    )

    credentials = digest.parse_authorization(header)

    assert credentials.opaque == RFC7616_OPAQUE
    assert digest.verify_response(credentials, password=example["password"], method="GET")


def test_wrong_password_fails():
    credentials = digest.parse_authorization(
        f'Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", '
        f'algorithm=MD5, nonce="{RFC7616_EXAMPLE["nonce"]}", nc=00000001, '
        f'cnonce="{RFC7616_EXAMPLE["cnonce"]}", qop=auth, response="{RFC7616_RESPONSES["MD5"]}"'
    )

    assert not digest.verify_response(credentials, password="Circle of Death", method="GET")


def test_wrong_method_fails():
    credentials = digest.answer_challenge(
        digest.Challenge(realm="r", nonce="n"), username="u", password="p", method="POST", uri="/x"
    )

    assert not digest.verify_response(credentials, password="p", method="GET")


def test_verify_compares_in_constant_time(monkeypatch):
    calls = []
    compare_digest = hmac.compare_digest

    def recording_compare(a, b):
        calls.append((a, b))
        return compare_digest(a, b)

    monkeypatch.setattr(digest.hmac, "compare_digest", recording_compare)
    credentials = digest.answer_challenge(
        digest.Challenge(realm="r", nonce="n", algorithm="SHA-256"),
        username="u",
        password="p",
        method="POST",
        uri="/x",
    )

    assert digest.verify_response(credentials, password="p", method="POST")
    assert len(calls) == 1


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_answer_round_trip(algorithm):
    challenge = digest.Challenge(realm="3GPP-bootstrapping-akma@af.example.test", nonce="abc", algorithm=algorithm)
    parsed_challenge = digest.parse_challenges([challenge.to_header()])[0]

    credentials = digest.answer_challenge(parsed_challenge, username="a-kid", password="k", method="POST", uri="/p")
    parsed = digest.parse_authorization(credentials.to_header())

    assert parsed_challenge == challenge
    assert parsed == credentials
    assert digest.verify_response(parsed, password="k", method="POST")


def test_challenge_header_format():
    challenge = digest.Challenge(realm="3GPP-bootstrapping-akma@af.example.test", nonce="n1", algorithm="MD5", stale=True)

    assert challenge.to_header() == (
        'Digest realm="3GPP-bootstrapping-akma@af.example.test", nonce="n1", qop="auth", '
        "algorithm=MD5, stale=true"
    )


def test_parse_several_challenges():
    values = [
        'Basic realm="x", Digest realm="a@b", nonce="n\\"q", qop="auth,auth-int", algorithm=SHA-256',
        'Digest realm="c", nonce="m", stale=TRUE',
    ]

    challenges = digest.parse_challenges(values)

    assert [c.realm for c in challenges] == ["a@b", "c"]
    assert challenges[0].nonce == 'n"q'
    assert challenges[0].qop == ("auth", "auth-int")
    assert challenges[1].algorithm == "MD5"
    assert challenges[1].stale


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ('Basic dXNlcjpwYXNz', "one Digest credential"),
        ('Digest username="u", realm="r"', "lack nonce, uri, response, qop, nc, cnonce"),
        ('Digest username="u", realm="r", nonce="n", uri="/", response="x", qop=auth, nc=1, cnonce="c"', "invalid nc"),
        ('Digest username="u", realm="r', "unterminated"),
    ],
)
def test_invalid_authorization(header, message):
    with pytest.raises(digest.DigestError, match=message):
        digest.parse_authorization(header)


def test_unsupported_algorithm():
    with pytest.raises(digest.DigestError, match="unsupported algorithm 'SHA-512-256'"):
        digest.compute_response(algorithm="SHA-512-256", **RFC7616_EXAMPLE)


def test_nonce_valid_then_stale():
    clock = Clock()
    source = digest.NonceSource(lifetime=30, clock=clock)
    nonce = source.issue("realm")

    fresh = source.check(nonce, "realm")
    clock.now += 31
    old = source.check(nonce, "realm")

    assert fresh is digest.NonceStatus.VALID
    assert old is digest.NonceStatus.STALE


def test_nonce_of_other_secret_invalid():
    nonce = digest.NonceSource(b"a" * 32).issue("realm")

    assert digest.NonceSource(b"b" * 32).check(nonce, "realm") is digest.NonceStatus.INVALID


def test_nonce_of_other_realm_invalid():
    source = digest.NonceSource()

    assert source.check(source.issue("realm-1"), "realm-2") is digest.NonceStatus.INVALID


@pytest.mark.parametrize("nonce", ["", "***", "AAAA", "x" * 200])
def test_garbled_nonce_invalid(nonce):
    assert digest.NonceSource().check(nonce, "realm") is digest.NonceStatus.INVALID


def test_password_is_base64_of_kaf():
    key = bytes(range(32))

    assert digest.digest_password(key) == base64.b64encode(key).decode()
    assert len(digest.digest_password(key)) == 44


@pytest.mark.parametrize(
    ("user_agent", "expected"),
    [
        ("3gpp-akma", True),
        ("msgin5g/0.1.0 3gpp-akma", True),
        ("curl/8 3GPP-AKMA/1 (test)", True),
        ("curl/8 (3gpp-akma)", False),
        ("3gpp-akmax", False),
        ("", False),
        (None, False),
    ],
)
def test_user_agent_product(user_agent, expected):
    assert digest.has_akma_product(user_agent) is expected


def test_realm_fqdn():
    assert digest.realm_fqdn(digest.akma_realm("af.example.test")) == "af.example.test"
    assert digest.realm_fqdn("3GPP-bootstrapping@af.example.test") is None


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("ECDHE-ECDSA-AES128-GCM-SHA256", 0xC02B),
        ("ECDHE-RSA-AES128-GCM-SHA256", 0xC02F),
        ("TLS_AES_256_GCM_SHA384", 0x1302),
        ("TLS_CHACHA20_POLY1305_SHA256", 0x1303),
    ],
)
def test_cipher_suite_code(name, code):
    assert digest.cipher_suite_code(name) == code


def test_ua_protocol_id_for_cipher():
    assert digest.ua_protocol_id_for_cipher("ECDHE-ECDSA-AES128-GCM-SHA256") == bytes.fromhex("010001c02b")


def test_unknown_cipher_name():
    with pytest.raises(ValueError, match="unknown TLS cipher suite 'NOPE'"):
        digest.cipher_suite_code("NOPE")
