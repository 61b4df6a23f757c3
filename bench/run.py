"""Run the benchmarks of bench/bench_*.py and record their results.

    python bench/run.py [--quick] [--only NAME ...] [--repeats N] [--output PATH]

Each module `bench/bench_<name>.py` provides `run(quick: bool) -> list[dict]`.
The runner records the environment once, adds the median and spread of each
row's samples, writes the rows as JSON (bench/results.json by default), prints
a table, and rewrites the table between the results markers of
docs/benchmarks.md. `--quick` uses small counts for development: its numbers
are not results.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.metadata
import json
import os
import platform
import shlex
import ssl
import subprocess
import sys
import time
import traceback
from pathlib import Path

from rich.console import Console
from rich.table import Table

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(1, str(REPO_DIR / "src"))

from common import summarize  # noqa: E402  (needs the path set above)

DEFAULT_OUTPUT = BENCH_DIR / "results.json"
DOCS_PAGE = REPO_DIR / "docs" / "benchmarks.md"
RESULTS_START = "<!-- results:start -->"
RESULTS_END = "<!-- results:end -->"

# Rows run in this order; modules not listed run afterwards in name order.
ROW_ORDER = ["kdf", "tls13", "dtls12", "aanf", "e2e", "memory", "aka"]
PACKAGES = ["cryptography", "pyOpenSSL", "granian", "hypercorn", "starlette", "h2", "httpx", "pyinstrument", "redis"]
REPEATS_ENV = "MSGIN5G_BENCH_REPEATS"


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts for development; the numbers are not results")
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="run only bench_NAME.py (repeatable), for example --only kdf",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        help=f"repeats per side for rows that honour it (sets {REPEATS_ENV}); default: each row's own",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON file to write (default: bench/results.json)")
    parser.add_argument(
        "--no-docs",
        action="store_true",
        help="do not rewrite the results table in docs/benchmarks.md (implied when --output is not the default)",
    )
    return parser.parse_args(argv)


def discover(only: list[str] | None) -> list[str]:
    """Return the row module names (`kdf` for bench_kdf.py) to run, in run order."""
    available = sorted(path.stem.removeprefix("bench_") for path in BENCH_DIR.glob("bench_*.py"))
    if only:
        unknown = [name for name in only if name not in available]
        if unknown:
            raise SystemExit(f"error: no benchmark named {', '.join(unknown)}; available: {', '.join(available)}")
        available = [name for name in available if name in only]

    def position(name: str) -> tuple[int, str]:
        return (ROW_ORDER.index(name) if name in ROW_ORDER else len(ROW_ORDER), name)

    return sorted(available, key=position)


# --- environment ----------------------------------------------------------


def cpu_model() -> str | None:
    """Return the CPU model name from /proc/cpuinfo, or None where it is missing."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def openssl_cli_version() -> str | None:
    """Return `openssl version` of the command-line tool, or None where it is missing."""
    try:
        result = subprocess.run(["openssl", "version"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None


def package_versions() -> dict[str, str | None]:
    """Return the installed version of each package in PACKAGES, None where absent."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def load_average() -> list[float] | None:
    """Return the 1, 5 and 15 minute load averages, a hint of other work on the machine."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def environment(argv: list[str], quick: bool) -> dict:
    """Describe the machine, the software and the command of this run."""
    return {
        "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": shlex.join([sys.executable, *argv]),
        "cwd": os.getcwd(),
        "quick": quick,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model(),
        "machine": platform.machine(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "ssl_openssl_version": ssl.OPENSSL_VERSION,
        "openssl_cli_version": openssl_cli_version(),
        "packages": package_versions(),
        "load_average_at_start": load_average(),
    }


# --- running --------------------------------------------------------------


def run_module(name: str, quick: bool, console: Console) -> tuple[list[dict], str | None]:
    """Import bench_<name>.py and run it; return its rows, or an error text."""
    console.print(f"[bold]running {name}[/bold] ({'quick' if quick else 'full'})")
    started = time.perf_counter()
    try:
        module = importlib.import_module(f"bench_{name}")
        rows = module.run(quick)
    except Exception:  # noqa: BLE001  (one failing row must not lose the others)
        error = traceback.format_exc()
        console.print(f"[red]{name} failed[/red]\n{error}")
        return [], error

    seconds = time.perf_counter() - started
    for row in rows:
        row.setdefault("module", f"bench_{name}")
        row.setdefault("seconds", round(seconds, 2))
    return rows, None


def add_statistics(row: dict) -> dict:
    """Add `median` and `spread` of the subject and reference samples, and recheck `ratio`."""
    subject = summarize(row.get("samples") or [])
    reference = summarize(row.get("reference_samples") or [])
    row["median"] = subject["median"]
    row["spread"] = {key: subject[key] for key in ("n", "min", "max", "q1", "q3", "iqr")}
    row["reference_median"] = reference["median"]
    row["reference_spread"] = {key: reference[key] for key in ("n", "min", "max", "q1", "q3", "iqr")}

    subject_rate, reference_rate = row.get("subject_per_s"), row.get("reference_per_s")
    if row.get("ratio") is None and subject_rate is not None and reference_rate:
        row["ratio"] = subject_rate / reference_rate
    goal, ratio = row.get("goal"), row.get("ratio")
    row["meets_goal"] = None if goal is None or ratio is None else ratio >= goal
    return row


# --- output ---------------------------------------------------------------


def format_rate(value: float | None) -> str:
    """Format a rate with three significant figures, or "-" when missing."""
    if value is None:
        return "-"
    if value >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def format_spread(row: dict, side: str) -> str:
    """Format the min-max range of one side's samples."""
    spread = row.get("spread" if side == "subject" else "reference_spread") or {}
    if spread.get("n", 0) < 2:
        return ""
    return f"{format_rate(spread['min'])}-{format_rate(spread['max'])}"


def format_ratio(row: dict) -> str:
    """Format the ratio, with the goal it is held to."""
    ratio, goal = row.get("ratio"), row.get("goal")
    text = "-" if ratio is None else f"{ratio:.3f}"
    return text if goal is None else f"{text} (goal >= {goal})"


def table_rows(rows: list[dict]) -> list[list[str]]:
    """Return the cells of the results table, one list per row."""
    cells = []
    for row in rows:
        if row.get("error"):
            cells.append([row["name"], "failed", "-", "-", "-"])
            continue
        cells.append(
            [
                row["name"],
                f"{format_rate(row.get('subject_per_s'))} [{format_spread(row, 'subject')}]",
                f"{format_rate(row.get('reference_per_s'))} [{format_spread(row, 'reference')}]",
                format_ratio(row),
                {True: "yes", False: "no", None: "report"}[row.get("meets_goal")],
            ]
        )
    return cells


TABLE_HEADER = ["row", "subject /s median [min-max]", "reference /s median [min-max]", "ratio", "goal met"]


def print_table(rows: list[dict], console: Console) -> None:
    """Print the results as a rich table."""
    table = Table(title="msgin5g benchmarks")
    for column in TABLE_HEADER:
        table.add_column(column)
    for cells in table_rows(rows):
        table.add_row(*cells)
    console.print(table)


def markdown_results(rows: list[dict], env: dict) -> str:
    """Return the Markdown table and environment lines for docs/benchmarks.md."""
    lines = [
        f"Run {env['date_utc']} on {env['cores']} cores ({env['cpu_model']}), Python {env['python']}, "
        f"{env['ssl_openssl_version']} in Python's ssl, {env['openssl_cli_version']} as the CLI"
        + (" (--quick: development counts, not results)" if env["quick"] else "")
        + ".",
        "",
        f"Command: `{env['command']}`",
        "",
        "| " + " | ".join(TABLE_HEADER) + " |",
        "| " + " | ".join("---" for _ in TABLE_HEADER) + " |",
    ]
    notes = []
    for row, cells in zip(rows, table_rows(rows), strict=True):
        cells[0] = f"{row['name']}: {row.get('subject', '')} vs {row.get('reference', '')}"
        row_env = row.get("environment") or {}
        if row_env.get("date_utc") not in (None, env["date_utc"]):
            cells[0] += f" (run {row_env['date_utc']}{', --quick' if row_env.get('quick') else ''})"
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
        if row.get("error"):
            notes.append(f"`{row['name']}` failed: {row['error'].strip().splitlines()[-1]}")
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)


def update_docs(rows: list[dict], env: dict, page: Path = DOCS_PAGE) -> bool:
    """Replace the text between the results markers of `page`; return False when they are missing."""
    if not page.exists():
        return False
    text = page.read_text()
    start, end = text.find(RESULTS_START), text.find(RESULTS_END)
    if start < 0 or end < start:
        return False

    body = markdown_results(rows, env)
    page.write_text(text[: start + len(RESULTS_START)] + "\n" + body + "\n" + text[end:])
    return True


def merge_previous(rows: list[dict], output: Path) -> list[dict]:
    """Keep the rows of an earlier run in `output` that this run did not produce.

    With --only, the file then still contains every row, each with the
    environment of the run that produced it.
    """
    if not output.exists():
        return rows
    try:
        previous = json.loads(output.read_text())
    except (OSError, ValueError):
        return rows
    if not isinstance(previous, list):
        return rows

    names = {row["name"] for row in rows}
    modules = {row.get("module") for row in rows}
    kept = [
        row
        for row in previous
        if isinstance(row, dict) and row.get("name") not in names and row.get("module") not in modules
    ]
    return kept + rows


def failed_row(name: str, error: str, env: dict) -> dict:
    """Return the row that records a benchmark module that raised."""
    return {
        "name": name,
        "module": f"bench_{name}",
        "subject_per_s": None,
        "reference_per_s": None,
        "ratio": None,
        "goal": None,
        "error": error,
        "environment": env,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks, write the JSON and the docs table; return the exit status."""
    argv = list(sys.argv if argv is None else argv)
    args = parse_arguments(argv[1:])
    if args.repeats is not None:
        if args.repeats < 1:
            raise SystemExit(f"error: invalid --repeats {args.repeats}: expected 1 or more")
        os.environ[REPEATS_ENV] = str(args.repeats)

    console = Console()
    env = environment(argv, args.quick)
    rows: list[dict] = []
    failed = 0
    for name in discover(args.only):
        module_rows, error = run_module(name, args.quick, console)
        if error is not None:
            failed += 1
            rows.append(failed_row(name, error, env))
        for row in module_rows:
            row["environment"] = env
            rows.append(add_statistics(row))

    if args.only:
        rows = merge_previous(rows, args.output)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(rows, indent=2) + "\n")
    print_table(rows, console)
    console.print(f"wrote {args.output}")

    if not args.no_docs and args.output.resolve() == DEFAULT_OUTPUT.resolve():
        if update_docs(rows, env):
            console.print(f"updated the results table in {DOCS_PAGE.relative_to(REPO_DIR)}")
        else:
            console.print(f"[yellow]{DOCS_PAGE} has no {RESULTS_START} / {RESULTS_END} markers: table not written[/yellow]")

    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
