"""Behaviour of the AKMA derivations and identifiers (TS 33.535, TS 33.220 Annex H).

Covers SUPI prefix stripping, the A-KID layout and its round trip, the AF_ID and
its SBI wire form, and the Ua* security protocol identifiers.
"""

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from msgin5g.crypto.akma import (
    UA_HTTP_DIGEST,
    UA_TLS13,
    AKid,
    a_tid,
    af_id,
    af_id_from_wire,
    af_id_to_wire,
    format_a_kid,
    k_af,
    k_akma,
    parse_a_kid,
    split_af_id,
    supi_kdf_value,
    ua_dtls12,
    ua_tls12,
)
from msgin5g.crypto.errors import CryptoInputError

K_AUSF = bytes.fromhex("f2e35260f85194d4f891504d02111e56689ac23dd393bee3abbcc5bfbc013ef9")
K_AKMA = bytes.fromhex("0e53d2e2e2e22c5cbd216782c4828c1725717b2cd56b8e2bd777f43c860e6a2b")
A_TID = bytes(range(32))
A_TID_TEXT = base64.urlsafe_b64encode(A_TID).rstrip(b"=").decode()
REALM = "5gc.mnc001.mcc001.3gppnetwork.org"

routing_indicators = st.from_regex(r"[0-9]{1,4}", fullmatch=True)
mccs = st.from_regex(r"[0-9]{3}", fullmatch=True)
mncs = st.from_regex(r"[0-9]{2,3}", fullmatch=True)
fqdn_labels = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9-]{0,20}[A-Za-z0-9])?", fullmatch=True)
fqdns = st.lists(fqdn_labels, min_size=1, max_size=5).map(".".join)


# SUPI as a KDF parameter


@pytest.mark.parametrize(
    ("supi", "value"),
    [
        ("imsi-001010000000001", "001010000000001"),
        ("001010000000001", "001010000000001"),
        ("imsi-00101", "00101"),
        ("nai-user1@nai.example.com", "user1@nai.example.com"),
        ("user1@nai.example.com", "user1@nai.example.com"),
    ],
)
def test_supi_kdf_value_forms(supi: str, value: str) -> None:
    assert supi_kdf_value(supi) == value


@pytest.mark.parametrize(
    "supi",
    [
        "imsi-",
        "imsi-0010",
        "imsi-0010100000000012",
        "imsi-00101000000000a",
        "imsi-001010000000001 ",
        " 001010000000001",
        "IMSI-001010000000001",
        "００１０１０００００００００１",
        "nai-",
        "nai-user",
        "nai-@realm",
        "nai-user@",
        "nai-user@@realm",
        "nai-us er@realm",
        "gci-user@realm",
        "gli-line1@realm",
        "msisdn-491701234567",
    ],
)
def test_supi_kdf_value_rejects_malformed(supi: str) -> None:
    with pytest.raises(CryptoInputError, match="invalid supi") as error:
        supi_kdf_value(supi)

    assert repr(supi) in str(error.value)


def test_supi_kdf_value_rejects_empty() -> None:
    with pytest.raises(ValueError, match="supi must not be empty"):
        supi_kdf_value("")


def test_supi_kdf_value_rejects_bytes() -> None:
    with pytest.raises(CryptoInputError, match="supi must be str"):
        supi_kdf_value(b"001010000000001")  # type: ignore[arg-type]


# K_AKMA and A-TID


def test_k_akma_strips_imsi_prefix() -> None:
    assert k_akma(K_AUSF, "imsi-208930000000001") == k_akma(K_AUSF, "208930000000001")


def test_a_tid_strips_imsi_prefix() -> None:
    assert a_tid(K_AUSF, "imsi-208930000000001") == a_tid(K_AUSF, "208930000000001")


def test_k_akma_strips_nai_prefix() -> None:
    assert k_akma(K_AUSF, "nai-user1@nai.example.com") == k_akma(K_AUSF, "user1@nai.example.com")


def test_a_tid_strips_nai_prefix() -> None:
    assert a_tid(K_AUSF, "nai-user1@nai.example.com") == a_tid(K_AUSF, "user1@nai.example.com")


def test_k_akma_differs_from_a_tid() -> None:
    assert k_akma(K_AUSF, "208930000000001") != a_tid(K_AUSF, "208930000000001")


def test_k_akma_rejects_k_ausf_length() -> None:
    with pytest.raises(CryptoInputError, match="k_ausf must be 32 octets"):
        k_akma(K_AUSF[:16], "208930000000001")


def test_a_tid_rejects_empty_supi() -> None:
    with pytest.raises(ValueError, match="supi must not be empty"):
        a_tid(K_AUSF, "")


# A-KID


def test_format_a_kid_layout() -> None:
    a_kid = format_a_kid("0", A_TID, "001", "01")

    assert a_kid == f"rid0.atid{A_TID_TEXT}@{REALM}"


