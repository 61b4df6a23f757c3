"""Where the reference material lives: the vectors and the official OpenAPI files.

They are in the `shared` folder beside the repository clone, or in the
folder that the MSGIN5G_REFERENCE_DIR environment variable names.
"""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_DIR = Path(os.environ.get("MSGIN5G_REFERENCE_DIR", REPO_ROOT.parent / "shared"))


def require_reference_dir() -> Path:
    if not (REFERENCE_DIR / "vectors").is_dir() or not (REFERENCE_DIR / "openapi").is_dir():
        raise RuntimeError(
            f"reference folder {REFERENCE_DIR} with vectors/ and openapi/ not found: clone the "
            "repository next to the 'shared' folder, or set MSGIN5G_REFERENCE_DIR to that folder"
        )
    return REFERENCE_DIR
