"""Share timing, statistics and process helpers between the benchmark rows.

Every `bench/bench_<name>.py` module exposes `run(quick: bool) -> list[dict]`;
the rows it returns are built with `make_row`, and `bench/run.py` adds the
median and spread of each sample list. The helpers here are stable API for
all rows: change a signature only together with every caller.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
LOOPBACK = "127.0.0.1"

# Seconds to wait for a started process to print its ready line.
DEFAULT_READY_TIMEOUT = 30.0

# Seconds between SIGTERM and SIGKILL when a process is stopped.
DEFAULT_STOP_GRACE = 5.0


class BenchError(RuntimeError):
    """A benchmark could not set up or run its subject or reference."""


# --- timing ---------------------------------------------------------------


def rate_of(function: Callable[[], object], count: int) -> float:
    """Call `function` `count` times and return the calls per second."""
    if count <= 0:
        raise BenchError(f"invalid count {count}: expected a positive number of calls")

    start = time.perf_counter()
    for _ in range(count):
        function()
    elapsed = time.perf_counter() - start

    return count / elapsed


def rate_for(function: Callable[[], int], seconds: float) -> float:
    """Call `function` until `seconds` have passed and return units per second.

    Each call returns the number of units it completed (for example the
    handshakes of one batch), so a call may do several units.
    """
    if seconds <= 0:
        raise BenchError(f"invalid duration {seconds}: expected a positive number of seconds")

    units = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        units += function()
    elapsed = time.perf_counter() - start

    return units / elapsed


def interleaved_samples(
    subject: Callable[[], float],
    reference: Callable[[], float],
    repeats: int,
) -> tuple[list[float], list[float]]:
    """Sample `subject` and `reference` alternately `repeats` times each.

    Alternating (subject, reference, reference, subject, ...) spreads a slow
    drift of the machine, such as another process starting, over both sides
    instead of charging it to whichever ran last. Each callable returns one
    rate per call.
    """
    if repeats <= 0:
        raise BenchError(f"invalid repeats {repeats}: expected a positive number")

    subject_samples: list[float] = []
    reference_samples: list[float] = []
    for index in range(repeats):
        if index % 2 == 0:
            subject_samples.append(subject())
            reference_samples.append(reference())
        else:
            reference_samples.append(reference())
            subject_samples.append(subject())

    return subject_samples, reference_samples


# --- statistics -----------------------------------------------------------


def summarize(samples: Sequence[float]) -> dict[str, float | int | None]:
    """Return the median, min, max, quartiles and IQR of `samples`.

    Quartiles use the inclusive method of `statistics.quantiles`, so they
    stay inside [min, max]; with fewer than two samples they are null.
    """
    if not samples:
        return {"n": 0, "median": None, "min": None, "max": None, "q1": None, "q3": None, "iqr": None}

    values = sorted(float(value) for value in samples)
    summary: dict[str, float | int | None] = {
        "n": len(values),
        "median": statistics.median(values),
        "min": values[0],
        "max": values[-1],
        "q1": None,
        "q3": None,
        "iqr": None,
    }
    if len(values) >= 2:
        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
        summary.update(q1=q1, q3=q3, iqr=q3 - q1)

    return summary


def make_row(
    name: str,
    subject: str,
    reference: str,
    samples: Sequence[float],
    reference_samples: Sequence[float],
    goal: float | None,
    extra: dict | None = None,
    unit: str = "ops/s",
) -> dict:
    """Build a result row whose rates are the medians of the samples.

    `ratio` is subject/reference of the medians, or null when either side has
    no samples or the reference rate is zero. `goal` is the ratio the row must
    reach, or null for a report-only row.
    """
    subject_median = summarize(samples)["median"]
    reference_median = summarize(reference_samples)["median"]

    ratio = None
    if subject_median is not None and reference_median:
        ratio = subject_median / reference_median

    return {
        "name": name,
        "subject": subject,
        "reference": reference,
        "unit": unit,
        "subject_per_s": subject_median,
        "reference_per_s": reference_median,
        "ratio": ratio,
        "goal": goal,
        "samples": [float(value) for value in samples],
        "reference_samples": [float(value) for value in reference_samples],
        "extra": dict(extra or {}),
    }


# --- sockets --------------------------------------------------------------


def free_port(kind: str = "tcp") -> int:
    """Return a loopback port that the OS reports free for `kind` ("tcp" or "udp").

    NOTE: another process could take the port before the caller binds it.
    Bind port 0 instead where the server allows it.
    """
    socket_types = {"tcp": socket.SOCK_STREAM, "udp": socket.SOCK_DGRAM}
    if kind not in socket_types:
        raise BenchError(f"invalid socket kind {kind!r}: expected 'tcp' or 'udp'")

    with socket.socket(socket.AF_INET, socket_types[kind]) as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def wait_for_udp_port(port: int, timeout: float = DEFAULT_READY_TIMEOUT) -> None:
    """Wait until some socket is bound to UDP port `port` on 127.0.0.1 (Linux /proc/net/udp)."""
    wanted = f"0100007F:{port:04X}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = Path("/proc/net/udp").read_text().splitlines()[1:]
        if any(line.split()[1] == wanted for line in lines):
            return
        time.sleep(0.05)
    raise BenchError(f"nothing bound to UDP port {LOOPBACK}:{port} after {timeout} s")


def wait_for_port(port: int, timeout: float = DEFAULT_READY_TIMEOUT, host: str = LOOPBACK) -> None:
    """Wait until a TCP connection to `host`:`port` succeeds, or raise BenchError."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError as error:
            if time.monotonic() >= deadline:
                raise BenchError(f"port {host}:{port} not accepting connections after {timeout} s: {error}") from error
            time.sleep(0.05)