def test_format_a_kid_has_no_padding() -> None:
    assert "=" not in format_a_kid("1234", bytes(32), "999", "999")


def test_parse_a_kid_parts() -> None:
    parsed = parse_a_kid(f"rid12.atid{A_TID_TEXT}@5gc.mnc093.mcc208.3gppnetwork.org")

    assert parsed == AKid(
        routing_indicator="12",
        a_tid=A_TID,
        mcc="208",
        mnc="093",
        realm="5gc.mnc093.mcc208.3gppnetwork.org",
    )


@given(routing_indicators, st.binary(min_size=32, max_size=32), mccs, mncs)
def test_a_kid_round_trip(routing_indicator: str, a_tid_value: bytes, mcc: str, mnc: str) -> None:
    parsed = parse_a_kid(format_a_kid(routing_indicator, a_tid_value, mcc, mnc))

    assert parsed.routing_indicator == routing_indicator
    assert parsed.a_tid == a_tid_value
    assert parsed.mcc == mcc
    assert parsed.mnc == mnc.zfill(3)
    assert parsed.realm == f"5gc.mnc{mnc.zfill(3)}.mcc{mcc}.3gppnetwork.org"


@given(st.text(max_size=120))
def test_parse_a_kid_accepts_only_canonical(text: str) -> None:
    try:
        parsed = parse_a_kid(text)
    except CryptoInputError:
        return

    rebuilt = format_a_kid(parsed.routing_indicator, parsed.a_tid, parsed.mcc, parsed.mnc)
    assert rebuilt == text


def test_parse_a_kid_rejects_non_canonical_a_tid() -> None:
    # The last of the 43 characters carries 2 unused bits: set the lowest one.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last_value = alphabet.index(A_TID_TEXT[-1])
    non_canonical = A_TID_TEXT[:-1] + alphabet[last_value | 1]
    assert non_canonical != A_TID_TEXT
    assert base64.urlsafe_b64decode(non_canonical + "=") == base64.urlsafe_b64decode(
        A_TID_TEXT + "="
    )

    with pytest.raises(CryptoInputError, match="not in canonical base64url form"):
        parse_a_kid(f"rid0.atid{non_canonical}@{REALM}")


@pytest.mark.parametrize(
    "a_kid",
    [
        "",
        f"rid0.atid{A_TID_TEXT}",
        f"rid0.atid{A_TID_TEXT}=@{REALM}",
        f"rid12345.atid{A_TID_TEXT}@{REALM}",
        f"rid.atid{A_TID_TEXT}@{REALM}",
        f"RID0.atid{A_TID_TEXT}@{REALM}",
        f"rid0.atid{A_TID_TEXT[:-1]}@{REALM}",
        f"rid0.atid{A_TID_TEXT[:-1]}+@{REALM}",
        f"rid0.atid{A_TID_TEXT}@5gc.mnc01.mcc001.3gppnetwork.org",
        f"rid0.atid{A_TID_TEXT}@akma.5gc.mnc001.mcc001.3gppnetwork.org",
        f"rid0.atid{A_TID_TEXT}@{REALM}.",
        f"3GPP-AKMArid0.atid{A_TID_TEXT}@{REALM}",
    ],
)
def test_parse_a_kid_rejects_malformed(a_kid: str) -> None:
    with pytest.raises(CryptoInputError, match="invalid a_kid"):
        parse_a_kid(a_kid)


def test_parse_a_kid_message_truncates_long_value() -> None:
    with pytest.raises(CryptoInputError) as error:
        parse_a_kid("x" * 10_000)

    assert len(str(error.value)) < 400


@pytest.mark.parametrize("routing_indicator", ["", "12345", "a", "-1"])
def test_format_a_kid_rejects_routing_indicator(routing_indicator: str) -> None:
    with pytest.raises(CryptoInputError, match="invalid routing_indicator"):
        format_a_kid(routing_indicator, A_TID, "001", "01")


def test_format_a_kid_rejects_a_tid_length() -> None:
    with pytest.raises(CryptoInputError, match="a_tid must be 32 octets"):
        format_a_kid("0", A_TID[:16], "001", "01")


def test_format_a_kid_rejects_mcc() -> None:
    with pytest.raises(CryptoInputError, match="invalid mcc"):
        format_a_kid("0", A_TID, "01", "01")


# Ua* security protocol identifiers and AF_ID


def test_ua_protocol_ids() -> None:
    assert UA_TLS13 == bytes.fromhex("0100000007")
    assert UA_HTTP_DIGEST == bytes.fromhex("0100000002")


def test_ua_tls12_cipher_suite() -> None:
    assert ua_tls12(0x00A8) == bytes.fromhex("01000100a8")


def test_ua_dtls12_same_as_tls12() -> None:
    assert ua_dtls12(0xC0A8) == ua_tls12(0xC0A8)


