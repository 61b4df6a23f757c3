"""Reference vectors: Milenage, the 5G AKA and AKMA derivations and the generic KDF.

Each entry of the reference vector file (located as by the `shared_dir`
fixture) is one test, with the id "<function>-<id>". Besides the outputs, each case checks the
encodings that the entry records (S, the serving network name, the SUPI as
fed), so that an encoding mistake shows up before the HMAC.

Entry kinds:
- conformant (the default): every output must match;
- `negative: true`: no output may match;
- `note` containing "ALTERNATIVE": the entry feeds a prefixed SUPI to the KDF.
  Our function, given that prefixed SUPI, must strip the prefix, so its output
  equals the bare-value output and differs from the entry's output;
- `non_conformant_reference`: known wrong public outputs; ours must differ.
"""

import copy
import hashlib
import hmac
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from msgin5g.crypto import aka, akma, milenage
from msgin5g.crypto.kdf import encode_s, encode_string, kdf
from msgin5g.crypto.supi import supi_kdf_value
from reference import require_reference_dir

# Parametrize needs the cases at import time, before any fixture runs.
VECTORS_FILE = require_reference_dir() / "vectors" / "vectors.json"

SBI_SUPI_PREFIXES = ("imsi-", "nai-")


def load_cases() -> list[dict]:
    return json.loads(VECTORS_FILE.read_text(encoding="utf-8"))


CASES = load_cases()


def case_id(case: dict) -> str:
    return f"{case['function']}-{case['id']}"


@dataclass
class Computed:
    """Our values for one vector entry, keyed by the entry's own names."""

    outputs: dict[str, bytes]
    # Our S (the KDF input string, or the hash input) for inputs.S_hex.
    s: bytes | None = None
    # Our encodings of inputs that the entry also records in hex.
    encodings: dict[str, bytes] = field(default_factory=dict)


def unhex(inputs: dict, name: str) -> bytes:
    return bytes.fromhex(inputs[name])


def hmac_sha256(key: bytes, s: bytes) -> bytes:
    return hmac.digest(key, s, hashlib.sha256)


def compute_milenage(inputs: dict) -> Computed:
    k = unhex(inputs, "K")
    sqn = unhex(inputs, "SQN")
    amf = unhex(inputs, "AMF")

    opc = milenage.opc_from_op(k, unhex(inputs, "OP"))
    output = milenage.milenage(k, opc, unhex(inputs, "RAND"), sqn, amf)
    autn = milenage.build_autn(sqn, output.ak, amf, output.mac_a)
    return Computed(
        outputs={
            "OPc": opc,
            "f1_MAC_A": output.mac_a,
            "f1star_MAC_S": output.mac_s,
            "f2_RES": output.res,
            "f3_CK": output.ck,
            "f4_IK": output.ik,
            "f5_AK": output.ak,
            "f5star_AK": output.ak_star,
            "AUTN": autn,
        }
    )


def compute_kausf(inputs: dict) -> Computed:
    ck = unhex(inputs, "ck")
    ik = unhex(inputs, "ik")
    snn = inputs["serving_network_name"]
    sqn_xor_ak = unhex(inputs, "sqn_xor_ak")

    k_ausf = aka.k_ausf(ck, ik, snn, sqn_xor_ak)
    s = encode_s(0x6A, encode_string(snn), sqn_xor_ak)
    return Computed(
        outputs={"kausf": k_ausf, "HMAC over our S": hmac_sha256(ck + ik, s)},
        s=s,
        encodings={
            "serving_network_name_hex": encode_string(snn),
            "kdf_key_hex": ck + ik,
            "sqn_xor_ak": bytes(a ^ b for a, b in zip(unhex(inputs, "sqn"), unhex(inputs, "ak"))),
        },
    )


def compute_res_star(inputs: dict) -> Computed:
    ck = unhex(inputs, "ck")
    ik = unhex(inputs, "ik")
    snn = inputs["serving_network_name"]
    rand = unhex(inputs, "rand")
    res = unhex(inputs, "res")

    res_star = aka.res_star(ck, ik, snn, rand, res)
    s = encode_s(0x6B, encode_string(snn), rand, res)
    full_output = hmac_sha256(ck + ik, s)
    return Computed(
        outputs={"res_star": res_star, "kdf_output_full_32_octets": full_output},
        s=s,
        encodings={"serving_network_name_hex": encode_string(snn)},
    )


