"""Fixtures shared by the whole suite."""

import json
from pathlib import Path

import pytest

from reference import require_reference_dir


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The folder with vectors/ and openapi/ (see reference.py)."""
    return require_reference_dir()


@pytest.fixture(scope="session")
def vectors(shared_dir: Path) -> list[dict]:
    """Entries of the reference vector file, a JSON list of cases."""
    return json.loads((shared_dir / "vectors" / "vectors.json").read_text(encoding="utf-8"))

# Redis servers for the store tests (tests/redis_servers.py).
pytest_plugins = ["redis_servers"]