@pytest.mark.parametrize("cipher_suite", [-1, 0x10000])
def test_ua_tls12_rejects_out_of_range(cipher_suite: int) -> None:
    with pytest.raises(CryptoInputError, match="cipher_suite must be in 0..65535"):
        ua_tls12(cipher_suite)


def test_ua_tls12_rejects_bool() -> None:
    with pytest.raises(CryptoInputError, match="cipher_suite must be an int"):
        ua_tls12(True)


def test_af_id_concatenation() -> None:
    assert af_id("af.example.com", UA_TLS13) == b"af.example.com\x01\x00\x00\x00\x07"


def test_split_af_id_round_trip() -> None:
    assert split_af_id(af_id("af.example.com", UA_TLS13)) == ("af.example.com", UA_TLS13)


@pytest.mark.parametrize(
    "fqdn",
    [
        "",
        "af.example.com.",
        "-af.example.com",
        "af-.example.com",
        "af..example.com",
        "af_1.example.com",
        "äf.example.com",
        "af.example.com;x",
        "a" * 64 + ".example.com",
        ".".join(["a" * 63] * 4 + ["b"]),
    ],
)
def test_af_id_rejects_fqdn(fqdn: str) -> None:
    with pytest.raises(CryptoInputError, match="invalid fqdn"):
        af_id(fqdn, UA_TLS13)


def test_af_id_accepts_longest_label() -> None:
    fqdn = "a" * 63 + ".example.com"

    assert af_id(fqdn, UA_TLS13).startswith(fqdn.encode())


@pytest.mark.parametrize("length", [4, 6])
def test_af_id_rejects_ua_protocol_id_length(length: int) -> None:
    with pytest.raises(CryptoInputError, match="ua_protocol_id must be 5 octets"):
        af_id("af.example.com", bytes(length))


# K_AF


def test_k_af_depends_on_ua_protocol_id() -> None:
    over_tls13 = k_af(K_AKMA, af_id("af.example.com", UA_TLS13))
    over_digest = k_af(K_AKMA, af_id("af.example.com", UA_HTTP_DIGEST))

    assert over_tls13 != over_digest


def test_k_af_depends_on_fqdn() -> None:
    first = k_af(K_AKMA, af_id("af1.example.com", UA_TLS13))
    second = k_af(K_AKMA, af_id("af2.example.com", UA_TLS13))

    assert first != second


def test_k_af_rejects_short_af_id() -> None:
    with pytest.raises(CryptoInputError, match="af_id must be at least 6 octets"):
        k_af(K_AKMA, UA_TLS13)


def test_k_af_rejects_non_ascii_af_id() -> None:
    with pytest.raises(CryptoInputError, match="FQDN part is not ASCII"):
        k_af(K_AKMA, "äf".encode() + UA_TLS13)


def test_k_af_rejects_k_akma_length() -> None:
    with pytest.raises(CryptoInputError, match="k_akma must be 32 octets"):
        k_af(K_AKMA[:31], af_id("af.example.com", UA_TLS13))


# AF_ID on the SBI


def test_af_id_to_wire_format() -> None:
    wire = af_id_to_wire("af.example.com", UA_TLS13)

    assert wire == "af.example.com;ua-protocol-id=0100000007"


def test_af_id_from_wire_parts() -> None:
    fqdn, ua_protocol_id = af_id_from_wire("af.example.com;ua-protocol-id=01000100a8")

    assert fqdn == "af.example.com"
    assert ua_protocol_id == bytes.fromhex("01000100a8")


@given(fqdns, st.binary(min_size=5, max_size=5))
def test_af_id_wire_round_trip(fqdn: str, ua_protocol_id: bytes) -> None:
    assert af_id_from_wire(af_id_to_wire(fqdn, ua_protocol_id)) == (fqdn, ua_protocol_id)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "af.example.com",
        "af.example.com;ua-protocol-id=",
        "af.example.com;ua-protocol-id=01000000",
        "af.example.com;ua-protocol-id=010000000700",
        "af.example.com;ua-protocol-id=010000000G",
        "af.example.com;ua-protocol-id=010000000A",
        "af.example.com;ua-protocol-id=0100000007 ",
        "af.example.com;ua-protocol-id=0100000007;ua-protocol-id=0100000007",
        "af.example.com; ua-protocol-id=0100000007",
        "af.example.com:ua-protocol-id=0100000007",
    ],
)
def test_af_id_from_wire_rejects_malformed(text: str) -> None:
    with pytest.raises(CryptoInputError, match="invalid afId"):
        af_id_from_wire(text)


@pytest.mark.parametrize("fqdn", ["", "af.example.com.", "af example.com"])
def test_af_id_from_wire_rejects_fqdn(fqdn: str) -> None:
    with pytest.raises(CryptoInputError, match="invalid afId FQDN"):
        af_id_from_wire(f"{fqdn};ua-protocol-id=0100000007")
