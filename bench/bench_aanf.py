"""Measure AAnF retrieve-applicationkey requests per second over HTTP/2 (h2c) with h2load.

Subject: a real AAnF process (`msgin5g serve aanf`, SQLite store) holding
provisioned AKMA contexts. Reference: a bare ASGI application that reads the
request body and returns a constant JSON body of the same shape, served by
the same stack (`msgin5g.sbi.server.serve` with the SBI configuration and the
request-body drain wrapper). h2load sends every request on one HTTP/2
connection with 100 concurrent streams, as one SBI peer does.

The row measures the default stack (`sbi.server`, Granian). For the choice
of the stack it also records the same pair on the other one (Hypercorn) in
`extra`.

    python bench/bench_aanf.py --serve-bare [--stack NAME]   # the reference server alone
    python bench/bench_aanf.py --profile FILE    # the AAnF under pyinstrument
"""

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

from msgin5g.sbi.server import DEFAULT_SERVER_STACK  # noqa: E402

NAME = "aanf_retrieve_h2"
RETRIEVE_PATH = "/naanf-akma/v1/retrieve-applicationkey"
REGISTER_PATH = "/naanf-akma/v1/register-anchorkey"
AF_FQDN = "msgin5g.bench.example.test"
MCC, MNC, ROUTING_INDICATOR = "001", "01", "0"
SUPI_PREFIX = "imsi-00101"
STREAMS = 100
CONNECTIONS = 1
READY_PATTERN = re.compile(r'"event": "ready".*"uri": "(http://[^"]+)"')
H2LOAD_RATE = re.compile(r"finished in [0-9.]+m?s, ([0-9.]+) req/s")
H2LOAD_REQUESTS = re.compile(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded")
H2LOAD_STATUS = re.compile(r"status codes: (\d+) 2xx")

# The body that the bare application returns: the shape of AkmaAfKeyData with a
# K_AF of 64 hexadecimal digits, an expiry and a SUPI, as the AAnF returns it.
CONSTANT_BODY = json.dumps({
    "kaf": "0" * 64,
    "expiry": "2030-01-01T00:00:00Z",
    "supi": "imsi-001010000000001",
}).encode()


# --- the reference application --------------------------------------------


async def bare_app(scope, receive, send) -> None:
    """Read the request body and return CONSTANT_BODY (a bare ASGI 3 application)."""
    if scope["type"] == "lifespan":
        await _run_lifespan(receive, send)
        return

    more_body = True
    while more_body:
        message = await receive()
        more_body = message.get("more_body", False)

    await send({
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(CONSTANT_BODY)).encode())],
    })
    await send({"type": "http.response.body", "body": CONSTANT_BODY})


async def _run_lifespan(receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return



async def serve_bare(stack: str) -> None:
    """Serve `bare_app` on a free loopback port with the SBI server `stack` until SIGTERM."""
    from msgin5g.sbi.server import bind_socket, serve, socket_uri

    shutdown = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, shutdown.set)
    loop.add_signal_handler(signal.SIGINT, shutdown.set)

    sock = bind_socket(common.LOOPBACK, 0)
    try:
        print(json.dumps({"event": "ready", "service": "bare", "uri": socket_uri(sock)}), flush=True)
        await serve(bare_app, sock, shutdown, server=stack)
    finally:
        sock.close()


# --- processes --------------------------------------------------------------


def write_aanf_config(workdir: Path, stack: str = DEFAULT_SERVER_STACK) -> Path:
    path = workdir / f"aanf-{stack}.yaml"
    path.write_text(
        json.dumps({
            "sbi": {"host": common.LOOPBACK, "port": 0, "server": stack},
            "database": str(workdir / "aanf.sqlite3"),
        }),
        encoding="utf-8",
    )
    return path


def start_ready(args: list[str], timeout: float = common.DEFAULT_READY_TIMEOUT) -> tuple[subprocess.Popen, str]:
    """Start a process that prints a ready JSON line; return it and its URI.

    The rest of its output is drained, so that a full pipe never blocks it.
    """
    process, match = common.start_process(args, ready=READY_PATTERN, timeout=timeout)
    common.start_draining(process)
    return process, match.group(1)


