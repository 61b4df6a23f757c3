"""Row 3: PSK-DTLS 1.2 handshakes per second on the MSGin5G Server, against openssl s_server.

Subject: the server's `psk-dtls1.2` listener (`start_dtls12_listener`) in its
own process, with K_AF of the benchmark UE already cached. Reference:
`openssl s_server -dtls1_2 -listen -nocert -psk` with the same K_AF. Both use
the cookie exchange (HelloVerifyRequest) and negotiate PSK-AES128-CCM8, the
CoAP default suite.

The client load is this project's UE engine (`ua.dtls12_psk` through
a blocking UDP socket) in a worker process pinned to CPU 1, one handshake at a
time, each ended with close_notify. One at a time, because s_server (OpenSSL
3.0) serves one DTLS peer at a time: after the first handshake its socket stays
connected to that peer's address, so every handshake to s_server comes from
one fixed local port. The MSGin5G Server does not detect a new handshake from
the address of a session that is still closing (RFC 6347 clause 4.2.8), and
such a ClientHello waits for a retransmission. So the handshakes to the
MSGin5G Server come from a new local port each. The client's work is
otherwise the same. With a serial
client the throughput of either server includes the client's turnaround, so
the row compares handshakes per server CPU-second, as row 2 does; the
throughputs and the subject's throughput with concurrent clients are kept in
`extra`.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_tls13 import (  # noqa: E402  (needs the path set above)
    AF_FQDN,
    SERVER_CPUS,
    ClientLoad,
    Measurement,
    profile,
    run_server,
    sample_pair,
    server_parts,
    start_subject,
    throughput_view,
    ue_keys,
)
from common import (  # noqa: E402
    LOOPBACK,
    BenchError,
    free_port,
    make_row,
    pin_to_cpus,
    repeats_for,
    start_draining,
    start_process,
    stop_process,
    wait_for_udp_port,
)

NAME = "dtls12"
GOAL = 0.5
K_AKMA = bytes(range(32))
CCM8_SUITE = 0xC0A8
GCM_SUITE = 0x00A8

QUICK_SECONDS = 1.0
FULL_SECONDS = 5.0
CONCURRENT_CLIENTS = 8
HANDSHAKE_TIMEOUT = 5.0

def dtls_k_af(suite: int) -> bytes:
    """Return the benchmark UE's K_AF for AF_ID = FQDN || 01 00 01 yy zz of `suite`."""
    from msgin5g.crypto.akma import af_id, k_af, ua_dtls12

    return k_af(K_AKMA, af_id(AF_FQDN, ua_dtls12(suite)))


# --- subject server process -------------------------------------------------


async def serve_dtls12(stop: asyncio.Event) -> None:
    """Run the DTLS 1.2 listener until `stop` is set, printing its port first."""
    from msgin5g.crypto.akma import ua_dtls12
    from msgin5g.service.dtls_server import start_dtls12_listener

    ua_ids = [ua_dtls12(CCM8_SUITE), ua_dtls12(GCM_SUITE)]
    with tempfile.TemporaryDirectory(prefix="bench-dtls12-") as folder:
        async with server_parts(Path(folder), ua_ids) as (kaf, service, limits):
            listener = await start_dtls12_listener(
                LOOPBACK, 0, kaf=kaf, service=service, limits=limits, max_handshakes=1000
            )
            print(f"READY port={listener.uri.rsplit(':', 1)[1]}", flush=True)
            await stop.wait()
            await listener.close()


# --- client worker process --------------------------------------------------