# --- processes ------------------------------------------------------------


def bench_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Return the environment for child processes, with src/ on PYTHONPATH."""
    env = dict(os.environ)
    source = str(REPO_DIR / "src")
    env["PYTHONPATH"] = source + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(extra or {})
    return env


def start_process(
    args: Sequence[str],
    ready: str | re.Pattern[str] | None = None,
    timeout: float = DEFAULT_READY_TIMEOUT,
    env: dict[str, str] | None = None,
    cwd: Path | str | None = None,
    stdin: int | None = subprocess.DEVNULL,
) -> tuple[subprocess.Popen[str], re.Match[str] | None]:
    """Start `args` in its own process group and wait for its ready line.

    stdout and stderr are merged into one text pipe. When `ready` is given
    (a regular expression), lines are read until one matches, and the match is
    returned so that the caller can read a port from it. When the process
    exits or `timeout` passes first, it is stopped and BenchError names the
    last lines it printed. The caller must call `stop_process` afterwards.
    """
    process = subprocess.Popen(
        list(args),
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        env=env if env is not None else bench_env(),
        cwd=cwd,
        start_new_session=True,
    )
    if ready is None:
        return process, None

    try:
        match = wait_for_line(process, ready, timeout)
    except BaseException:
        stop_process(process)
        raise

    return process, match


# Lines that a process's reader thread queues before it stops reading. When
# nobody takes them, the pipe fills up and the process blocks on its next
# write, as it would with no reader.
MAX_QUEUED_LINES = 10_000


class _LineReader:
    """A daemon thread that reads one process's stdout and queues each line.

    `wait_for_line` and `start_draining` both take lines from this queue. A
    selector on the text pipe cannot be used: a line that arrives in the same
    read as an earlier one sits in the stream's buffer, where the selector
    does not see it. The queue ends with None when the pipe closes.
    """

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue(MAX_QUEUED_LINES)
        self._stream = process.stdout
        threading.Thread(target=self._read, name=f"read {process.pid}", daemon=True).start()

    def _read(self) -> None:
        try:
            for line in self._stream:
                self.lines.put(line)
        except (OSError, ValueError):
            pass  # stop_process closed the pipe.
        finally:
            self.lines.put(None)


_readers: weakref.WeakKeyDictionary[subprocess.Popen[str], _LineReader] = weakref.WeakKeyDictionary()
_readers_lock = threading.Lock()


def _line_reader(process: subprocess.Popen[str]) -> _LineReader:
    """Return the reader thread of `process`, and start it on the first call."""
    if process.stdout is None:
        raise BenchError("process stdout is not a pipe: start it with start_process")
    with _readers_lock:
        reader = _readers.get(process)
        if reader is None:
            reader = _readers[process] = _LineReader(process)
    return reader


def wait_for_line(
    process: subprocess.Popen[str],
    pattern: str | re.Pattern[str],
    timeout: float = DEFAULT_READY_TIMEOUT,
) -> re.Match[str]:
    """Read `process` stdout until a line matches `pattern`, and return the match.

    Raises BenchError when the process exits or `timeout` seconds pass first.
    The lines after the match stay queued for the next call or `start_draining`.
    """
    reader = _line_reader(process)
    regex = re.compile(pattern) if isinstance(pattern, str) else pattern
    deadline = time.monotonic() + timeout
    seen: list[str] = []

    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BenchError(_not_ready_message(process, regex, f"timed out after {timeout} s", seen))
        try:
            line = reader.lines.get(timeout=remaining)
        except queue.Empty:
            continue

        if line is None:
            reader.lines.put(None)  # Later calls see the end of the output too.
            process.wait(timeout=DEFAULT_STOP_GRACE)
            reason = f"exited with status {process.returncode}"
            raise BenchError(_not_ready_message(process, regex, reason, seen))

        seen.append(line.rstrip("\n"))
        match = regex.search(line)
        if match is not None:
            return match


def start_draining(process: subprocess.Popen[str], keep: int = 50) -> deque[str]:
    """Read the rest of `process` stdout in a daemon thread and keep its last `keep` lines.

    A process blocks once its unread output fills the pipe and the queue of
    its reader thread, so call this after the ready line of any process that
    keeps printing.
    """
    reader = _line_reader(process)
    lines: deque[str] = deque(maxlen=keep)

    def drain() -> None:
        while (line := reader.lines.get()) is not None:
            lines.append(line.rstrip("\n"))

    threading.Thread(target=drain, name=f"drain {process.pid}", daemon=True).start()
    return lines


SECRET_OPTION_WORDS = ("psk", "key", "password", "secret")


def describe_command(args: Sequence[object]) -> str:
    """Return `args` as one string, with the value after a secret-bearing option masked.

    An option is secret-bearing when its name contains psk, key, password or
    secret, except `-psk_identity` and `-psk_hint`, which are not secrets.
    """
    parts = [str(part) for part in args]
    for index, part in enumerate(parts[:-1]):
        name = part.lstrip("-").lower()
        if part.startswith("-") and any(word in name for word in SECRET_OPTION_WORDS):
            if name not in ("psk_identity", "psk_hint"):
                parts[index + 1] = "<redacted>"
    return " ".join(parts)


def _not_ready_message(process: subprocess.Popen[str], regex: re.Pattern[str], reason: str, seen: list[str]) -> str:
    """Build the error for a process that never printed its ready line."""
    command = describe_command(process.args)  # type: ignore[arg-type]
    tail = "\n".join(seen[-10:]) or "(no output)"
    return f"{command} {reason} before printing a line matching {regex.pattern!r}; last output:\n{tail}"


def stop_process(process: subprocess.Popen, grace: float = DEFAULT_STOP_GRACE) -> int | None:
    """Stop `process` and its process group: SIGTERM, then SIGKILL after `grace` s.

    Returns the exit status. Safe to call on a process that already exited.
    """
    if process.poll() is None:
        _signal_group(process, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait(timeout=grace)

    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            stream.close()

    return process.returncode


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    """Send `signum` to the process group that start_process created."""
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass
    except PermissionError:
        process.send_signal(signum)


def python_command(*args: str) -> list[str]:
    """Return the command that runs this interpreter with `args`."""
    return [sys.executable, *args]


# --- CPU accounting -------------------------------------------------------


def process_cpu_seconds(pid: int) -> float:
    """Return the user plus system CPU seconds that process `pid` has used (Linux /proc)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError as error:
        raise BenchError(f"process {pid} not found: it exited before its CPU time was read") from error

    # The command name in brackets may contain spaces, so split after its ")".
    fields = text.rsplit(")", 1)[1].split()
    user_ticks, system_ticks = int(fields[11]), int(fields[12])
    return (user_ticks + system_ticks) / os.sysconf("SC_CLK_TCK")


def pin_to_cpus(pid: int, cpus: set[int]) -> bool:
    """Restrict every thread of process `pid` to `cpus`.

    Returns False, and changes nothing, where this process may not use all of
    `cpus` (a machine or container with fewer CPUs). Threads that `pid` starts
    later inherit the affinity of the thread that starts them.
    """
    available = os.sched_getaffinity(0)
    if not cpus or not cpus <= available:
        return False

    threads = [int(name) for name in os.listdir(f"/proc/{pid}/task")]
    for thread in threads:
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(thread, cpus)
    return True


# --- run sizes ------------------------------------------------------------

REPEATS_ENV = "MSGIN5G_BENCH_REPEATS"


def repeats_for(quick: bool, quick_default: int = 3, full_default: int = 7) -> int:
    """Return the repeats per side: `--repeats` of bench/run.py when given, else the row's default."""
    override = os.environ.get(REPEATS_ENV)
    if override:
        return int(override)
    return quick_default if quick else full_default