def start_aanf(config: Path, profile_output: Path | None = None) -> tuple[subprocess.Popen, str]:
    """Start `msgin5g serve aanf`, under pyinstrument when `profile_output` is given."""
    command = ["-m", "msgin5g", "serve", "aanf", "--config", str(config)]
    if profile_output is not None:
        command = ["-m", "pyinstrument", "-r", "text", "-o", str(profile_output), *command]
    return start_ready(common.python_command(*command))


def start_bare(stack: str = DEFAULT_SERVER_STACK) -> tuple[subprocess.Popen, str]:
    return start_ready(common.python_command(__file__, "--serve-bare", "--stack", stack))


async def register_contexts(aanf_uri: str, count: int) -> list[str]:
    """Register `count` AKMA contexts (random K_AUSF per UE) and return their A-KIDs."""
    import httpx

    from msgin5g.crypto.akma import a_tid, format_a_kid, k_akma

    a_kids: list[str] = []
    async with httpx.AsyncClient(http1=False, http2=True, base_url=aanf_uri, timeout=30.0) as client:
        for number in range(1, count + 1):
            supi = f"{SUPI_PREFIX}{number:010d}"
            k_ausf = os.urandom(32)
            a_kid = format_a_kid(ROUTING_INDICATOR, a_tid(k_ausf, supi), MCC, MNC)
            body = {"supi": supi, "aKId": a_kid, "kAkma": k_akma(k_ausf, supi).hex()}
            response = await client.post(REGISTER_PATH, json=body)
            if response.status_code != 200:
                raise common.BenchError(f"register-anchorkey returned {response.status_code}: {response.text}")
            a_kids.append(a_kid)
    return a_kids


def retrieve_body(a_kid: str) -> bytes:
    from msgin5g.crypto.akma import UA_TLS13, af_id_to_wire

    return json.dumps({"afId": af_id_to_wire(AF_FQDN, UA_TLS13), "aKId": a_kid}).encode()


# --- h2load -------------------------------------------------------------------


