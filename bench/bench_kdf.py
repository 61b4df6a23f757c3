"""Row 1: AKMA key derivations per second on one core, against raw HMAC-SHA-256 calls.

One derivation is what a UE does after primary authentication, and what the
AUSF and the AAnF do between them for one UE. It is K_AKMA and A-TID from
K_AUSF (TS 33.535 A.2 and A.3) and K_AF from K_AKMA (A.4), computed by the
functions of `msgin5g.crypto.akma` with their input checks. Each of the three is one
HMAC-SHA-256 over a TS 33.220 B.2 input string, so one derivation contains
three HMACs. The reference is one `hmac.digest(key, message, "sha256")` call
per unit, with a 32-octet key and a message as long as the K_AKMA input.
"""

from __future__ import annotations

import hmac
import os
import time

from common import interleaved_samples, make_row, pin_to_cpus, repeats_for

from msgin5g.crypto.akma import UA_TLS13, a_tid, af_id, k_af, k_akma

NAME = "kdf"
GOAL = 0.5
UE_COUNT = 1000
AF_FQDN = "msgin5g.example.test"

# Units per sample: a sample of the subject takes about 0.1 s (quick) or 1 s.
QUICK_UNITS = 20_000
FULL_UNITS = 200_000


def ue_inputs(count: int) -> list[tuple[bytes, str]]:
    """Return (K_AUSF, SUPI) for `count` distinct test UEs."""
    return [(os.urandom(32), f"imsi-00101{number:010d}") for number in range(count)]


def hmac_inputs(count: int) -> list[tuple[bytes, bytes]]:
    """Return (key, message) pairs shaped like the K_AKMA input: 32-octet key, 24-octet S."""
    # S = FC || "AKMA" || 0x0004 || 15-digit SUPI || 0x000f: 1 + 4 + 2 + 15 + 2 octets.
    return [(os.urandom(32), os.urandom(24)) for _ in range(count)]


def derivation_rate(inputs: list[tuple[bytes, str]], af_id_value: bytes, units: int) -> float:
    """Run `units` derivations (K_AKMA, A-TID, K_AF) and return derivations per second."""
    rounds = max(1, units // len(inputs))
    start = time.perf_counter()
    for _ in range(rounds):
        for k_ausf, supi in inputs:
            key = k_akma(k_ausf, supi)
            a_tid(k_ausf, supi)
            k_af(key, af_id_value)
    return rounds * len(inputs) / (time.perf_counter() - start)


def hmac_rate(inputs: list[tuple[bytes, bytes]], units: int) -> float:
    """Run `units` raw HMAC-SHA-256 calls and return calls per second."""
    rounds = max(1, units // len(inputs))
    start = time.perf_counter()
    for _ in range(rounds):
        for key, message in inputs:
            hmac.digest(key, message, "sha256")
    return rounds * len(inputs) / (time.perf_counter() - start)


def run(quick: bool) -> list[dict]:
    """Measure derivations per second and HMAC calls per second, alternately, on one CPU."""
    units = QUICK_UNITS if quick else FULL_UNITS
    repeats = repeats_for(quick, quick_default=3, full_default=9)
    ues = ue_inputs(UE_COUNT)
    pairs = hmac_inputs(UE_COUNT)
    af_id_value = af_id(AF_FQDN, UA_TLS13)

    original = os.sched_getaffinity(0)
    cpu = max(original)
    pinned = pin_to_cpus(os.getpid(), {cpu})
    try:
        derivation_rate(ues, af_id_value, units // 10)  # Warm-up of both code paths.
        hmac_rate(pairs, units // 10)
        samples, reference_samples = interleaved_samples(
            lambda: derivation_rate(ues, af_id_value, units),
            lambda: hmac_rate(pairs, units * 3),
            repeats,
        )
    finally:
        if pinned:
            os.sched_setaffinity(0, original)

    row = make_row(
        name=NAME,
        subject="K_AKMA + A-TID + K_AF derivations/s, one core (msgin5g.crypto.akma)",
        reference="hmac.digest(key, msg, 'sha256') calls/s, one core",
        samples=samples,
        reference_samples=reference_samples,
        goal=GOAL,
        unit="derivations/s vs HMAC calls/s",
        extra={
            "unit": (
                "one derivation = K_AKMA + A-TID + K_AF for one UE = 3 HMAC-SHA-256 plus the "
                "input checks and TS 33.220 B.2 encoding; one reference unit = 1 hmac.digest call"
            ),
            "hmacs_per_derivation": 3,
            "af_id": "built once per AF, outside the timed loop (a UE or an AF reuses it)",
            "ues": UE_COUNT,
            "units_per_sample": units,
            "pinned_cpu": cpu if pinned else None,
        },
    )
    _add_per_hmac_view(row)
    return [row]


def _add_per_hmac_view(row: dict) -> None:
    """Add the ratio per HMAC: what the project's wrappers cost above the HMAC itself."""
    subject, reference = row["subject_per_s"], row["reference_per_s"]
    if subject and reference:
        row["extra"]["hmac_per_s_inside_derivations"] = 3 * subject
        row["extra"]["ratio_per_hmac"] = 3 * subject / reference
