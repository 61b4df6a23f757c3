"""`msgin5g keys`: outputs against the reference vectors, and input errors."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from msgin5g.cli.main import main
from msgin5g.crypto.akma import format_a_kid, parse_a_kid

LOWERCASE_HEX = re.compile(r"[0-9a-f]+")

K_AUSF = "f2e35260f85194d4f891504d02111e56689ac23dd393bee3abbcc5bfbc013ef9"
K_AKMA = "0e53d2e2e2e22c5cbd216782c4828c1725717b2cd56b8e2bd777f43c860e6a2b"
CK = "b40ba9a3c58b2a05bbf0d987b21bf8cb"
IK = "f769bcd751044604127672711c6d3441"
RAND = "23553cbe9637a89d218ae64dae47bf35"
SNN = "5G:mnc093.mcc208.3gppnetwork.org"

MILENAGE_ARGS = [
    "--k", "465b5ce8b199b49faa5f0a2ee238a6bc",
    "--op", "cdc202d5123e20f62b6d676ac72cb318",
    "--rand", RAND,
    "--sqn", "ff9bb4d0b607",
    "--amf", "b9b9",
]  # fmt: skip


def run_keys(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run `msgin5g keys ARGV` in this process and return (exit status, stdout, stderr)."""
    status = main(["keys", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def run_keys_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, str]:
    status, out, err = run_keys(capsys, *argv)
    assert status == 0, f"exit status {status}, stderr: {err}"
    return json.loads(out)


def cases_of(vectors: list[dict], function: str) -> list[dict]:
    cases = [case for case in vectors if case["function"] == function and not case.get("negative")]
    assert cases, f"no {function} entries in the vector file"
    return cases


# Outputs against the reference vectors


def test_milenage_matches_vectors(capsys, vectors) -> None:
    names = {
        "opc": "OPc",
        "mac_a": "f1_MAC_A",
        "mac_s": "f1star_MAC_S",
        "res": "f2_RES",
        "ck": "f3_CK",
        "ik": "f4_IK",
        "ak": "f5_AK",
        "ak_star": "f5star_AK",
        "autn": "AUTN",
    }
    for case in cases_of(vectors, "milenage"):
        inputs = case["inputs"]
        output = run_keys_json(
            capsys,
            "milenage",
            "--k", inputs["K"],
            "--op", inputs["OP"],
            "--rand", inputs["RAND"],
            "--sqn", inputs["SQN"],
            "--amf", inputs["AMF"],
        )  # fmt: skip

        assert set(output) == set(names), case["id"]
        for key, vector_name in names.items():
            assert output[key] == case["outputs"][vector_name], f"{key} differs for {case['id']}"


def test_milenage_accepts_opc(capsys, vectors) -> None:
    case = cases_of(vectors, "milenage")[0]
    inputs = case["inputs"]

    output = run_keys_json(
        capsys,
        "milenage",
        "--k", inputs["K"],
        "--opc", case["outputs"]["OPc"],
        "--rand", inputs["RAND"],
        "--sqn", inputs["SQN"],
        "--amf", inputs["AMF"],
    )  # fmt: skip

    assert output["res"] == case["outputs"]["f2_RES"]
    assert output["autn"] == case["outputs"]["AUTN"]


def test_milenage_accepts_uppercase_hex(capsys) -> None:
    upper = [
        argument if argument.startswith("--") else argument.upper() for argument in MILENAGE_ARGS
    ]

    output = run_keys_json(capsys, "milenage", *upper)

    assert output["opc"] == "cd63cb71954a9f4e48a5994e37a02baf"


def test_kausf_matches_vectors(capsys, vectors) -> None:
    for case in cases_of(vectors, "kausf"):
        inputs = case["inputs"]
        output = run_keys_json(
            capsys,
            "kausf",
            "--ck", inputs["ck"],
            "--ik", inputs["ik"],
            "--snn", inputs["serving_network_name"],
            "--sqn-xor-ak", inputs["sqn_xor_ak"],
        )  # fmt: skip

        assert output == {"kausf": case["outputs"]["kausf"]}, case["id"]


def test_res_star_matches_vectors(capsys, vectors) -> None:
    for case in cases_of(vectors, "res_star"):
        inputs = case["inputs"]
        output = run_keys_json(
            capsys,
            "res-star",
            "--ck", inputs["ck"],
            "--ik", inputs["ik"],
            "--snn", inputs["serving_network_name"],
            "--rand", inputs["rand"],
            "--res", inputs["res"],
        )  # fmt: skip

        assert output == {"res_star": case["outputs"]["res_star"]}, case["id"]


def test_hxres_star_matches_vectors(capsys, vectors) -> None:
    for case in cases_of(vectors, "hxres_star"):
        inputs = case["inputs"]
        output = run_keys_json(
            capsys, "hxres-star", "--rand", inputs["rand"], "--res-star", inputs["xres_star"]
        )

        assert output == {"hxres_star": case["outputs"]["hxres_star"]}, case["id"]


def test_akma_matches_vectors(capsys, vectors) -> None:
    a_tid_cases = {case["id"]: case for case in cases_of(vectors, "a_tid")}
    for case in cases_of(vectors, "kakma"):
        inputs = case["inputs"]
        supi = inputs["supi_p1_string"]
        home_network = ["--mcc", "001", "--mnc", "01"] if "@" in supi else []
        output = run_keys_json(
            capsys, "akma", "--kausf", inputs["kausf"], "--supi", supi, *home_network
        )

        assert set(output) == {"k_akma", "a_tid", "a_kid"}, case["id"]
        assert output["k_akma"] == case["outputs"]["kakma"], f"k_akma differs for {case['id']}"
        expected_a_tid = a_tid_cases[case["id"]]["outputs"]["a_tid"]
        assert output["a_tid"] == expected_a_tid, f"a_tid differs for {case['id']}"
        assert parse_a_kid(output["a_kid"]).a_tid.hex() == expected_a_tid, case["id"]


def test_akma_strips_imsi_prefix(capsys) -> None:
    bare = run_keys_json(capsys, "akma", "--kausf", K_AUSF, "--supi", "208930000000001")
    prefixed = run_keys_json(capsys, "akma", "--kausf", K_AUSF, "--supi", "imsi-208930000000001")

    assert prefixed == bare
    assert bare["k_akma"] == K_AKMA


def test_akma_a_kid_from_imsi(capsys) -> None:
    output = run_keys_json(capsys, "akma", "--kausf", K_AUSF, "--supi", "imsi-208930000000001")
    expected = format_a_kid("0", bytes.fromhex(output["a_tid"]), "208", "93")

    assert output["a_kid"] == expected
    assert output["a_kid"].endswith("@5gc.mnc093.mcc208.3gppnetwork.org")


def test_akma_rid_and_home_network(capsys) -> None:
    output = run_keys_json(
        capsys,
        "akma",
        "--kausf", K_AUSF,
        "--supi", "imsi-208930000000001",
        "--rid", "12",
        "--mcc", "208",
        "--mnc", "930",
    )  # fmt: skip
    parsed = parse_a_kid(output["a_kid"])

    assert parsed.routing_indicator == "12"
    assert parsed.mcc == "208"
    assert parsed.mnc == "930"


def test_akma_nai_with_home_network(capsys) -> None:
    output = run_keys_json(
        capsys,
        "akma",
        "--kausf", K_AUSF,
        "--supi", "nai-user1@nai.example.com",
        "--mcc", "001",
        "--mnc", "01",
    )  # fmt: skip

    assert parse_a_kid(output["a_kid"]).realm == "5gc.mnc001.mcc001.3gppnetwork.org"


def test_kaf_matches_vectors(capsys, vectors) -> None:
    for case in cases_of(vectors, "kaf"):
        inputs = case["inputs"]
        output = run_keys_json(
            capsys,
            "kaf",
            "--k-akma", inputs["kakma"],
            "--af-fqdn", inputs["af_fqdn"],
            "--ua-protocol-id", inputs["ua_star_protocol_id_hex"],
        )  # fmt: skip

        expected = {"af_id": inputs["af_id_hex"], "k_af": case["outputs"]["kaf"]}
        assert output == expected, case["id"]


def test_outputs_are_lowercase_hex(capsys) -> None:
    output = run_keys_json(capsys, "milenage", *MILENAGE_ARGS)

    for key, value in output.items():
        assert LOWERCASE_HEX.fullmatch(value), f"{key} is not lowercase hex"


# Input errors: exit status 2, a message naming the option, never the key


def assert_usage_error(capsys, argv: list[str], option: str, problem: str) -> str:
    status, out, err = run_keys(capsys, *argv)

    assert status == 2
    assert out == ""
    assert option in err
    assert problem in err
    return err


def test_odd_length_hex(capsys) -> None:
    key = "465b5ce8b199b49faa5f0a2ee238a6b"
    argv = ["milenage", *MILENAGE_ARGS]
    argv[argv.index("--k") + 1] = key

    err = assert_usage_error(capsys, argv, "--k", "odd number of hex digits")

    assert "32 hex digits" in err
    assert key not in err


def test_non_hex(capsys) -> None:
    argv = ["milenage", *MILENAGE_ARGS]
    argv[argv.index("--op") + 1] = "zz" * 16

    err = assert_usage_error(capsys, argv, "--op", "invalid hex")

    assert "zz" not in err


def test_hex_with_prefix(capsys) -> None:
    argv = ["milenage", *MILENAGE_ARGS]
    argv[argv.index("--rand") + 1] = "0x" + RAND

    assert_usage_error(capsys, argv, "--rand", "0x prefix")


def test_wrong_key_length(capsys) -> None:
    short_key = K_AUSF[:62]

    err = assert_usage_error(
        capsys,
        ["akma", "--kausf", short_key, "--supi", "imsi-208930000000001"],
        "--kausf",
        "got 31 octets, expected 32 octets (64 hex digits)",
    )

    assert short_key not in err


def test_empty_hex(capsys) -> None:
    assert_usage_error(
        capsys, ["hxres-star", "--rand", "", "--res-star", "00" * 16], "--rand", "missing value"
    )


def test_res_length_range(capsys) -> None:
    assert_usage_error(
        capsys,
        ["res-star", "--ck", CK, "--ik", IK, "--snn", SNN, "--rand", RAND, "--res", "00" * 17],
        "--res",
        "expected 4 to 16 octets",
    )


def test_invalid_snn(capsys) -> None:
    assert_usage_error(
        capsys,
        ["kausf", "--ck", CK, "--ik", IK, "--snn", "mnc093.mcc208", "--sqn-xor-ak", "00" * 6],
        "--snn",
        "invalid serving network name",
    )


def test_empty_supi(capsys) -> None:
    assert_usage_error(
        capsys, ["akma", "--kausf", K_AUSF, "--supi", ""], "--supi", "supi must not be empty"
    )


def test_malformed_supi(capsys) -> None:
    assert_usage_error(
        capsys, ["akma", "--kausf", K_AUSF, "--supi", "imsi-12ab"], "--supi", "invalid supi"
    )


def test_nai_supi_without_home_network(capsys) -> None:
    assert_usage_error(
        capsys,
        ["akma", "--kausf", K_AUSF, "--supi", "nai-user1@nai.example.com"],
        "--supi",
        "pass --mcc and --mnc",
    )


def test_mcc_without_mnc(capsys) -> None:
    assert_usage_error(
        capsys,
        ["akma", "--kausf", K_AUSF, "--supi", "imsi-208930000000001", "--mcc", "208"],
        "--mnc",
        "pass both or neither",
    )


def test_invalid_mnc(capsys) -> None:
    assert_usage_error(
        capsys,
        ["akma", "--kausf", K_AUSF, "--supi", "208930000000001", "--mcc", "208", "--mnc", "9"],
        "--mcc/--mnc",
        "invalid mnc",
    )


def test_invalid_rid(capsys) -> None:
    assert_usage_error(
        capsys,
        ["akma", "--kausf", K_AUSF, "--supi", "208930000000001", "--rid", "12345"],
        "--rid",
        "expected 1 to 4 digits",
    )


@pytest.mark.parametrize("ua_protocol_id", ["01000000", "010000000700"])
def test_ua_protocol_id_length(capsys, ua_protocol_id: str) -> None:
    assert_usage_error(
        capsys,
        [
            "kaf",
            "--k-akma", K_AKMA,
            "--af-fqdn", "af.example.com",
            "--ua-protocol-id", ua_protocol_id,
        ],  # fmt: skip
        "--ua-protocol-id",
        "expected 5 octets",
    )


def test_invalid_af_fqdn(capsys) -> None:
    assert_usage_error(
        capsys,
        [
            "kaf",
            "--k-akma", K_AKMA,
            "--af-fqdn", "af.example.com.",
            "--ua-protocol-id", "0100000007",
        ],  # fmt: skip
        "--af-fqdn",
        "invalid fqdn",
    )


def test_op_and_opc_together(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["keys", "milenage", *MILENAGE_ARGS, "--opc", "00" * 16])

    assert exit_info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_missing_op_and_opc(capsys) -> None:
    argv = ["keys", "milenage", "--k", "00" * 16, "--rand", RAND, "--sqn", "00" * 6]
    argv += ["--amf", "0000"]

    with pytest.raises(SystemExit) as exit_info:
        main(argv)

    assert exit_info.value.code == 2
    assert "--op" in capsys.readouterr().err


# Help text and the installed command


@pytest.mark.parametrize(
    ("derivation", "expected"),
    [
        ("milenage", "subscriber key K, 16 octets"),
        ("kausf", "SQN xor AK, the first 6 octets of AUTN, 6 octets"),
        ("res-star", "RES or XRES from f2, 4 to 16 octets"),
        ("hxres-star", "RES* or XRES*, 16 octets"),
        ("akma", "3-digit MNC needs --mnc"),
        ("kaf", "5 octets"),
    ],
)
def test_help_states_lengths(capsys, derivation: str, expected: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["keys", derivation, "--help"])
    help_text = " ".join(capsys.readouterr().out.split())

    assert exit_info.value.code == 0
    assert expected in help_text


def test_installed_command_runs() -> None:
    command = Path(sys.executable).with_name("msgin5g")

    completed = subprocess.run(
        [
            str(command),
            "keys",
            "hxres-star",
            "--rand", RAND,
            "--res-star", "5cc9527f4d21c43bee83a15443acf1c4",
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout) == {"hxres_star": "6970075e3c8245fdc2073003cf166279"}


def test_installed_command_usage_error() -> None:
    command = Path(sys.executable).with_name("msgin5g")

    completed = subprocess.run(
        [str(command), "keys", "hxres-star", "--rand", "abc", "--res-star", "00" * 16],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert completed.returncode == 2
    assert completed.stdout == ""
    assert "msgin5g keys hxres-star: error: --rand: invalid hex: odd number of hex digits" in completed.stderr
