"""bench/run.py runs one fast row and writes results in the shape the benchmark page documents.

No assertion here is about time: benchmarks are not tests.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROW_FIELDS = {
    "name",
    "subject",
    "reference",
    "subject_per_s",
    "reference_per_s",
    "ratio",
    "goal",
    "samples",
    "reference_samples",
    "median",
    "spread",
    "extra",
    "environment",
}
ENVIRONMENT_FIELDS = {
    "cores",
    "cpu_model",
    "python",
    "ssl_openssl_version",
    "openssl_cli_version",
    "packages",
    "command",
    "date_utc",
}


def run_quick_kdf(output: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "bench/run.py", "--quick", "--only", "kdf", "--repeats", "2", "--output", str(output)]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60, check=False)


def test_quick_kdf_writes_rows(tmp_path):
    output = tmp_path / "results.json"

    result = run_quick_kdf(output)

    assert result.returncode == 0, result.stdout + result.stderr
    rows = json.loads(output.read_text())
    assert isinstance(rows, list)
    assert [row["name"] for row in rows] == ["kdf"]
    row = rows[0]
    assert ROW_FIELDS <= row.keys()
    assert ENVIRONMENT_FIELDS <= row["environment"].keys()
    assert row["environment"]["quick"] is True
    assert "--only kdf" in row["environment"]["command"]


def test_quick_kdf_ratio_is_subject_over_reference(tmp_path):
    output = tmp_path / "results.json"

    run_quick_kdf(output)

    row = json.loads(output.read_text())[0]
    assert len(row["samples"]) == 2
    assert len(row["reference_samples"]) == 2
    assert row["subject_per_s"] > 0
    assert row["reference_per_s"] > 0
    assert math.isclose(row["ratio"], row["subject_per_s"] / row["reference_per_s"])
    assert row["goal"] == 0.5
    assert row["spread"]["min"] <= row["median"] <= row["spread"]["max"]
    assert row["extra"]["hmacs_per_derivation"] == 3


def test_results_page_untouched_with_output(tmp_path):
    page = REPO / "docs" / "benchmarks.md"
    before = page.read_text()

    run_quick_kdf(tmp_path / "results.json")

    assert page.read_text() == before
