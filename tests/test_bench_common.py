"""bench/common.py process helpers: ready lines that arrive together with earlier lines.

No assertion here is about time: the timeouts only bound a failing test.
"""

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import common  # noqa: E402  (bench/ is not a package)

# Writes three lines with one write call, then waits to be stopped.
TOGETHER = "import sys, time; sys.stdout.write('first\\nready 42\\nafter\\n'); sys.stdout.flush(); time.sleep(30)"


def test_ready_line_in_same_read():
    process, match = common.start_process(common.python_command("-c", TOGETHER), ready=r"ready (\d+)", timeout=10)
    try:
        port = match.group(1)
        rest = common.start_draining(process)
        for _ in range(100):
            if rest:
                break
            time.sleep(0.05)
    finally:
        common.stop_process(process)

    assert port == "42"
    assert list(rest) == ["after"]


def test_second_wait_reads_queued_line():
    process, _ = common.start_process(common.python_command("-c", TOGETHER), ready="first", timeout=10)
    try:
        match = common.wait_for_line(process, "after", timeout=10)
    finally:
        common.stop_process(process)

    assert match.group(0) == "after"


def test_exit_without_ready_line_names_output():
    command = common.python_command("-c", "print('starting'); print('failed: no config')")

    with pytest.raises(common.BenchError, match="exited with status 0") as error:
        common.start_process(command, ready="ready", timeout=10)

    assert "failed: no config" in str(error.value)
