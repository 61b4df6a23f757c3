"""`msgin5g keys`: compute Milenage, 5G AKA and AKMA values from the command line.

Each subcommand prints one JSON object whose values are lowercase hex (the
A-KID is text). The tool is meant for tests and interoperability checks: key
values given as options are visible to other local users in the process list.
"""

import argparse
import json
import re
from collections.abc import Callable

from msgin5g.cli.errors import UsageError
from msgin5g.crypto import aka, akma, milenage
from msgin5g.crypto.errors import CryptoInputError
from msgin5g.crypto.supi import supi_kdf_value

HEX_PATTERN = re.compile(r"[0-9A-Fa-f]*")
IMSI_DIGITS_PATTERN = re.compile(r"[0-9]+")
ROUTING_INDICATOR_PATTERN = re.compile(r"[0-9]{1,4}")
SNN_EXAMPLE = "5G:mnc001.mcc001.3gppnetwork.org"

DEFAULT_ROUTING_INDICATOR = "0"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "keys",
        help="compute Milenage, 5G AKA and AKMA keys (TS 35.206, TS 33.501, TS 33.535)",
        description=(
            "Compute one derivation and print the result as a JSON object with lowercase "
            "hex values. Options marked HEX take hex digits, two per octet. Key values on "
            "the command line are visible in the process list, so use test keys only."
        ),
    )
    derivations = parser.add_subparsers(dest="derivation", metavar="DERIVATION", required=True)

    _add_milenage(derivations)
    _add_kausf(derivations)
    _add_res_star(derivations)
    _add_hxres_star(derivations)
    _add_akma(derivations)
    _add_kaf(derivations)


def _add_derivation(
    derivations: argparse._SubParsersAction,
    name: str,
    summary: str,
    handler: Callable[[argparse.Namespace], int],
) -> argparse.ArgumentParser:
    parser = derivations.add_parser(name, help=summary, description=summary)
    parser.set_defaults(handler=handler)
    return parser


def _add_milenage(derivations: argparse._SubParsersAction) -> None:
    parser = _add_derivation(
        derivations,
        "milenage",
        "Run Milenage f1, f1*, f2, f3, f4, f5, f5* (TS 35.206) and build AUTN.",
        run_milenage,
    )
    parser.add_argument("--k", required=True, metavar="HEX", help="subscriber key K, 16 octets")
    operator_key = parser.add_mutually_exclusive_group(required=True)
    operator_key.add_argument("--op", metavar="HEX", help="operator variant OP, 16 octets")
    operator_key.add_argument(
        "--opc", metavar="HEX", help="OPc derived from OP and K, 16 octets"
    )
    parser.add_argument("--rand", required=True, metavar="HEX", help="RAND, 16 octets")
    parser.add_argument("--sqn", required=True, metavar="HEX", help="sequence number SQN, 6 octets")
    parser.add_argument(
        "--amf", required=True, metavar="HEX", help="authentication management field AMF, 2 octets"
    )


def _add_kausf(derivations: argparse._SubParsersAction) -> None:
    parser = _add_derivation(
        derivations, "kausf", "Derive K_AUSF for 5G AKA (TS 33.501 Annex A.2).", run_kausf
    )
    _add_ck_ik(parser)
    _add_snn(parser)
    parser.add_argument(
        "--sqn-xor-ak",
        required=True,
        metavar="HEX",
        help="SQN xor AK, the first 6 octets of AUTN, 6 octets",
    )


def _add_res_star(derivations: argparse._SubParsersAction) -> None:
    parser = _add_derivation(
        derivations, "res-star", "Derive RES* or XRES* (TS 33.501 Annex A.4).", run_res_star
    )
    _add_ck_ik(parser)
    _add_snn(parser)
    parser.add_argument("--rand", required=True, metavar="HEX", help="RAND, 16 octets")
    parser.add_argument(
        "--res", required=True, metavar="HEX", help="RES or XRES from f2, 4 to 16 octets"
    )


def _add_hxres_star(derivations: argparse._SubParsersAction) -> None:
    parser = _add_derivation(
        derivations, "hxres-star", "Compute HRES* or HXRES* (TS 33.501 Annex A.5).", run_hxres_star
    )
    parser.add_argument("--rand", required=True, metavar="HEX", help="RAND, 16 octets")
    parser.add_argument("--res-star", required=True, metavar="HEX", help="RES* or XRES*, 16 octets")