def h2load_rate(uri: str, body_file: Path, requests: int) -> float:
    """Run h2load with one connection and STREAMS concurrent streams; return requests per second.

    Raises BenchError unless every request got a 2xx response, so a rate of
    errors is never reported as a rate of K_AF retrievals.
    """
    command = [
        "h2load", "-n", str(requests), "-c", str(CONNECTIONS), "-m", str(STREAMS), "-t", "1",
        "-H", "content-type: application/json", "-d", str(body_file), uri + RETRIEVE_PATH,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    output = result.stdout

    rate = H2LOAD_RATE.search(output)
    counts = H2LOAD_REQUESTS.search(output)
    status = H2LOAD_STATUS.search(output)
    if result.returncode != 0 or not (rate and counts and status):
        raise common.BenchError(f"h2load failed (status {result.returncode}): {output[-800:]}{result.stderr[-400:]}")
    if int(counts.group(3)) != requests or int(status.group(1)) != requests:
        raise common.BenchError(
            f"h2load against {uri}: {counts.group(3)} of {requests} requests succeeded, "
            f"{status.group(1)} with 2xx; see the server log"
        )
    return float(rate.group(1))


def measure_pair(
    subject_uri: str, reference_uri: str, body_file: Path, requests: int, repeats: int
) -> tuple[list[float], list[float]]:
    """Warm both servers up, then sample them alternately."""
    warmup = max(requests // 10, STREAMS * 2)
    h2load_rate(subject_uri, body_file, warmup)
    h2load_rate(reference_uri, body_file, warmup)
    return common.interleaved_samples(
        lambda: h2load_rate(subject_uri, body_file, requests),
        lambda: h2load_rate(reference_uri, body_file, requests),
        repeats,
    )


def measure_stack(workdir: Path, stack: str, body_file: Path, requests: int, repeats: int) -> dict:
    """Measure the AAnF (on the stored contexts) and the bare application on `stack`; return `extra` figures."""
    aanf, aanf_uri = start_aanf(write_aanf_config(workdir, stack))
    try:
        bare, bare_uri = start_bare(stack)
        try:
            aanf_samples, bare_samples = measure_pair(aanf_uri, bare_uri, body_file, requests, repeats)
        finally:
            common.stop_process(bare)
    finally:
        common.stop_process(aanf)

    aanf_rate = common.summarize(aanf_samples)["median"]
    bare_rate = common.summarize(bare_samples)["median"]
    return {
        f"{stack}_aanf_per_s": aanf_rate,
        f"{stack}_aanf_samples": aanf_samples,
        f"{stack}_bare_per_s": bare_rate,
        f"{stack}_bare_samples": bare_samples,
        f"{stack}_ratio": aanf_rate / bare_rate if bare_rate else None,
    }


# --- the row ------------------------------------------------------------------


def run(quick: bool) -> list[dict]:
    """Return the row: AAnF K_AF retrievals per second vs the bare app, same stack and load."""
    if shutil.which("h2load") is None:
        raise common.BenchError("h2load not found: run 'make bench-deps' (Debian package nghttp2-client)")

    contexts = 200 if quick else 10_000
    requests = 3_000 if quick else 50_000
    repeats = 2 if quick else 5

    with tempfile.TemporaryDirectory(prefix="bench-aanf-") as folder:
        workdir = Path(folder)
        config = write_aanf_config(workdir)
        aanf, aanf_uri = start_aanf(config)
        try:
            a_kids = asyncio.run(register_contexts(aanf_uri, contexts))
            body_file = workdir / "retrieve.json"
            body_file.write_bytes(retrieve_body(a_kids[len(a_kids) // 2]))

            bare, bare_uri = start_bare()
            try:
                subject, reference = measure_pair(aanf_uri, bare_uri, body_file, requests, repeats)
            finally:
                common.stop_process(bare)
        finally:
            common.stop_process(aanf)

        other_stack = "hypercorn" if DEFAULT_SERVER_STACK == "granian" else "granian"
        comparison = measure_stack(workdir, other_stack, body_file, requests, repeats)

    extra = {
        "requests_per_sample": requests,
        "connections": CONNECTIONS,
        "concurrent_streams": STREAMS,
        "contexts_stored": contexts,
        "server_stack": f"{DEFAULT_SERVER_STACK} (msgin5g.sbi.server.serve, the default sbi.server)",
        "command": f"h2load -n {requests} -c {CONNECTIONS} -m {STREAMS} -t 1 -d retrieve.json URI{RETRIEVE_PATH}",
        # NOTE: h2load sends one request body for every request, so all requests
        # carry the same A-KID; the lookup goes through the UNIQUE index on
        # a_kid in a table of `contexts_stored` rows.
        "a_kids_requested": 1,
        **comparison,
    }
    return [common.make_row(
        NAME,
        subject=f"AAnF retrieve-applicationkey, h2c, 100 streams ({DEFAULT_SERVER_STACK})",
        reference=f"bare ASGI app returning a constant JSON, same {DEFAULT_SERVER_STACK} stack",
        samples=subject,
        reference_samples=reference,
        goal=0.5,
        extra=extra,
        unit="req/s",
    )]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve-bare", action="store_true", help="serve the bare ASGI application and print its URI")
    parser.add_argument("--profile", type=Path, help="run the h2load load against an AAnF under pyinstrument; write its text report to this file")
    parser.add_argument("--quick", action="store_true", help="use small counts")
    parser.add_argument("--stack", default=DEFAULT_SERVER_STACK, help="SBI server stack of --serve-bare")
    args = parser.parse_args()

    if args.serve_bare:
        asyncio.run(serve_bare(args.stack))
    elif args.profile is not None:
        profile_aanf(args.profile, args.quick)
    else:
        print(json.dumps(run(args.quick), indent=2))


def profile_aanf(output: Path, quick: bool) -> None:
    """Load an AAnF that runs under pyinstrument with h2load, then stop it so it writes its report."""
    with tempfile.TemporaryDirectory(prefix="bench-aanf-profile-") as folder:
        workdir = Path(folder)
        config = write_aanf_config(workdir)
        aanf, aanf_uri = start_aanf(config, profile_output=output.resolve())
        try:
            a_kids = asyncio.run(register_contexts(aanf_uri, 200))
            body_file = workdir / "retrieve.json"
            body_file.write_bytes(retrieve_body(a_kids[0]))
            rate = h2load_rate(aanf_uri, body_file, 5_000 if quick else 30_000)
            print(f"{rate:.0f} req/s under the profiler", file=sys.stderr)
        finally:
            common.stop_process(aanf, grace=30.0)


if __name__ == "__main__":
    main()
