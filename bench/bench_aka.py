"""Measure 5G AKA primary authentications per second against K_AF retrievals per second.

The UDM, AUSF and AAnF run as separate processes (with the CM server and the
MSGin5G Server, which stay idle) from `msgin5g.deployment.local`. The UE
side runs in this process: the software USIM (`msgin5g.service.usim`)
computes RES, CK and IK, and `msgin5g.service.primary_auth.authenticate`
sends AuthenticationInfo and RES* to the AUSF. Each authentication costs the
UDM a vector and an SQN update, and the AUSF a K_AKMA registration at the
AAnF (TS 33.535 clause 6.1).

Subject: primary authentications per second, CONCURRENCY UEs in flight
over one HTTP/2 connection. Reference: K_AF retrievals per second
(retrieve-applicationkey at the same AAnF, for the A-KIDs those
authentications produced), with the same concurrency from Python httpx.
The row is report-only (goal null).
"""

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

NAME = "aka_vs_kaf"
MCC, MNC, ROUTING_INDICATOR = "001", "01", "0"
SUPI_PREFIX = "imsi-00101"
SERVER_FQDN = "msgin5g.bench.example.test"
RETRIEVE_PATH = "/naanf-akma/v1/retrieve-applicationkey"
CONCURRENCY = 32


def subscribers(count: int) -> list[dict]:
    """Return `count` subscribers with random K and OPc, AKMA allowed, SQN 0."""
    return [
        {
            "supi": f"{SUPI_PREFIX}{number:010d}",
            "k": os.urandom(16).hex(),
            "opc": os.urandom(16).hex(),
            "amf": "8000",
            "sqn": "000000000000",
            "akma_allowed": True,
            "routing_indicator": ROUTING_INDICATOR,
        }
        for number in range(1, count + 1)
    ]


async def in_flight(count: int, concurrency: int, task) -> float:
    """Await `task(index)` for index 0..count-1, `concurrency` at a time; return completions per second."""
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < count:
            index = next_index
            next_index += 1
            await task(index)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - started)


class Bench:
    """The UEs, their USIMs and the latest A-KID of each."""

    def __init__(self, deployment, provisioned: list[dict]) -> None:
        from msgin5g.service.ue_profile import UeProfile
        from msgin5g.service.usim import Usim

        self.aanf_uri = deployment.services["aanf"].uri
        self.profiles = [
            UeProfile(
                supi=entry["supi"], k=bytes.fromhex(entry["k"]), opc=bytes.fromhex(entry["opc"]),
                mcc=MCC, mnc=MNC, routing_indicator=ROUTING_INDICATOR, ue_service_id="unused",
                ausf_uri=deployment.ausf_uri, server_host=common.LOOPBACK, server_port=1,
                server_fqdn=SERVER_FQDN,
            )
            for entry in provisioned
        ]
        # One USIM per UE for the whole run, so that its SQN state follows the UDM's.
        self.usims = [Usim(k=profile.k, opc=profile.opc) for profile in self.profiles]
        self.a_kids: list[str | None] = [None] * len(self.profiles)

    async def authentications(self, http, concurrency: int) -> float:
        from msgin5g.service.primary_auth import authenticate

        async def one(index: int) -> None:
            keys = await authenticate(http, self.profiles[index], self.usims[index])
            self.a_kids[index] = keys.a_kid

        return await in_flight(len(self.profiles), concurrency, one)

    async def retrievals(self, http, count: int, concurrency: int) -> float:
        from msgin5g.crypto.akma import UA_TLS13, af_id_to_wire

        af_id = af_id_to_wire(SERVER_FQDN, UA_TLS13)
        uri = self.aanf_uri + RETRIEVE_PATH

        async def one(index: int) -> None:
            a_kid = self.a_kids[index % len(self.a_kids)]
            response = await http.post(uri, json={"afId": af_id, "aKId": a_kid})
            if response.status_code != 200:
                raise common.BenchError(f"retrieve-applicationkey returned {response.status_code}: {response.text}")

        return await in_flight(count, concurrency, one)