def handshake(port: int, local_port: int, a_kid: str) -> bool:
    """Run one handshake from 127.0.0.1:`local_port` (0: a new port), then send close_notify.

    Returns True when the session was established.
    """
    from msgin5g.service.dtls_channel import akma_client_engine
    from msgin5g.ua import dtls12_psk as dtls

    engine = akma_client_engine(AF_FQDN, a_kid, K_AKMA)
    deadline = time.perf_counter() + HANDSHAKE_TIMEOUT
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        udp.bind((LOOPBACK, local_port))
        udp.connect((LOOPBACK, port))
        engine.start()
        while engine.state is dtls.State.HANDSHAKING and time.perf_counter() < deadline:
            for datagram in engine.datagrams_to_send():
                udp.send(datagram)
            udp.settimeout(engine.timeout() or HANDSHAKE_TIMEOUT)
            try:
                engine.receive_datagram(udp.recv(65536))
            except TimeoutError:
                engine.handle_timeout()
            except ConnectionRefusedError:
                return False

        established = engine.state is dtls.State.ESTABLISHED
        engine.close()
        for datagram in engine.datagrams_to_send():
            udp.send(datagram)
    return established


def handshake_thread(port: int, local_port: int, deadline: float, counts: list[int], slot: int) -> None:
    """Run handshakes one after another until `deadline`; count successes and failures."""
    a_kid, _ = ue_keys()
    while time.perf_counter() < deadline:
        if handshake(port, local_port, a_kid):
            counts[2 * slot] += 1
        else:
            counts[2 * slot + 1] += 1