def _add_akma(derivations: argparse._SubParsersAction) -> None:
    parser = _add_derivation(
        derivations,
        "akma",
        "Derive K_AKMA, the A-TID and the A-KID from K_AUSF (TS 33.535 Annex A.2 and A.3).",
        run_akma,
    )
    parser.add_argument("--kausf", required=True, metavar="HEX", help="K_AUSF, 32 octets")
    parser.add_argument(
        "--supi",
        required=True,
        help=(
            "SUPI as imsi-<digits>, nai-<username@realm> or bare IMSI digits. "
            "The KDF takes the value without the prefix"
        ),
    )
    parser.add_argument(
        "--rid",
        default=DEFAULT_ROUTING_INDICATOR,
        help="Routing Indicator for the A-KID, 1 to 4 digits (default: %(default)s)",
    )
    parser.add_argument(
        "--mcc",
        help=(
            "home network MCC for the A-KID realm, 3 digits "
            "(default: the first 3 digits of an IMSI SUPI)"
        ),
    )
    parser.add_argument(
        "--mnc",
        help=(
            "home network MNC for the A-KID realm, 2 or 3 digits (default: digits 4 and 5 "
            "of an IMSI SUPI, so a 3-digit MNC needs --mnc and --mcc). "
            "A NAI SUPI needs --mcc and --mnc."
        ),
    )


def _add_kaf(derivations: argparse._SubParsersAction) -> None:
    parser = _add_derivation(
        derivations,
        "kaf",
        "Build AF_ID and derive K_AF from K_AKMA (TS 33.535 Annex A.4).",
        run_kaf,
    )
    parser.add_argument("--k-akma", required=True, metavar="HEX", help="K_AKMA, 32 octets")
    parser.add_argument(
        "--af-fqdn",
        required=True,
        metavar="FQDN",
        help="FQDN of the AF, for example af.example.com",
    )
    parser.add_argument(
        "--ua-protocol-id",
        required=True,
        metavar="HEX",
        help=(
            "Ua* security protocol identifier (TS 33.220 Annex H), 5 octets, "
            "for example 0100000007 for shared-key TLS 1.3"
        ),
    )