async def measure(
    workdir: Path, ue_count: int, retrievals: int, repeats: int
) -> tuple[list[float], list[float], dict]:
    """Start the deployment, authenticate every UE once, then sample both sides alternately."""
    from msgin5g.cli.provision import provision
    from msgin5g.deployment.local import DeploymentSettings, running_deployment
    from msgin5g.service.client import new_http_client

    provisioned = subscribers(ue_count)
    provision(workdir / "msgin5g.sqlite3", {"subscribers": provisioned, "associations": []})
    settings = DeploymentSettings(mcc=MCC, mnc=MNC, server_fqdn=SERVER_FQDN)

    aka_samples: list[float] = []
    kaf_samples: list[float] = []
    async with running_deployment(workdir, settings) as deployment:
        bench = Bench(deployment, provisioned)
        pids = {name: deployment.services[name].process.pid for name in ("udm", "ausf", "aanf")}
        pids["ue"] = os.getpid()
        cpu = CpuMeter(pids)
        async with new_http_client() as http:
            # Warm-up: the first round also creates every UE's AKMA context.
            await bench.authentications(http, CONCURRENCY)
            await bench.retrievals(http, min(retrievals, 500), CONCURRENCY)
            for index in range(repeats):
                if index % 2 == 0:
                    aka_samples.append(await cpu.measure("aka", bench.authentications(http, CONCURRENCY)))
                    kaf_samples.append(await cpu.measure("kaf", bench.retrievals(http, retrievals, CONCURRENCY)))
                else:
                    kaf_samples.append(await cpu.measure("kaf", bench.retrievals(http, retrievals, CONCURRENCY)))
                    aka_samples.append(await cpu.measure("aka", bench.authentications(http, CONCURRENCY)))

    cpu_ms = {
        "aka": cpu.per_operation_ms("aka", ue_count * repeats),
        "kaf": cpu.per_operation_ms("kaf", retrievals * repeats),
    }
    return aka_samples, kaf_samples, cpu_ms


class CpuMeter:
    """CPU seconds that each process used during the measured rounds of each kind."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.seconds: dict[str, dict[str, float]] = {}

    async def measure(self, kind: str, rounds) -> float:
        before = {name: process_cpu_seconds(pid) for name, pid in self.pids.items()}
        rate = await rounds
        totals = self.seconds.setdefault(kind, dict.fromkeys(self.pids, 0.0))
        for name, pid in self.pids.items():
            totals[name] += process_cpu_seconds(pid) - before[name]
        return rate

    def per_operation_ms(self, kind: str, operations: int) -> dict[str, float]:
        return {name: 1000.0 * seconds / operations for name, seconds in self.seconds.get(kind, {}).items()}


def process_cpu_seconds(pid: int) -> float:
    """Return user + system CPU seconds of a process (its threads included) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of proc(5), 12 and 13 after the command name.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(quick: bool) -> list[dict]:
    """Return the row: 5G AKA authentications per second vs K_AF retrievals per second."""
    ue_count = 100 if quick else 1000
    retrievals = 500 if quick else 5000
    repeats = 2 if quick else 5

    with tempfile.TemporaryDirectory(prefix="bench-aka-") as folder:
        aka, kaf, cpu_ms = asyncio.run(measure(Path(folder), ue_count, retrievals, repeats))

    extra = {
        "ues": ue_count,
        "retrievals_per_sample": retrievals,
        "concurrency": CONCURRENCY,
        "client": "httpx HTTP/2 (one connection to each of the AUSF and the AAnF), in the benchmark process",
        "store": "SQLite (synchronous=FULL) shared by UDM, AUSF and AAnF",
        # "ue" is this process: the USIM, the KDFs and the httpx client.
        "cpu_ms_per_authentication": cpu_ms["aka"],
        "cpu_ms_per_retrieval": cpu_ms["kaf"],
    }
    return [common.make_row(
        NAME,
        subject=f"5G AKA primary authentications/s (UDM+AUSF+AAnF), {CONCURRENCY} in flight",
        reference=f"K_AF retrievals/s at the AAnF from httpx, {CONCURRENCY} in flight",
        samples=aka,
        reference_samples=kaf,
        goal=None,
        extra=extra,
        unit="ops/s",
    )]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="use 100 UEs and 500 retrievals per sample")
    args = parser.parse_args()
    print(json.dumps(run(args.quick), indent=2))


if __name__ == "__main__":
    main()
