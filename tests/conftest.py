"""Shared test setup: where ../shared lives, and fast CPU compiles."""
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FIXTURES = SHARED / "fixtures"
DATA = SHARED / "data"



def require(path: Path) -> Path:
    """Skips the calling test, naming the path, when reference material is absent."""
    if not path.exists():
        pytest.skip(f"{path} is absent (reference material lives in ../shared beside the repo)")
    return path
