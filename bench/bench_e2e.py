"""Measure end-to-end registrations per second: PSK-TLS 1.3 handshake, REG and the CM check.

The core (UDM, AUSF, AAnF, CM server) and the MSGin5G Server run as separate
processes (`msgin5g.deployment.local.running_deployment`). The UEs skip 5G
AKA: for each UE the benchmark draws a random K_AUSF, derives K_AKMA and the
A-KID (TS 33.535 Annex A) and registers them at the AAnF with
register-anchorkey, as the AUSF does after primary authentication. So the
measured part is what a registration costs after primary authentication:
TCP connect, the TLS 1.3 handshake with K_AF as external PSK (the server asks
the AAnF for K_AF unless it has it cached), CSM exchange, REG, the server's
CM lookup, and the REG response.

The UEs run in a separate client process (`--client`), so that client CPU
shows apart from the server's. Per round the row records the CPU seconds of
the client, the server, the AAnF and the CM server.

Subject: a closed loop of CONCURRENCY UEs, each UE's first registration (the
server has no K_AF for it, so it requests K_AF from the AAnF). Reference: the
same UEs again (K_AF cached at the server). Then an open loop of fresh UEs
arriving at half the subject's rate, with latency measured from each UE's
scheduled start, reports p99 there (goal: p99 < 50 ms).
"""

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

NAME = "e2e_registration"
MCC, MNC, ROUTING_INDICATOR = "001", "01", "0"
SUPI_PREFIX = "imsi-00101"
SERVER_FQDN = "msgin5g.bench.example.test"
REGISTER_PATH = "/naanf-akma/v1/register-anchorkey"
CONCURRENCY = 32
HALF_RATE_P99_GOAL_MS = 50.0
CLIENT_TIMEOUT_SECONDS = 600


# --- the UE side (client process) ---------------------------------------------


async def register_one(ue: dict, host: str, port: int) -> tuple[bool, str]:
    """Open a PSK-TLS 1.3 channel keyed by K_AF and send REG; return (accepted, detail)."""
    from msgin5g.service.channel import ChannelError, exchange_over_tls13
    from msgin5g.service.messages import RegistrationRequest

    try:
        result = await exchange_over_tls13(
            host, port, SERVER_FQDN, ue["a_kid"], bytes.fromhex(ue["k_akma"]),
            RegistrationRequest(ue["ue_service_id"]),
        )
    except (ChannelError, OSError) as error:
        return False, f"{type(error).__name__}: {error}"
    return result.accepted, result.detail


async def closed_loop(ues: list[dict], host: str, port: int, concurrency: int) -> dict:
    """Register every UE with `concurrency` registrations in flight; return timings."""
    queue = list(reversed(ues))
    latencies: list[float] = []
    failures: list[str] = []

    async def worker() -> None:
        while queue:
            ue = queue.pop()
            started = time.perf_counter()
            accepted, detail = await register_one(ue, host, port)
            if accepted:
                latencies.append((time.perf_counter() - started) * 1000.0)
            else:
                failures.append(detail)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"wall_s": time.perf_counter() - started, "latencies_ms": latencies, "failures": failures}


async def open_loop(ues: list[dict], host: str, port: int, rate: float) -> dict:
    """Start one UE every 1/`rate` s whatever the server does; latency counts from the scheduled start."""
    latencies: list[float] = []
    failures: list[str] = []
    start_lags: list[float] = []
    interval = 1.0 / rate

    async def one(ue: dict, scheduled: float) -> None:
        start_lags.append((time.perf_counter() - scheduled) * 1000.0)
        accepted, detail = await register_one(ue, host, port)
        if accepted:
            latencies.append((time.perf_counter() - scheduled) * 1000.0)
        else:
            failures.append(detail)

    tasks = []
    started = time.perf_counter()
    for index, ue in enumerate(ues):
        scheduled = started + index * interval
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(ue, scheduled)))
    await asyncio.gather(*tasks)
    start_lags.sort()
    return {
        "wall_s": time.perf_counter() - started,
        "latencies_ms": latencies,
        "failures": failures,
        "start_lag_p99_ms": percentile(start_lags, 99),
    }


