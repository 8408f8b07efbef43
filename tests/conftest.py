"""Shared test setup: where ../shared lives, and fast CPU compiles."""
from pathlib import Path

import jax
import pytest
from jax import export

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FIXTURES = SHARED / "fixtures"
DATA = SHARED / "data"



def require(path: Path) -> Path:
    """Skips the calling test, naming the path, when reference material is absent."""
    if not path.exists():
        pytest.skip(f"{path} is absent (reference material lives in ../shared beside the repo)")
    return path


def lowered(fn, *args, platform: str) -> str:
    """The StableHLO text of fn(*args) lowered for `platform` ("cpu", "cuda", "rocm", "tpu": no such
    device needed), traced now: through a fresh function, as JAX caches traces by function."""
    return export.export(jax.jit(lambda *a: fn(*a)), platforms=(platform,))(*args).mlir_module()