def compute_hxres_star(inputs: dict) -> Computed:
    rand = unhex(inputs, "rand")
    xres_star = unhex(inputs, "xres_star")

    hxres_star = aka.hxres_star(rand, xres_star)
    s = rand + xres_star
    return Computed(
        outputs={"hxres_star": hxres_star, "sha256_full_32_octets": hashlib.sha256(s).digest()},
        s=s,
    )


def compute_kseaf(inputs: dict) -> Computed:
    k_ausf = unhex(inputs, "kausf")
    snn = inputs["serving_network_name"]

    k_seaf = aka.k_seaf(k_ausf, snn)
    s = encode_s(0x6C, encode_string(snn))
    return Computed(outputs={"kseaf": k_seaf, "HMAC over our S": hmac_sha256(k_ausf, s)}, s=s)


def compute_kamf(inputs: dict) -> Computed:
    k_seaf = unhex(inputs, "kseaf")
    supi = inputs["supi"]
    abba = unhex(inputs, "abba")

    k_amf = aka.k_amf(k_seaf, supi, abba)
    p0 = encode_string(supi_kdf_value(supi))
    s = encode_s(0x6D, p0, abba)
    return Computed(
        outputs={"kamf": k_amf, "HMAC over our S": hmac_sha256(k_seaf, s)},
        s=s,
        encodings={"p0_as_fed": p0},
    )


def compute_kakma(inputs: dict) -> Computed:
    k_ausf = unhex(inputs, "kausf")
    supi = inputs["supi_p1_string"]

    k_akma = akma.k_akma(k_ausf, supi)
    p1 = encode_string(supi_kdf_value(supi))
    s = encode_s(0x80, b"AKMA", p1)
    return Computed(
        outputs={"kakma": k_akma, "HMAC over our S": hmac_sha256(k_ausf, s)},
        s=s,
        encodings={"supi_p1_hex": p1},
    )


def compute_a_tid(inputs: dict) -> Computed:
    k_ausf = unhex(inputs, "kausf")
    supi = inputs["supi_p1_string"]

    a_tid = akma.a_tid(k_ausf, supi)
    p1 = encode_string(supi_kdf_value(supi))
    s = encode_s(0x81, b"A-TID", p1)
    return Computed(
        outputs={"a_tid": a_tid, "HMAC over our S": hmac_sha256(k_ausf, s)},
        s=s,
        encodings={"supi_p1_hex": p1},
    )


def compute_kaf(inputs: dict) -> Computed:
    k_akma = unhex(inputs, "kakma")
    af_id = akma.af_id(inputs["af_fqdn"], unhex(inputs, "ua_star_protocol_id_hex"))

    k_af = akma.k_af(k_akma, af_id)
    s = encode_s(0x82, af_id)
    return Computed(
        outputs={"kaf": k_af, "HMAC over our S": hmac_sha256(k_akma, s)},
        s=s,
        encodings={"af_id_hex": af_id},
    )


def compute_kdf(inputs: dict) -> Computed:
    key = unhex(inputs, "key")
    fc = int(inputs["fc"], 16)
    params = [bytes.fromhex(param["hex"]) for param in inputs["params"]]

    out = kdf(key, fc, *params)
    encodings = {
        f"params[{index}].hex": encode_string(param["string"])
        for index, param in enumerate(inputs["params"])
        if "string" in param
    }
    return Computed(
        outputs={"out": out, "ck_prime": out[:16], "ik_prime": out[16:]},
        s=encode_s(fc, *params),
        encodings=encodings,
    )


COMPUTE: dict[str, Callable[[dict], Computed]] = {
    "milenage": compute_milenage,
    "kausf": compute_kausf,
    "res_star": compute_res_star,
    "hxres_star": compute_hxres_star,
    "kseaf": compute_kseaf,
    "kamf": compute_kamf,
    "kakma": compute_kakma,
    "a_tid": compute_a_tid,
    "kaf": compute_kaf,
    "kdf": compute_kdf,
}

