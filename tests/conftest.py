"""Fixtures shared by the whole suite."""

import json
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# The reference vectors and the official OpenAPI files live in the `shared`
# folder beside the repository clone.
SHARED_DIR = REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED_DIR.is_dir():
        raise RuntimeError(
            f"reference folder {SHARED_DIR} not found: clone the repository next to the "
            "'shared' folder that holds vectors/ and openapi/"
        )
    return SHARED_DIR


@pytest.fixture(scope="session")
def vectors(shared_dir: Path) -> list[dict]:
    """Entries of the reference vector file, a JSON list of cases."""
    return json.loads((shared_dir / "vectors" / "vectors.json").read_text(encoding="utf-8"))