def _add_ck_ik(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ck", required=True, metavar="HEX", help="cipher key CK, 16 octets")
    parser.add_argument("--ik", required=True, metavar="HEX", help="integrity key IK, 16 octets")


def _add_snn(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--snn",
        required=True,
        metavar="NAME",
        help=f"serving network name, for example {SNN_EXAMPLE} (the MNC has 3 digits)",
    )


# Input parsing. Messages name the option and the fix, never a key value.


def parse_hex(
    option: str,
    text: str,
    *,
    length: int | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
) -> bytes:
    """Decode the hex value of `option` and check its length in octets."""
    expected = _describe_length(length, min_length, max_length)
    if not text:
        raise UsageError(f"{option}: missing value: pass {expected} as hex digits")
    if HEX_PATTERN.fullmatch(text) is None:
        raise UsageError(
            f"{option}: invalid hex: use only the digits 0-9 and a-f, without spaces "
            f"or a 0x prefix. Pass {expected}"
        )
    if len(text) % 2:
        raise UsageError(
            f"{option}: invalid hex: odd number of hex digits ({len(text)}). "
            f"Pass {expected}, two hex digits per octet"
        )

    octets = bytes.fromhex(text)
    too_short = min_length is not None and len(octets) < min_length
    too_long = max_length is not None and len(octets) > max_length
    if (length is not None and len(octets) != length) or too_short or too_long:
        raise UsageError(f"{option}: wrong length: got {len(octets)} octets, expected {expected}")
    return octets


def _describe_length(length: int | None, min_length: int | None, max_length: int | None) -> str:
    if length is not None:
        return f"{length} octets ({2 * length} hex digits)"
    return f"{min_length} to {max_length} octets ({2 * min_length} to {2 * max_length} hex digits)"


def check_snn(snn: str) -> str:
    if not snn.startswith("5G:"):
        raise UsageError(
            f"--snn: invalid serving network name {snn!r}: expected a name that starts "
            f"with '5G:', for example {SNN_EXAMPLE}"
        )
    return snn


def check_routing_indicator(rid: str) -> str:
    if ROUTING_INDICATOR_PATTERN.fullmatch(rid) is None:
        raise UsageError(f"--rid: invalid Routing Indicator {rid!r}: expected 1 to 4 digits")
    return rid


def _call[T](option: str, derive: Callable[[], T]) -> T:
    """Run `derive`, turning a rejected argument into a UsageError for `option`."""
    try:
        return derive()
    except CryptoInputError as error:
        raise UsageError(f"{option}: {error}") from error


def print_json(values: dict[str, str]) -> int:
    print(json.dumps(values, indent=2))
    return 0


# Handlers


def run_milenage(args: argparse.Namespace) -> int:
    k = parse_hex("--k", args.k, length=16)
    if args.opc is not None:
        opc = parse_hex("--opc", args.opc, length=16)
    else:
        opc = milenage.opc_from_op(k, parse_hex("--op", args.op, length=16))
    rand = parse_hex("--rand", args.rand, length=16)
    sqn = parse_hex("--sqn", args.sqn, length=6)
    amf = parse_hex("--amf", args.amf, length=2)

    output = milenage.milenage(k, opc, rand, sqn, amf)
    autn = milenage.build_autn(sqn, output.ak, amf, output.mac_a)
    return print_json(
        {
            "opc": opc.hex(),
            "mac_a": output.mac_a.hex(),
            "mac_s": output.mac_s.hex(),
            "res": output.res.hex(),
            "ck": output.ck.hex(),
            "ik": output.ik.hex(),
            "ak": output.ak.hex(),
            "ak_star": output.ak_star.hex(),
            "autn": autn.hex(),
        }
    )


def run_kausf(args: argparse.Namespace) -> int:
    ck = parse_hex("--ck", args.ck, length=16)
    ik = parse_hex("--ik", args.ik, length=16)
    snn = check_snn(args.snn)
    sqn_xor_ak = parse_hex("--sqn-xor-ak", args.sqn_xor_ak, length=6)

    k_ausf = aka.k_ausf(ck, ik, snn, sqn_xor_ak)
    return print_json({"kausf": k_ausf.hex()})


def run_res_star(args: argparse.Namespace) -> int:
    ck = parse_hex("--ck", args.ck, length=16)
    ik = parse_hex("--ik", args.ik, length=16)
    snn = check_snn(args.snn)
    rand = parse_hex("--rand", args.rand, length=16)
    res = parse_hex("--res", args.res, min_length=4, max_length=16)

    res_star = aka.res_star(ck, ik, snn, rand, res)
    return print_json({"res_star": res_star.hex()})


def run_hxres_star(args: argparse.Namespace) -> int:
    rand = parse_hex("--rand", args.rand, length=16)
    res_star = parse_hex("--res-star", args.res_star, length=16)

    return print_json({"hxres_star": aka.hxres_star(rand, res_star).hex()})


def run_akma(args: argparse.Namespace) -> int:
    k_ausf = parse_hex("--kausf", args.kausf, length=32)
    supi_value = _call("--supi", lambda: supi_kdf_value(args.supi))
    rid = check_routing_indicator(args.rid)
    mcc, mnc = home_network(supi_value, args.mcc, args.mnc)

    k_akma = akma.k_akma(k_ausf, supi_value)
    a_tid = akma.a_tid(k_ausf, supi_value)
    a_kid = akma.format_a_kid(rid, a_tid, mcc, mnc)
    return print_json({"k_akma": k_akma.hex(), "a_tid": a_tid.hex(), "a_kid": a_kid})


def home_network(supi_value: str, mcc: str | None, mnc: str | None) -> tuple[str, str]:
    """Return the (MCC, MNC) for the A-KID realm from the options or from the IMSI."""
    if mcc is not None and mnc is not None:
        return _call("--mcc/--mnc", lambda: aka.check_mcc_mnc(mcc, mnc))
    if mcc is not None or mnc is not None:
        raise UsageError("--mcc and --mnc: pass both or neither")
    if IMSI_DIGITS_PATTERN.fullmatch(supi_value) is None:
        raise UsageError(
            "--supi: a NAI SUPI does not contain the home network, "
            "so pass --mcc and --mnc for the A-KID realm"
        )

    # NOTE: the IMSI does not show whether its MNC has 2 or 3 digits, so the
    # default takes 2. A 3-digit MNC must be passed with --mnc.
    return supi_value[:3], supi_value[3:5]


def run_kaf(args: argparse.Namespace) -> int:
    k_akma = parse_hex("--k-akma", args.k_akma, length=32)
    ua_protocol_id = parse_hex("--ua-protocol-id", args.ua_protocol_id, length=5)

    af_id = _call("--af-fqdn", lambda: akma.af_id(args.af_fqdn, ua_protocol_id))
    k_af = akma.k_af(k_akma, af_id)
    return print_json({"af_id": af_id.hex(), "k_af": k_af.hex()})