def client_main(args: argparse.Namespace) -> None:
    """Run one round of registrations and print its timings as one JSON line."""
    ues = json.loads(Path(args.ues).read_text(encoding="utf-8"))
    before = resource.getrusage(resource.RUSAGE_SELF)
    if args.rate:
        result = asyncio.run(open_loop(ues, args.host, args.port, args.rate))
    else:
        result = asyncio.run(closed_loop(ues, args.host, args.port, args.concurrency))
    after = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result["failures"] = result["failures"][:5] + ([f"... {len(result['failures'])} in all"] if len(result["failures"]) > 5 else [])
    print(json.dumps(result))


# --- the deployment (parent process) --------------------------------------------


def ue_service_id(number: int) -> str:
    return f"bench-ue-{number:07d}"


def provisioning(count: int) -> dict:
    """Return CM associations for UEs 1..count (the UDM subscribers are not needed: no 5G AKA)."""
    return {
        "subscribers": [],
        "associations": [
            {"ue_service_id": ue_service_id(number), "ue_id": f"{SUPI_PREFIX}{number:010d}"}
            for number in range(1, count + 1)
        ],
    }


async def register_contexts(aanf_uri: str, numbers: range) -> list[dict]:
    """Register an AKMA context per UE at the AAnF; return each UE's A-KID, K_AKMA and UE service ID."""
    import httpx

    from msgin5g.crypto.akma import a_tid, format_a_kid, k_akma

    ues = []
    async with httpx.AsyncClient(http1=False, http2=True, base_url=aanf_uri, timeout=30.0) as client:
        for number in numbers:
            supi = f"{SUPI_PREFIX}{number:010d}"
            k_ausf = os.urandom(32)
            a_kid = format_a_kid(ROUTING_INDICATOR, a_tid(k_ausf, supi), MCC, MNC)
            key = k_akma(k_ausf, supi)
            response = await client.post(REGISTER_PATH, json={"supi": supi, "aKId": a_kid, "kAkma": key.hex()})
            if response.status_code != 200:
                raise common.BenchError(f"register-anchorkey returned {response.status_code}: {response.text}")
            ues.append({"a_kid": a_kid, "k_akma": key.hex(), "ue_service_id": ue_service_id(number)})
    return ues


