"""Shared test setup and helpers: where ../shared lives, random model variables, quick compiles,
Ctrl-C to a subprocess."""
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from jax import export

from d2ljax import jpeg
from d2ljax.checkpoints import abstract_variables

# The command lines run as subprocesses keep no compiled programs between tests (compile_cache).
os.environ["D2LJAX_COMPILE_CACHE"] = "0"

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FIXTURES = SHARED / "fixtures"
DATA = SHARED / "data"


def require(path: Path) -> Path:
    """Skips the calling test, naming what is missing, when reference material is absent or
    is a PyTorch checkpoint (.pth) and PyTorch is not installed."""
    if not path.exists():
        pytest.skip(f"{path} is absent (reference material lives in ../shared beside the repo)")
    if path.suffix == ".pth":
        pytest.importorskip("torch", reason=f"reading {path.name} needs PyTorch: pip install 'd2ljax[torch]'")
    return path


def random_variables(model, seed: int = 0, scale: float = 0.05) -> dict:
    """Variables of the right shapes with N(0, scale^2) values, without running model.init
    (which compiles the whole network, slowly on CPU). scale 0: all zeros, a model that
    returns its input exactly."""
    leaves, treedef = jax.tree_util.tree_flatten(abstract_variables(model))
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_unflatten(
        treedef, [(scale * rng.standard_normal(leaf.shape)).astype(np.float32) for leaf in leaves])


@contextlib.contextmanager
def quick_compiles(cache_dir):
    """Quick, unoptimised CPU compiles in this process, cached in `cache_dir` (so that runs in
    subprocesses given the yielded settings as environment variables compile the same way)."""
    settings = {"jax_disable_most_optimizations": True, "jax_compilation_cache_dir": str(cache_dir),
                "jax_persistent_cache_min_compile_time_secs": 0}
    saved = {k: jax.config.values[k] for k in settings}
    for k, v in settings.items():
        jax.config.update(k, v)
    try:
        yield settings
    finally:
        for k, v in saved.items():
            jax.config.update(k, v)


def lowered(fn, *args, platform: str) -> str:
    """The StableHLO text of fn(*args) lowered for `platform` ("cpu", "cuda", "rocm", "tpu": no such
    device needed), traced now: through a fresh function, as JAX caches traces by function."""
    return export.export(jax.jit(lambda *a: fn(*a)), platforms=(platform,))(*args).mlir_module()


# Resets SIGINT to its default action, then becomes the Python command given after it.
_WITH_CTRL_C = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])")


def start_interruptible(python_args: list[str], **popen_kwargs) -> subprocess.Popen:
    """Starts `python PYTHON_ARGS...` (stderr piped, text) with SIGINT's default action, as a
    terminal's foreground job has it: the tests may run as a background job of a
    non-interactive shell, which starts its children with SIGINT ignored, and Python then never
    raises KeyboardInterrupt. (Resetting it in a preexec_fn would fork this multithreaded
    process.)"""
    return subprocess.Popen([sys.executable, "-c", _WITH_CTRL_C, *python_args], stderr=subprocess.PIPE, text=True,
                            **popen_kwargs)


def interrupt_when(condition, process, timeout: float = 240.0) -> str:
    """Sends SIGINT (Ctrl-C) to a Popen `process` (stderr piped, text) once `condition()` holds
    and returns its stderr when it has exited; fails, showing the stderr, if the process ends
    or `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the run ended or stalled before the signal:\n{process.communicate()[1]}")
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    return process.communicate(timeout=120)[1]


def outside_cells(pixels: np.ndarray, decoded: np.ndarray, grid: jpeg.Grid) -> float:
    """The share of coefficients outside the quantisation cell of the JPEG `decoded` was made of
    by more than rounding each pixel can move them (0.5 x the basis' L1 norm <= 0.5 x 8)."""
    steps = np.reshape(grid.luma_table, (8, 8))
    centres = np.round(jpeg.block_dct(decoded, grid.offset) / steps) * steps
    return float(np.mean(np.abs(jpeg.block_dct(pixels, grid.offset) - centres) > steps / 2 + 4))