def client_worker() -> None:
    """Serve `run PORT SECONDS CONCURRENCY SOURCE` commands; print `DONE ok failed elapsed`.

    SOURCE `fixed` sends every handshake from one local port, as openssl
    s_server needs. SOURCE `new` uses a new local port per handshake, as the
    MSGin5G Server needs (see the module docstring).
    """
    print("READY port=0", flush=True)
    fixed_port = free_port("udp")
    for line in sys.stdin:
        _, port, seconds, concurrency, source = line.split()
        threads = int(concurrency)
        local_port = fixed_port if source == "fixed" else 0
        counts = [0] * (2 * threads)
        start = time.perf_counter()
        deadline = start + float(seconds)
        workers = [
            threading.Thread(target=handshake_thread, args=(int(port), local_port, deadline, counts, slot))
            for slot in range(threads)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        elapsed = time.perf_counter() - start
        print(f"DONE {sum(counts[0::2])} {sum(counts[1::2])} {elapsed:.6f}", flush=True)


# --- controller -------------------------------------------------------------


def start_reference() -> tuple:
    """Start openssl s_server for DTLS 1.2 with the CCM8 K_AF; return (process, port)."""
    a_kid, _ = ue_keys()
    port = free_port("udp")
    arguments = [
        "openssl", "s_server", "-dtls1_2", "-listen", "-nocert", "-accept", f"{LOOPBACK}:{port}",
        "-cipher", "PSK-AES128-CCM8", "-quiet", "-psk", dtls_k_af(CCM8_SUITE).hex(),
        "-psk_hint", "3GPP-AKMA", "-psk_identity", "3GPP-AKMA" + a_kid,
    ]  # fmt: skip
    # Its stdin stays open, because s_server ends at end of input.
    # NOTE: in development runs on a loaded machine, s_server's ACCEPT line
    # sometimes did not arrive through the pipe within 30 s although the port
    # was bound, so readiness is read from /proc/net/udp instead.
    process, _ = start_process(arguments, stdin=subprocess.PIPE)
    start_draining(process)
    try:
        wait_for_udp_port(port)
    except BenchError:
        stop_process(process)
        raise
    return process, port


# One serial client: from a new local port per handshake to the subject, from one fixed port to
# s_server, which stays connected to the first peer's address.
SERIAL_CLIENT_OPTIONS = {"subject": "1 new", "reference": "1 fixed"}


def run(quick: bool) -> list[dict]:
    """Measure both servers under the same serial client load and return the row."""
    seconds = QUICK_SECONDS if quick else FULL_SECONDS
    repeats = repeats_for(quick, quick_default=3, full_default=7)
    module = str(Path(__file__).resolve())

    servers: dict = {}
    load = None
    try:
        servers["subject"] = start_subject(module)
        servers["reference"] = start_reference()
        pinned = all(pin_to_cpus(process.pid, SERVER_CPUS) for process, _ in servers.values())
        load = ClientLoad(module, processes=1, threads=1)
        sample_pair(load, servers, min(seconds, 1.0), 1, SERIAL_CLIENT_OPTIONS)  # Warm-up, discarded.
        results = sample_pair(load, servers, seconds, repeats, SERIAL_CLIENT_OPTIONS)
        subject_process, subject_port = servers["subject"]
        concurrent = load.measure(subject_port, seconds, subject_process.pid, f"{CONCURRENT_CLIENTS} new")
    finally:
        if load is not None:
            load.close()
        for process, _ in servers.values():
            stop_process(process)

    return [build_row(results, concurrent, seconds, pinned and load.pinned)]


def build_row(results: dict[str, list[Measurement]], concurrent: Measurement, seconds: float, pinned: bool) -> dict:
    """Turn the measurements into the result row: handshakes per server CPU-second."""
    subject, reference = results["subject"], results["reference"]
    return make_row(
        name=NAME,
        subject="MSGin5G Server psk-dtls1.2 handshakes per server CPU-second (K_AF cached, cookie exchange, CCM8)",
        reference="openssl s_server -dtls1_2 -listen -nocert -psk, same client load, per server CPU-second",
        samples=[m.per_cpu_second for m in subject],
        reference_samples=[m.per_cpu_second for m in reference],
        goal=GOAL,
        unit="handshakes per server CPU-second",
        extra=throughput_view(subject, reference) | {
            "client_load": (
                "1 worker process running this project's DTLS 1.2 client engine, one handshake at a "
                "time on a new UDP socket (HelloVerifyRequest round included), close_notify after it"
            ),
            "subject_concurrent_clients": CONCURRENT_CLIENTS,
            "subject_concurrent_per_s": concurrent.rate,
            "subject_concurrent_server_busy": concurrent.server_busy,
            "subject_concurrent_per_server_cpu_s": concurrent.per_cpu_second,
            "cpus": "servers pinned to CPU 0, client to CPU 1" if pinned else "not pinned (fewer than 2 CPUs)",
            "seconds_per_sample": seconds,
            "failed_handshakes": sum(m.failed for m in subject + reference) + concurrent.failed,
            "k_af": "cached at the AF before the run: the row measures the handshake, not the AAnF",
            "server_logging": "WARNING (the per-session INFO lines of `msgin5g serve` are not written)",
            "subject_openssl": subject_openssl_version(),
            "notes": (
                "openssl s_server serves one DTLS peer at a time, so the shared client load is serial "
                "and each throughput includes the client's turnaround; the row compares handshakes "
                "per second of server CPU time (/proc utime+stime over the same window). The subject "
                "runs OpenSSL from the cryptography wheel, the reference the system OpenSSL."
            ),
        },
    )


def subject_openssl_version() -> str:
    """Return the OpenSSL version that pyOpenSSL (the subject's DTLS engine) runs on."""
    from OpenSSL import SSL

    return SSL.SSLeay_version(SSL.SSLEAY_VERSION).decode()


def main() -> None:
    """Run the DTLS server or a client worker (used by the benchmark itself)."""
    parser = argparse.ArgumentParser(description="processes of the DTLS 1.2 handshake benchmark")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the MSGin5G Server DTLS 1.2 listener")
    serve.add_argument("--profile", help="write a pyinstrument text profile to this file on exit")
    client = commands.add_parser("client", help="run a client worker that reads commands from stdin")
    client.add_argument("--threads", type=int, default=1, help="ignored: the concurrency comes with each command")
    profiler = commands.add_parser("profile", help="profile the server under concurrent clients with pyinstrument")
    profiler.add_argument("--seconds", type=float, default=10.0, help="seconds of load")
    profiler.add_argument(
        "--output", type=Path, default=Path(tempfile.gettempdir()) / "profile-dtls12.txt", help="profile file"
    )
    args = parser.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    if args.command == "serve":
        run_server(serve_dtls12, args.profile)
    elif args.command == "client":
        client_worker()
    else:
        module = str(Path(__file__).resolve())
        profile(args.seconds, args.output, module, 1, 1, f"{CONCURRENT_CLIENTS} new")


if __name__ == "__main__":
    main()
