"""The benchmark scripts import (one broke unnoticed when a helper it used was removed) and time
what their docstrings say."""
import importlib
import pathlib

import pytest

BENCHMARKS = pathlib.Path(__file__).parents[1] / "benchmarks"
SCRIPTS = sorted(p.stem for p in BENCHMARKS.glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("name", SCRIPTS)
def test_benchmark_imports(name):
    if name == "torch_reference":
        pytest.importorskip("torch", reason="torch_reference needs the optional torch extra")
    importlib.import_module(f"benchmarks.{name}")


def test_benchmarks_import_the_installed_package():
    """No script edits sys.path: they import d2ljax as installed, and the ones that import another
    benchmark (or configs) run as `python -m benchmarks.NAME` from the repository root."""
    for path in BENCHMARKS.glob("*.py"):
        assert "sys.path" not in path.read_text(), path.name


def test_model_speed_times_each_case_in_its_own_block():
    """Forward passes back to back, then train steps back to back; implementations alternate."""
    from benchmarks import model_speed
    calls = []
    cases = ("forward_s", "train_step_s")
    implementations = {name: {case: (lambda n=name, c=case: calls.append((n, c))) for case in cases}
                       for name in ("jax", "torch")}
    times = model_speed.time_interleaved(implementations, repeats=2, pause_s=0)
    assert calls == ([("jax", "forward_s"), ("torch", "forward_s")] * 2
                     + [("jax", "train_step_s"), ("torch", "train_step_s")] * 2)
    assert ({name: {case: len(t) for case, t in per_case.items()} for name, per_case in times.items()}
            == {name: {"forward_s": 2, "train_step_s": 2} for name in ("jax", "torch")})
