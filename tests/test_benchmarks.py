"""The benchmark scripts and the device tools import (one broke unnoticed when a helper it used
was removed) and compute what their docstrings say."""
import importlib
import importlib.util
import json
import pathlib

import numpy as np
import pytest

BENCHMARKS = pathlib.Path(__file__).parents[1] / "benchmarks"
SCRIPTS = sorted(p.stem for p in BENCHMARKS.glob("*.py") if p.stem != "__init__")
DEVICE_TOOLS = pathlib.Path(__file__).parents[1] / "tools" / "device"


def load_tool(path: pathlib.Path):
    """A tools/device script as a module (they run as files, `python tools/device/NAME.py`)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


@pytest.mark.parametrize("path", sorted(DEVICE_TOOLS.glob("*.py")), ids=lambda p: p.name)
def test_device_tool_imports(path):
    load_tool(path)


def test_train_summary_reads_a_workdir(tmp_path):
    """Steady-state medians leave out the first logged window (it holds the compilation)."""
    train_summary = load_tool(DEVICE_TOOLS / "train_summary.py")
    rows = [{"step": 10 * (i + 1), "loss": 0.1, "steps_per_s": rate, "patches_per_s": 32 * rate,
             "tflops_per_s": 79.0 * rate, "input_wait_s": 0.01, "elapsed_s": 60.0 * (i + 1)}
            for i, rate in enumerate([0.5, 4.0, 5.0, 6.0])]
    rows[-1].update(val_psnr=30.0, val_psnr_jpeg=29.0)
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = {"batch_size": 32, "mode": "color", "wf": 32, "depth": 4, "dtype": "bfloat16", "patch_size": 128}
    (tmp_path / "config.json").write_text(json.dumps(config))
    summary = train_summary.summarise_run(str(tmp_path), peak_tflops=790.0)
    assert (summary["steps"], summary["patches"], summary["minutes"]) == (40, 1280, 4.0)
    assert summary["step_s"] == pytest.approx(0.2) and summary["patches_per_s"] == pytest.approx(160.0)
    assert summary["peak_fraction"] == pytest.approx(0.5) and summary["input_wait_fraction"] == pytest.approx(0.05)
    assert summary["val_psnr_by_minute"] == [(4.0, 30.0)]


def test_never_worse_adds_seeded_grain_of_the_named_sigma(tmp_path):
    from PIL import Image
    from benchmarks import never_worse
    y, x = np.mgrid[:64, :80]
    smooth = np.stack([(x * 2 + c * 20) % 200 + 20 for c in range(3)], -1).astype(np.uint8) + (y // 8).astype(np.uint8)[..., None]
    Image.fromarray(smooth).save(tmp_path / "smooth.png")
    paths = [str(tmp_path / "smooth.png")]
    photos = never_worse.photos_for(paths, 3, 48, grain=(0, 8), generated=False)
    assert list(photos) == ["smooth.png", "smooth.png+grain8"]
    assert np.array_equal(photos["smooth.png"], smooth[8:56, 16:64])
    grain = photos["smooth.png+grain8"].astype(float) - photos["smooth.png"]
    assert abs(grain.std() - 8) < 0.5 and abs(grain.mean()) < 0.5
    again = never_worse.photos_for(paths, 1, 48, grain=(8,), generated=False)
    assert list(again) == ["smooth.png+grain8"] and again["smooth.png+grain8"].ndim == 2
    assert np.array_equal(never_worse.photos_for(paths, 3, 48, grain=(8,), generated=False)["smooth.png+grain8"],
                          photos["smooth.png+grain8"])


def test_never_worse_generates_saturated_waves_from_slow_to_fast():
    from benchmarks import never_worse
    from d2ljax import jpeg
    waves = never_worse.saturated_waves()
    assert waves.shape == (384, 384, 3) and waves.min() < 45 and waves.max() > 210
    assert jpeg.detect_quality(waves) is None  # clean: restore would leave it as it is
    # Along a row the crossings of 128 are half a period apart, the period falling from 96 to 16 px:
    # 1 / period(x) = 1/96 + (1/16 - 1/96) x / 384.
    rows = waves[..., 0].astype(float) - 128
    row = rows[np.argmax(rows.std(axis=1))]
    crossings = np.flatnonzero((row[1:] > 0) != (row[:-1] > 0))
    crossings = crossings[np.diff(crossings, prepend=-9) > 2]  # one crossing where rounding flickers
    middles = (crossings[1:] + crossings[:-1]) / 2
    expected = 0.5 / (1 / 96 + (1 / 16 - 1 / 96) * middles / 384)
    assert len(crossings) > 20 and np.allclose(np.diff(crossings), expected, rtol=0.15, atol=1.5)
    gray = never_worse.photos_for([], 1, 384, grain=(0,))
    assert list(gray) == ["saturated_waves"] and gray["saturated_waves"].ndim == 2


def test_never_worse_chooses_the_best_mean_among_strengths_that_lose_nothing():
    from benchmarks import never_worse
    assert never_worse.MARGIN_DB == 0.01
    # 1.0 has the best mean but one photo loses 0.02 dB; 0.5 loses at most 0.005.
    assert never_worse.choose_strength({0.0: [0, 0], 0.5: [0.3, -0.005], 1.0: [0.6, -0.02]}) == 0.5
    # Equal means: the weaker strength (closer to the JPEG).
    assert never_worse.choose_strength({0.0: [0, 0], 0.5: [0.1, 0.1], 1.0: [0.1, 0.1]}) == 0.5
    # Every strength loses on some photo: leave the JPEG as it is.
    assert never_worse.choose_strength({0.0: [0, 0], 0.5: [0.4, -0.3], 1.0: [0.8, -0.9]}) == 0.0


def test_learning_curve_reads_the_shipped_models_history():
    """The first gray_blind point is the 1500-step model the campaign started from (LIVE1 28.829 /
    31.223 / 32.433, as its issue quotes), found across the weights folder's rename; steps only
    grow, and the newest point is the model.json in the working tree's HEAD."""
    import subprocess
    from benchmarks import learning_curve
    if subprocess.run(["git", "-C", str(learning_curve.ROOT), "rev-parse", "--is-shallow-repository"],
                      capture_output=True, text=True).stdout.strip() != "false":
        pytest.skip("needs a full git checkout (the models' history)")
    points = learning_curve.curve("gray_blind", "LIVE1")
    assert (points[0]["steps"], points[0]["psnr"]) == (1500, {"10": 28.829, "20": 31.223, "30": 32.433})
    assert all(a["steps"] < b["steps"] for a, b in zip(points, points[1:]))
    head = json.loads(learning_curve.git("show", "HEAD:d2ljax/weights/gray_blind/model.json"))
    assert points[-1]["steps"] == head["total_train_steps"]
    assert points[-1]["psnr"] == {qf: row["psnr"] for qf, row in head["results"]["LIVE1"].items()}