# For the derivations that take a SUPI: the input that our function is given,
# and the input that records the string the entry's KDF took.
SUPI_INPUT = {"kamf": "supi", "kakma": "supi_p1_string", "a_tid": "supi_p1_string"}
SUPI_AS_FED = {"kamf": "p0_as_fed", "kakma": "supi_p1_string", "a_tid": "supi_p1_string"}

# Outputs that only cross-check the S we built, so no entry records them.
DERIVED_CHECKS = ("HMAC over our S",)


def is_alternative(case: dict) -> bool:
    return "ALTERNATIVE" in (case.get("note") or "")


def compute(case: dict) -> Computed:
    function = case["function"]
    assert function in COMPUTE, f"no test code for vector function {function!r}"
    return COMPUTE[function](case["inputs"])


def recorded_encoding(inputs: dict, name: str) -> bytes:
    """Return the encoding that the entry records for `name`, as bytes."""
    if name == "p0_as_fed":
        return encode_string(inputs[name])
    if name.startswith("params["):
        index = int(name[len("params[") : name.index("]")])
        return bytes.fromhex(inputs["params"][index]["hex"])
    return bytes.fromhex(inputs[name])


def check_conformant(case: dict, computed: Computed) -> None:
    inputs = case["inputs"]

    if "S_hex" in inputs:
        assert computed.s is not None, "no S built for an entry that records S_hex"
        assert computed.s.hex() == inputs["S_hex"], "S (the KDF input string) differs"
    for name, ours in computed.encodings.items():
        assert ours == recorded_encoding(inputs, name), f"encoding of {name} differs"

    for name, expected in case["outputs"].items():
        assert name in computed.outputs, f"output {name} has no counterpart in the test code"
        assert computed.outputs[name].hex() == expected, f"{name} differs"

    main_output = next(iter(case["outputs"]))
    for name in DERIVED_CHECKS:
        if name in computed.outputs:
            assert computed.outputs[name] == computed.outputs[main_output], (
                f"{main_output} differs from HMAC-SHA-256 over the S built by encode_s"
            )


def check_negative(case: dict, computed: Computed) -> None:
    for name, wrong in case["outputs"].items():
        assert name in computed.outputs, f"output {name} has no counterpart in the test code"
        assert computed.outputs[name].hex() != wrong, f"{name} matches a negative vector"


# Inputs that record the SUPI or depend on it. All other inputs are the key
# and the remaining parameters.
SUPI_RELATED_INPUTS = {"supi", "p0_as_fed", "supi_p1_string", "supi_p1_hex", "S_hex"}


def find_bare_case(case: dict, bare_supi: str) -> dict | None:
    """Return the conformant entry with the same other inputs that fed `bare_supi`, if any."""
    function = case["function"]
    other_inputs = {
        name: value for name, value in case["inputs"].items() if name not in SUPI_RELATED_INPUTS
    }
    for other in CASES:
        if other["function"] != function or other.get("negative") or is_alternative(other):
            continue
        same_inputs = all(
            other["inputs"].get(name) == value for name, value in other_inputs.items()
        )
        if same_inputs and other["inputs"][SUPI_AS_FED[function]] == bare_supi:
            return other
    return None


def check_alternative(case: dict) -> Computed:
    """Check an ALTERNATIVE entry and return our values for the SUPI form it fed."""
    function = case["function"]
    assert function in SUPI_INPUT, f"ALTERNATIVE entry for {function!r}, which takes no SUPI"
    fed = case["inputs"][SUPI_AS_FED[function]]

    ours = COMPUTE[function]({**case["inputs"], SUPI_INPUT[function]: fed})
    for name, alternative in case["outputs"].items():
        assert ours.outputs[name].hex() != alternative, f"{name} equals the ALTERNATIVE output"
    if "S_hex" in case["inputs"]:
        assert ours.s.hex() != case["inputs"]["S_hex"], "S equals the ALTERNATIVE S"

    prefix = next((prefix for prefix in SBI_SUPI_PREFIXES if fed.startswith(prefix)), None)
    if prefix is None:
        return ours

    bare = fed.removeprefix(prefix)
    ours_bare = COMPUTE[function]({**case["inputs"], SUPI_INPUT[function]: bare})
    bare_case = find_bare_case(case, bare)
    for name in case["outputs"]:
        assert ours.outputs[name] == ours_bare.outputs[name], (
            f"{name} for the prefixed SUPI differs from {name} for the bare value"
        )
        if bare_case is not None:
            assert ours.outputs[name].hex() == bare_case["outputs"][name], (
                f"{name} for the prefixed SUPI differs from entry {case_id(bare_case)}"
            )
    return ours