def process_cpu_seconds(pid: int) -> float:
    """Return user + system CPU seconds of a process (its threads included) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # Fields 14 and 15 of proc(5) (utime, stime) are 12 and 13 after the command name.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Round:
    """One client run against the deployment, with the CPU the services used meanwhile."""

    def __init__(self, workdir: Path, address: tuple[str, int], pids: dict[str, int]) -> None:
        self.workdir = workdir
        self.address = address
        self.pids = pids

    def run(self, label: str, ues: list[dict], *, concurrency: int = CONCURRENCY, rate: float | None = None) -> dict:
        path = self.workdir / f"ues-{label}.json"
        path.write_text(json.dumps(ues), encoding="utf-8")
        command = common.python_command(
            __file__, "--client", "--ues", str(path), "--host", self.address[0], "--port", str(self.address[1]),
            "--concurrency", str(concurrency),
        )
        if rate is not None:
            command += ["--rate", f"{rate:.3f}"]

        cpu_before = {name: process_cpu_seconds(pid) for name, pid in self.pids.items()}
        completed = subprocess.run(
            command, capture_output=True, text=True, env=common.bench_env(), timeout=CLIENT_TIMEOUT_SECONDS
        )
        cpu = {name: process_cpu_seconds(pid) - cpu_before[name] for name, pid in self.pids.items()}
        if completed.returncode != 0:
            raise common.BenchError(
                f"client round {label} failed with status {completed.returncode}: {completed.stderr[-1500:]}"
            )

        result = json.loads(completed.stdout.strip().splitlines()[-1])
        if result["failures"]:
            raise common.BenchError(
                f"client round {label}: registrations failed (first causes): {result['failures']}"
            )
        cpu["client"] = result["cpu_s"]
        return summarize_round(result, len(ues), cpu)


def summarize_round(result: dict, count: int, cpu: dict[str, float]) -> dict:
    latencies = sorted(result["latencies_ms"])
    return {
        "per_s": count / result["wall_s"],
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "max_ms": latencies[-1],
        "mean_ms": statistics.fmean(latencies),
        "cpu_ms_per_registration": {name: 1000.0 * seconds / count for name, seconds in cpu.items()},
        # Open loop only: how late the client started UEs (its own lag, included in the latencies).
        "start_lag_p99_ms": result.get("start_lag_p99_ms"),
    }


def percentile(sorted_values: list[float], percent: float) -> float:
    """Return the nearest-rank percentile of an ascending list."""
    rank = max(1, -(-len(sorted_values) * percent // 100))
    return sorted_values[int(rank) - 1]


async def measure(workdir: Path, ue_count: int, repeats: int) -> dict:
    """Start the deployment, provision UEs, run the rounds; return the per-round summaries."""
    from msgin5g.cli.provision import provision
    from msgin5g.deployment.local import DeploymentSettings, running_deployment

    sets = repeats + 1  # a fresh set per uncached round, and one for the open loop
    provision(workdir / "msgin5g.sqlite3", provisioning(ue_count * sets))
    settings = DeploymentSettings(mcc=MCC, mnc=MNC, server_fqdn=SERVER_FQDN, k_af_lifetime_seconds=3600)

    async with running_deployment(workdir, settings) as deployment:
        aanf_uri = deployment.services["aanf"].uri
        ue_sets = [
            await register_contexts(aanf_uri, range(index * ue_count + 1, (index + 1) * ue_count + 1))
            for index in range(sets)
        ]
        pids = {name: deployment.services[name].process.pid for name in ("server", "aanf", "cm")}
        rounds = Round(workdir, deployment.server_address, pids)

        # Each client round blocks a worker thread while the services run in their own processes.
        uncached, cached = [], []
        for index in range(repeats):
            uncached.append(await asyncio.to_thread(rounds.run, f"uncached-{index}", ue_sets[index]))
            cached.append(await asyncio.to_thread(rounds.run, f"cached-{index}", ue_sets[index]))

        half_rate = statistics.median(r["per_s"] for r in uncached) / 2
        open_loop_round = await asyncio.to_thread(rounds.run, "half-rate", ue_sets[-1], rate=half_rate)
        open_loop_round["offered_per_s"] = half_rate

    return {"uncached": uncached, "cached": cached, "half_rate": open_loop_round}


def run(quick: bool) -> list[dict]:
    """Return the row: uncached vs cached registrations per second, latencies, p99 at half the peak."""
    ue_count = 100 if quick else 1000
    repeats = 2 if quick else 3

    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as folder:
        figures = asyncio.run(measure(Path(folder), ue_count, repeats))

    uncached, cached, half = figures["uncached"], figures["cached"], figures["half_rate"]
    extra = {
        "ues_per_round": ue_count,
        "concurrency": CONCURRENCY,
        "profile": "psk-tls1.3",
        "uncached_p50_ms": statistics.median(r["p50_ms"] for r in uncached),
        "uncached_p99_ms": statistics.median(r["p99_ms"] for r in uncached),
        "cached_p50_ms": statistics.median(r["p50_ms"] for r in cached),
        "cached_p99_ms": statistics.median(r["p99_ms"] for r in cached),
        "half_rate_offered_per_s": half["offered_per_s"],
        "half_rate_p50_ms": half["p50_ms"],
        "half_rate_p99_ms": half["p99_ms"],
        "half_rate_p99_goal_ms": HALF_RATE_P99_GOAL_MS,
        "half_rate_p99_goal_met": half["p99_ms"] < HALF_RATE_P99_GOAL_MS,
        "rounds": figures,
        "note": "5G AKA is not run: contexts are registered at the AAnF directly; latency is connect to REG response",
    }
    return [common.make_row(
        NAME,
        subject=f"registrations/s, {ue_count} UEs, K_AF not cached (AAnF asked), {CONCURRENCY} in flight",
        reference="the same UEs again, K_AF cached at the server",
        samples=[r["per_s"] for r in uncached],
        reference_samples=[r["per_s"] for r in cached],
        goal=None,
        extra=extra,
        unit="registrations/s",
    )]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="use 100 UEs per round instead of 1000")
    parser.add_argument("--client", action="store_true", help="run one client round (used by the benchmark)")
    parser.add_argument("--ues", help="JSON file of UEs (A-KID, K_AKMA, UE service ID) for --client")
    parser.add_argument("--host", default=common.LOOPBACK, help="MSGin5G Server PSK-TLS 1.3 host")
    parser.add_argument("--port", type=int, help="MSGin5G Server PSK-TLS 1.3 port")
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY, help="registrations in flight (closed loop)")
    parser.add_argument("--rate", type=float, help="arrivals per second (open loop) instead of a closed loop")
    args = parser.parse_args()

    if args.client:
        client_main(args)
    else:
        print(json.dumps(run(args.quick), indent=2))


if __name__ == "__main__":
    main()