def check_non_conformant_references(case: dict, computed: Computed) -> None:
    references = case.get("non_conformant_reference") or {}
    for source, wrong in references.items():
        if source == "why":
            continue
        for name in case["outputs"]:
            assert computed.outputs[name].hex() != wrong, (
                f"{name} equals the non-conformant reference {source}"
            )


def check_case(case: dict) -> None:
    """Check one entry according to its kind (see the module docstring)."""
    if is_alternative(case):
        computed = check_alternative(case)
    elif case.get("negative"):
        computed = compute(case)
        check_negative(case, computed)
    else:
        computed = compute(case)
        check_conformant(case, computed)
    check_non_conformant_references(case, computed)


@pytest.mark.parametrize("case", CASES, ids=[case_id(case) for case in CASES])
def test_vector(case: dict) -> None:
    check_case(case)


def test_vector_file_in_shared_dir(shared_dir: Path) -> None:
    assert VECTORS_FILE.parent.parent == shared_dir


def test_vector_ids_unique_per_function() -> None:
    counts = Counter(case_id(case) for case in CASES)
    duplicates = [name for name, count in counts.items() if count > 1]
    assert duplicates == []


# The entries of the current file are all conformant, so the cases below build
# a negative and an ALTERNATIVE entry from a real one to show that the checks
# for those kinds work and can fail.


def first_case(function: str) -> dict:
    return next(case for case in CASES if case["function"] == function and not case.get("negative"))


def alternative_kakma_case(output_of_prefixed_kdf: bool) -> dict:
    case = copy.deepcopy(first_case("kakma"))
    inputs = case["inputs"]
    prefixed = "imsi-" + inputs["supi_p1_string"]
    p1 = prefixed.encode("ascii")
    k_ausf = bytes.fromhex(inputs["kausf"])

    inputs["supi_p1_string"] = prefixed
    inputs["supi_p1_hex"] = p1.hex()
    inputs["S_hex"] = encode_s(0x80, b"AKMA", p1).hex()
    if output_of_prefixed_kdf:
        case["outputs"]["kakma"] = kdf(k_ausf, 0x80, b"AKMA", p1).hex()
    case["note"] = "ALTERNATIVE: SUPI fed with its imsi- prefix"
    case["non_conformant_reference"] = None
    return case


def test_alternative_entry_passes_when_prefix_stripped() -> None:
    check_case(alternative_kakma_case(output_of_prefixed_kdf=True))


def test_alternative_entry_fails_on_conformant_output() -> None:
    with pytest.raises(AssertionError, match="equals the ALTERNATIVE output"):
        check_case(alternative_kakma_case(output_of_prefixed_kdf=False))


def test_negative_entry_fails_on_conformant_output() -> None:
    case = copy.deepcopy(first_case("kaf"))
    case["negative"] = True

    with pytest.raises(AssertionError, match="kaf matches a negative vector"):
        check_case(case)


def test_negative_entry_passes_on_other_output() -> None:
    case = copy.deepcopy(first_case("kaf"))
    case["negative"] = True
    case["outputs"]["kaf"] = "00" * 32

    check_case(case)


def test_non_conformant_reference_detected() -> None:
    case = copy.deepcopy(first_case("kakma"))
    case["non_conformant_reference"] = {"example": case["outputs"]["kakma"], "why": "test"}

    with pytest.raises(AssertionError, match="non-conformant reference example"):
        check_case(case)
