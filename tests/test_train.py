"""Training: config checks, identity init, the loop on the shipped photos (loss falls, resume
continues the same run, a NaN stops it, the workdir loads as a model), and sharding (8 devices
equal 1; 2 processes x 2 devices equal 1 x 4) in subprocesses with fake CPU devices."""
import functools
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the configs/ folder

from configs import blind, bsds, default, qf10, qf20, qf30, quickstart  # noqa: E402
from d2ljax import checkpoints, run_log, samples, schedules, train_config, train_lib, train_state  # noqa: E402
from d2ljax.imageio import SAMPLE_PHOTOS_DIR  # noqa: E402

CONFIG_MODULES = (default, qf10, qf20, qf30, blind, quickstart)


def tiny_config(**overrides):
    """The quickstart recipe shrunk for tests: wf 4, depth 2, 16x16 patches, batch 8."""
    config = quickstart.get_config()
    config.update({"wf": 4, "depth": 2, "patch_size": 16, "batch_size": 8, "num_train_steps": 60,
                   "warmup_steps": 2, "learning_rate": 3e-3, "log_every_steps": 1,
                   "checkpoint_every_steps": 20, "ema_decay": 0.9, "val_crop": 64,
                   "progress_bar": False, **overrides})
    return config


@pytest.fixture(scope="module", autouse=True)
def fast_compiles(tmp_path_factory):
    """Quick, unoptimised CPU compiles, shared between runs through a persistent cache."""
    from conftest import quick_compiles  # here: subprocess scripts import this module without pytest
    with quick_compiles(tmp_path_factory.mktemp("xla_cache")):
        yield


def read_losses(workdir) -> dict[int, float]:
    """step -> loss from metrics.jsonl."""
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return {r["step"]: r["loss"] for r in map(json.loads, f)}


# ----------------------------------------------------------------------------- configs
@pytest.mark.parametrize("module", CONFIG_MODULES, ids=lambda m: m.__name__)
@pytest.mark.parametrize("arg", ["", "gray"])
def test_configs_are_valid(module, arg):
    config = module.get_config(arg)
    train_config.check_config(config, device_count=1, process_count=1)
    assert config.mode == (arg or "color")
    assert config.num_train_steps > 0 and config.batch_size > 0 and config.patch_size > 0
    assert module.__doc__.lstrip().split("\n")[0] and "python train.py" in module.__doc__


@pytest.mark.parametrize("arg", ["gray,10", "color,20", "gray,blind", "color,blind"])
def test_bsds_configs(arg):
    config = bsds.get_config(arg)
    train_config.check_config(config, device_count=1, process_count=1)
    assert config.mode == arg.split(",")[0]
    assert all(os.path.basename(p).startswith("BSDS500_") for p in config.train_data.split(","))
    expected = "10-95" if arg.endswith("blind") else [int(arg.split(",")[1])]
    assert train_config.trained_qualities(config) == expected


@pytest.mark.parametrize("arg", ["", "gray", "grey,10", "gray,ten", "gray,10,20"])
def test_bsds_config_needs_mode_and_qf(arg):
    with pytest.raises(ValueError, match="MODE,QF"):
        bsds.get_config(arg)


def test_blind_recipe():
    color, gray = blind.get_config(), blind.get_config("gray")
    assert (color.qf_range, gray.qf_range, color.qf_range_prob, color.misalign) == ((8, 96), (5, 95), 0.25, 0.5)


@pytest.mark.parametrize("field, value, message", [
    ("batch_size", 6, "batch_size=6 .* multiple of the 8 devices"),
    ("patch_size", 36, r"patch_size=36 must be a multiple of 2\*\*\(depth-1\) = 8"),
    ("mode", "grey", "mode='grey'"),
    ("qf", (0,), "qf=.*must be an integer in 1..100, got 0"),
    ("qf", (10.5,), "qf=.*must be an integer in 1..100, got 10.5"),
    ("schedule", "linear", "schedule='linear'"),
    ("ema_decay", 1.0, "ema_decay=1.0"),
    ("dtype", "float16", "dtype='float16'"),
    ("input_pipeline", "torch", "input_pipeline='torch'"),
    ("time_budget_s", -1.0, "time_budget_s=-1.0"),
    ("budget_clock", "gpu", "budget_clock='gpu': must be one of"),
    ("schedule", "budget", "schedule='budget' spans the time budget"),
])
def test_bad_config_is_a_one_line_error(field, value, message):
    config = default.get_config()
    config[field] = value
    with pytest.raises(ValueError, match=message) as error:
        train_config.check_config(config, device_count=8, process_count=1)
    assert "\n" not in str(error.value)


# ----------------------------------------------------------------------------- state and step
def test_identity_init_returns_the_input():
    config = tiny_config()
    model = train_state.make_model(config)
    tx = train_state.create_optimizer(config)
    state = train_state.create_train_state(config, model, tx, train_state.make_mesh())
    x = jax.random.uniform(jax.random.PRNGKey(1), (2, 16, 16, 3))
    out_1, _, _, out_2 = model.apply({"params": state.params}, x)
    np.testing.assert_array_equal(out_1, x)
    np.testing.assert_array_equal(out_2, x)


def test_bfloat16_step():
    """bfloat16 convolutions, float32 parameters and loss; gradient clipping on."""
    config = tiny_config(dtype="bfloat16", grad_clip_norm=1.0)
    model = train_state.make_model(config)
    lr_fn = schedules.create_learning_rate_fn(config)
    tx = train_state.create_optimizer(config)
    mesh = train_state.make_mesh()
    state = train_state.create_train_state(config, model, tx, mesh)
    batch = [np.random.default_rng(0).uniform(size=(8, 16, 16, 3)).astype(np.float32)] * 2
    step = train_state.make_train_step(config, model, tx, lr_fn, mesh)
    args = (state, train_state.global_batch(batch, mesh), schedules.schedule_span(0, config.num_train_steps))
    assert "bf16" in step.lower(*args).as_text()  # the convolutions do run in bfloat16
    state, metrics = step(*args)
    assert np.isfinite(float(metrics["loss"])) and int(state.step) == 1
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(state.params))


def test_ema_forgets_the_initialisation_in_a_short_run():
    decays = [float(train_state.ema_decay_at(step, 0.999)) for step in (0, 90, 900, 10_000)]
    np.testing.assert_allclose(decays, [0.1, 0.91, 901 / 910, 0.999], rtol=1e-6)
    initial_weight = np.prod([float(train_state.ema_decay_at(step, 0.999)) for step in range(900)])
    assert initial_weight < 1e-3  # 0.999 ** 900 would be 0.41


def test_learning_rate_schedule():
    config = tiny_config(num_train_steps=100, warmup_steps=10, learning_rate=1.0, final_lr_fraction=0.1)
    lr = schedules.create_learning_rate_fn(config)
    np.testing.assert_allclose([lr(s, 0, 100) for s in (0, 5, 10, 100)], [0.0, 0.5, 1.0, 0.1], atol=1e-6)
    config.schedule = "constant"
    lr = schedules.create_learning_rate_fn(config)
    np.testing.assert_allclose([lr(s, 0, 100) for s in (5, 10, 100)], [0.5, 1.0, 1.0], atol=1e-6)


def test_budget_schedule_warms_up_from_its_start_and_decays_by_its_end():
    config = tiny_config(schedule="budget", time_budget_s=60, warmup_steps=10, learning_rate=1.0,
                         final_lr_fraction=0.1, budget_decay_fraction=0.2)
    lr = schedules.create_learning_rate_fn(config)
    start, end = 100, 200  # decay over the last 20 steps: 180 -> 200
    got = [float(lr(s, start, end)) for s in (100, 105, 110, 179, 180, 190, 200, 250)]
    np.testing.assert_allclose(got, [0.0, 0.5, 1.0, 1.0, 1.0, 0.55, 0.1, 0.1], atol=1e-6)


def test_budget_clock_estimates_the_end_from_the_step_rate(monkeypatch):
    config = tiny_config(schedule="budget", time_budget_s=100, num_train_steps=10**9, budget_decay_fraction=0.5)
    now = [0.0]
    monkeypatch.setattr(schedules.time, "monotonic", lambda: now[0])
    clock = schedules.BudgetClock(config, start_step=40, started_at=0.0)
    assert clock.end == 10**9 and not clock.finished(40)
    now[0] = 20.0  # setup and the first step (compiling) took 20 s
    clock.tick(41)
    now[0] = 30.0  # then 10 steps per second, 70 s left: 700 more steps
    clock.tick(141)
    assert clock.end == 841 and not clock.decaying
    now[0] = 70.0
    clock.tick(541)  # decay starts at 841 - 0.5 * 801: the end is fixed from here on
    assert clock.decaying and clock.end == 841
    now[0] = 80.0
    clock.tick(561)  # slower now; the end stays, the budget will cut the run short
    assert clock.end == 841 and not clock.finished(561)
    now[0] = 100.0
    clock.tick(600)
    assert clock.out_of_time and clock.finished(600)


def test_budget_clock_can_count_cpu_time(monkeypatch):
    """With budget_clock='cpu' the budget runs on the process's CPU time: waiting on the wall
    clock (a paused or shared run) spends none of it."""
    config = tiny_config(time_budget_s=10, budget_clock="cpu")
    wall, cpu = [0.0], [0.0]
    monkeypatch.setattr(schedules.time, "monotonic", lambda: wall[0])
    monkeypatch.setattr(schedules.time, "process_time", lambda: cpu[0])
    clock = schedules.BudgetClock(config, start_step=0, started_at=0.0)
    wall[0], cpu[0] = 100.0, 9.0
    clock.tick(1)
    assert not clock.finished(1) and clock.elapsed_s() == 9.0
    cpu[0] = 10.0
    clock.tick(2)
    assert clock.out_of_time


def test_auto_input_pipeline_is_resolved_when_the_run_starts(monkeypatch):
    config = tiny_config(input_pipeline="auto")
    train_config.check_config(config, device_count=1, process_count=1)
    assert train_config.prepared_config(config).input_pipeline == samples.default_pipeline()
    monkeypatch.setattr(samples, "default_pipeline", lambda: "grain")  # as without TensorFlow
    assert train_config.prepared_config(config).input_pipeline == "grain"
    assert config.input_pipeline == "auto"  # the caller's config is left as it was


def test_warmup_as_long_as_the_run_is_cut_to_a_tenth(capsys):
    config = train_config.prepared_config(tiny_config(num_train_steps=20, warmup_steps=1000))
    assert config.warmup_steps == 2
    assert "warmup_steps=1000" in capsys.readouterr().err


def test_progress_bar_leaves_the_compile_step_out(capsys):
    """The first step's time (compilation) counts neither in the elapsed time nor in the rate,
    so the ETA of the remaining steps is not inflated by it."""
    bar = run_log.StepBar(total=1000, initial=0, disable=False)
    time.sleep(1.0)  # the first step compiles
    for _ in range(10):
        bar.step_done(1000)
    elapsed, n = bar.bar.format_dict["elapsed"], bar.bar.format_dict["n"]
    bar.close()
    assert n == 10 and elapsed < 0.5


# ----------------------------------------------------------------------------- the loop
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """An uninterrupted tiny run: (config, workdir)."""
    config = tiny_config()
    workdir = str(tmp_path_factory.mktemp("run"))
    train_lib.train_and_evaluate(config, workdir)
    return config, workdir


def test_loss_falls(trained):
    losses = list(read_losses(trained[1]).values())
    assert len(losses) == 60
    assert np.mean(losses[-15:]) < 0.95 * np.mean(losses[:15])


def test_workdir_loads_as_the_best_ema_model(trained):
    config, workdir = trained
    model, variables = checkpoints.load_model(workdir)
    assert (model.in_chn, model.wf, model.depth) == (3, config.wf, config.depth)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        validated = [r for r in map(json.loads, f) if "val_psnr" in r]
    best = max(validated, key=lambda r: r["val_psnr"])["step"]
    with checkpoints.checkpoint_manager(workdir, read_only=True) as manager:
        saved = manager.restore(best)
    jax.tree.map(np.testing.assert_array_equal, variables["params"], saved["ema_params"])
    assert json.load(open(os.path.join(workdir, "config.json")))["num_train_steps"] == 60
    assert "num_train_steps" not in checkpoints.read_model_json(workdir)  # the config's is a ceiling, not a fact


def test_a_workdir_exports_its_best_checkpoint_not_its_latest(tmp_path):
    """'ema': the EMA parameters of the step with the highest validation PSNR (the middle one
    here); 'latest_ema': the latest step's EMA parameters; 'trained': its trained parameters."""
    import orbax.checkpoint as ocp

    with checkpoints.checkpoint_manager(str(tmp_path), keep=3) as manager:
        for step, val_psnr in ((10, 20.0), (20, 30.0), (30, 25.0)):
            tree = {"params": {"w": np.full(3, step, np.float32)}, "ema_params": {"w": np.full(3, -step, np.float32)}}
            manager.save(step, args=ocp.args.PyTreeSave(tree), metrics={"val_psnr": val_psnr})
        manager.wait_until_finished()
    target = {"params": {"w": np.zeros(3, np.float32)}}
    assert checkpoints.load_workdir_variables(str(tmp_path), target)["params"]["w"].tolist() == [-20] * 3
    assert checkpoints.load_workdir_variables(str(tmp_path), target, "latest_ema")["params"]["w"].tolist() == [-30] * 3
    assert checkpoints.load_workdir_variables(str(tmp_path), target, "trained")["params"]["w"].tolist() == [30] * 3


def test_init_from_fine_tunes_a_trained_model(trained, tmp_path):
    """Training starts from the source's exported (best EMA) parameters, not the identity."""
    config, source = trained
    _, expected = checkpoints.load_model(source)
    tuned = tiny_config(init_from=source, num_train_steps=1, warmup_steps=0, learning_rate=0.0, val_data="")
    model = train_state.make_model(tuned)
    jax.tree.map(np.testing.assert_array_equal, train_lib.initial_params(tuned, model), expected["params"])
    train_lib.train_and_evaluate(tuned, str(tmp_path))  # a zero learning rate keeps them (EMA: to rounding)
    _, got = checkpoints.load_model(str(tmp_path))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9), got["params"], expected["params"])
    assert json.load(open(tmp_path / "model.json"))["init_from"] == source


def test_export_writes_a_model_folder_once(trained, tmp_path, capsys):
    from d2ljax.__main__ import main
    _, workdir = trained
    out = str(tmp_path / "model")
    assert main(["export", workdir, out, "--set", 'qf=[10]', "--set", 'results={"LIVE1": 30.0}']) == 0
    (_, exported), (_, expected) = checkpoints.load_model(out), checkpoints.load_model(workdir)
    jax.tree.map(np.testing.assert_array_equal, exported["params"], expected["params"])
    metadata = checkpoints.read_model_json(out)
    assert (metadata["qf"], metadata["results"], metadata["num_train_steps"]) == ([10], {"LIVE1": 30.0}, 60)
    assert main(["export", workdir, str(tmp_path / "trained"), "--weights", "trained"]) == 0
    with checkpoints.checkpoint_manager(workdir, read_only=True) as manager:
        latest = manager.restore(manager.latest_step())
    jax.tree.map(np.testing.assert_array_equal, checkpoints.load_model(str(tmp_path / "trained"))[1]["params"],
                 latest["params"])
    assert main(["export", workdir, out]) == 2 and "exists" in capsys.readouterr().err
    assert main(["export", workdir, str(tmp_path / "other"), "--set", "qf"]) == 2


def live1_report(folder, method: str, psnr: float):
    """An evaluate.py report (path, rows) of LIVE1 colour at QF 10: the JPEG row and `method`'s."""
    rows = [{"dataset": "LIVE1", "mode": "color", "qf": 10, "method": m, "psnr": p, "ssim": 0.5, "psnrb": p - 1,
             "n_images": 29} for m, p in (("jpeg", 25.6934), (method, psnr))]
    report = folder / "live1.json"
    report.write_text(json.dumps({"results": rows}))
    return report, rows


def test_export_records_the_results_of_evaluate_reports(trained, tmp_path, capsys):
    from d2ljax.__main__ import main
    _, workdir = trained
    report, rows = live1_report(tmp_path, "run", 26.0416)
    out = str(tmp_path / "model")
    assert main(["export", workdir, out, "--results", str(report)]) == 0
    metadata = checkpoints.read_model_json(out)
    assert metadata["results"] == {"LIVE1": {"10": {"psnr": 26.042, "ssim": 0.5, "psnrb": 25.042,
                                                    "jpeg_psnr": 25.693, "n_images": 29}}}
    assert metadata["results_protocol"].startswith("evaluate.py")
    report.write_text(json.dumps({"results": rows + [{**rows[1], "method": "other"}]}))
    assert main(["export", workdir, str(tmp_path / "mixed"), "--results", str(report)]) == 2
    assert "2 methods besides JPEG (other, run)" in capsys.readouterr().err
    assert not (tmp_path / "mixed").exists()


def test_export_records_the_steps_a_budget_run_trained_not_its_ceiling():
    """A budget run's config.num_train_steps is a ceiling (often 10**9); model.json's
    num_train_steps is what the run trained."""
    run = {"steps": 1234, "cpu_hours": 0.5}
    exported = checkpoints.with_history({"num_train_steps": 10**9, "mode": "gray"}, run, {"total_train_steps": 100})
    assert (exported["num_train_steps"], exported["total_train_steps"]) == (1234, 1334)


def test_export_chains_the_training_history(trained, tmp_path):
    """model.json's "runs": the model a run started from, then the run; totals over them."""
    from d2ljax.__main__ import main
    config, workdir = trained
    first = str(tmp_path / "first")
    assert main(["export", workdir, first]) == 0
    history = checkpoints.read_model_json(first)
    (run,) = history["runs"]
    assert (run["steps"], run["init_from"], run["recipe"]["learning_rate"]) == (60, "", config.learning_rate)
    assert [(s["start_step"], s["end_step"]) for s in run["sessions"]] == [(0, 60)]
    assert 0 < run["cpu_hours"] and 0 < run["wall_hours"] and history["total_train_steps"] == 60
    assert run["device"] == "cpu" and "total_accelerator_hours" not in history
    logged = {r["step"]: r["val_psnr"] for r in map(json.loads, open(os.path.join(workdir, "metrics.jsonl")))
              if "val_psnr" in r}
    assert [step for step, _ in run["validation_psnr"]] == [20, 40, 60] == sorted(logged)
    assert [psnr for _, psnr in run["validation_psnr"]] == pytest.approx([logged[s] for s in (20, 40, 60)], abs=5e-4)
    assert run["recipe"]["val_qf"] == list(config.val_qf)
    tuned = str(tmp_path / "tuned")
    train_lib.train_and_evaluate(tiny_config(init_from=first, num_train_steps=4, learning_rate=1e-3), tuned)
    second = str(tmp_path / "second")
    assert main(["export", tuned, second]) == 0
    chained = checkpoints.read_model_json(second)
    assert chained["runs"][0] == run and chained["runs"][1]["init_from"] == first
    assert (chained["runs"][1]["steps"], chained["total_train_steps"]) == (4, 64)
    assert chained["total_cpu_hours"] == pytest.approx(run["cpu_hours"] + chained["runs"][1]["cpu_hours"], abs=1e-3)


def test_export_copies_a_model_folder_with_new_entries(trained, tmp_path, capsys):
    """A model folder trained elsewhere (its workdir on a lent GPU machine) is exported again to
    add results; an accelerator's run counts in accelerator-hours, not CPU-hours."""
    from d2ljax.__main__ import main
    _, workdir = trained
    source = str(tmp_path / "from_gpu")
    assert main(["export", workdir, source]) == 0
    metadata = checkpoints.read_model_json(source)
    (cpu_run,) = metadata["runs"]
    gpu_run = {**cpu_run, "device": "NVIDIA H100 80GB HBM3", "steps": 500, "wall_hours": 0.11, "cpu_hours": 0.17}
    with open(os.path.join(source, "model.json"), "w") as f:
        json.dump({**metadata, "runs": [cpu_run, gpu_run]}, f)
    report, _ = live1_report(tmp_path, "model", 26.5)
    out = str(tmp_path / "shipped")
    assert main(["export", source, out, "--results", str(report)]) == 0
    exported = checkpoints.read_model_json(out)
    assert exported["runs"] == [cpu_run, gpu_run] and exported["results"]["LIVE1"]["10"]["psnr"] == 26.5
    assert (exported["total_train_steps"], exported["total_accelerator_hours"]) == (560, 0.11)
    assert exported["total_cpu_hours"] == cpu_run["cpu_hours"]
    (_, copied), (_, original) = checkpoints.load_model(out), checkpoints.load_model(source)
    assert jax.tree.all(jax.tree.map(np.array_equal, copied, original))
    assert main(["export", source, str(tmp_path / "x"), "--weights", "trained"]) == 2
    assert "is a model folder, which holds one set of parameters" in capsys.readouterr().err
    assert main(["export", source, source, "--overwrite"]) == 2
    assert "is SOURCE" in capsys.readouterr().err
    assert checkpoints.read_model_json(source)["runs"] == [cpu_run, gpu_run]


def test_init_from_another_architecture_is_a_clear_error(trained):
    config = tiny_config(init_from=trained[1], wf=8)
    with pytest.raises(ValueError, match=r"init_from=.* holds D2LNet\(in_chn=3, wf=4, .*builds D2LNet\(in_chn=3, wf=8"):
        train_lib.initial_params(config, train_state.make_model(config))


class StopAt:
    """Wraps train_batches: batch `index` (counted over the run) raises or is made NaN."""

    def __init__(self, index: int, nan: bool = False):
        self.index, self.nan, self.real = index, nan, train_lib.train_batches

    def __call__(self, config, start_step):
        for i, (degraded, clean) in enumerate(self.real(config, start_step), start_step + 1):
            if i == self.index and not self.nan:
                raise KeyboardInterrupt("simulated interruption")
            yield (degraded * np.nan if i == self.index else degraded), clean


def test_resume_continues_the_same_run(trained, tmp_path, monkeypatch, capsys):
    """Interrupted at step 25, the rerun resumes from the step-20 checkpoint and ends where the
    uninterrupted run did: the same losses, validation PSNRs and final parameters and EMA."""
    config, reference = trained
    with monkeypatch.context() as patch:
        patch.setattr(train_lib, "train_batches", StopAt(25))
        with pytest.raises(KeyboardInterrupt):
            train_lib.train_and_evaluate(config, str(tmp_path))
    capsys.readouterr()
    train_lib.train_and_evaluate(config, str(tmp_path))
    assert "resuming at step 20" in capsys.readouterr().err
    expected, resumed = read_losses(reference), read_losses(tmp_path)
    steps = range(21, 61)
    np.testing.assert_allclose([resumed[s] for s in steps], [expected[s] for s in steps], rtol=1e-6)
    with open(tmp_path / "metrics.jsonl") as f:  # steps 21-24, logged before the interruption, once
        records = list(map(json.loads, f))
    assert [r["step"] for r in records] == list(range(1, 61))
    with open(os.path.join(reference, "metrics.jsonl")) as f:
        want = {r["step"]: r["val_psnr"] for r in map(json.loads, f) if "val_psnr" in r}
    assert want and [r["step"] for r in records if "val_psnr" in r] == list(want)
    np.testing.assert_allclose([r["val_psnr"] for r in records if "val_psnr" in r], list(want.values()), rtol=1e-6)
    with checkpoints.checkpoint_manager(reference, read_only=True) as a, \
            checkpoints.checkpoint_manager(str(tmp_path), read_only=True) as b:
        want, got = a.restore(60), b.restore(60)
    for key in ("params", "ema_params"):
        jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-7), got[key], want[key])


def test_nan_stops_training_and_keeps_the_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(train_lib, "train_batches", StopAt(11, nan=True))
    with pytest.raises(FloatingPointError, match="step 11: loss nan.*checkpoint \\(step 8\\).*intact"):
        train_lib.train_and_evaluate(tiny_config(checkpoint_every_steps=8), str(tmp_path))
    with checkpoints.checkpoint_manager(str(tmp_path), read_only=True) as manager:
        assert manager.all_steps() == [8]
        assert all(np.isfinite(x).all() for x in jax.tree.leaves(manager.restore(8)["params"]))


# ----------------------------------------------------------------------------- sharding
STEP_SCRIPT = """
import sys
import jax
import numpy as np
sys.path.insert(0, {root!r})
from tests.test_train import tiny_config
from d2ljax import schedules, train_state
from d2ljax.stop_signals import StopSignals

process_id, num_processes, port, devices, out = sys.argv[1:]
if int(num_processes) > 1:
    jax.distributed.initialize(f"127.0.0.1:{{port}}", int(num_processes), int(process_id))
config = tiny_config(batch_size=8)
model = train_state.make_model(config)
lr_fn = schedules.create_learning_rate_fn(config)
tx = train_state.create_optimizer(config)
mesh = train_state.make_mesh(jax.devices()[:int(devices)])
state = train_state.create_train_state(config, model, tx, mesh)
step = train_state.make_train_step(config, model, tx, lr_fn, mesh)
rng = np.random.default_rng(0)
batch = [rng.uniform(size=(8, 16, 16, 3)).astype(np.float32) for _ in range(2)]
rows = slice(int(process_id) * 8 // int(num_processes), (int(process_id) + 1) * 8 // int(num_processes))
losses = []
for _ in range(2):
    sharded = train_state.global_batch([x[rows] for x in batch], mesh)
    assert mesh.devices.size == int(devices) and len(sharded[0].sharding.device_set) == int(devices)
    assert {{s.data.shape[0] for s in sharded[0].addressable_shards}} == {{8 // int(devices)}}  # split, not copied
    state, metrics = step(state, sharded, schedules.schedule_span(0, config.num_train_steps))
    losses.append(float(metrics["loss"]))
signals = StopSignals()  # the last process alone was signalled: every process stops for it
signals.signum = 15 if int(process_id) == int(num_processes) - 1 else 0
assert signals.agreed() == 15
if jax.process_index() == 0:
    flat = {{jax.tree_util.keystr(k): np.asarray(v) for k, v in jax.tree_util.tree_leaves_with_path(state.params)}}
    np.savez(out, losses=np.array(losses), **flat)
"""


def run_step_script(tmp_path, host_devices: int, devices: int, num_processes: int = 1):
    """Two train steps on a fixed global batch, then a check that all processes agree to stop
    for a signal one of them received; returns the .npz of losses and parameters."""
    script = tmp_path / "step.py"
    script.write_text(STEP_SCRIPT.format(root=str(ROOT)))
    out = tmp_path / f"{num_processes}x{devices}.npz"
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={host_devices}",
           "JAX_PLATFORMS": "cpu", "JAX_DISABLE_MOST_OPTIMIZATIONS": "1"}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [subprocess.Popen([sys.executable, str(script), str(i), str(num_processes), str(port),
                               str(devices), str(out)], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(num_processes)]
    logs = [p.communicate(timeout=600)[0] for p in procs]
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-3000:]
    return np.load(out)


def assert_same_training(a, b):
    np.testing.assert_allclose(a["losses"], b["losses"], rtol=1e-6)
    for key in a.files:
        np.testing.assert_allclose(a[key], b[key], atol=1e-5, err_msg=key)


def test_eight_devices_equal_one(tmp_path):
    assert_same_training(run_step_script(tmp_path, 8, 8), run_step_script(tmp_path, 8, 1))


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path):
    assert_same_training(run_step_script(tmp_path, 2, 4, num_processes=2), run_step_script(tmp_path, 4, 4))


def test_time_budget_stops_with_a_checkpoint_and_a_rerun_continues(tmp_path, capsys):
    config = tiny_config(num_train_steps=10**6, checkpoint_every_steps=10**5, time_budget_s=1.0,
                         schedule="budget", warmup_steps=0)
    first = train_lib.train_and_evaluate(config, str(tmp_path))
    assert first["step"] >= 1 and "val_psnr" in first
    assert f"time budget of 1 s reached after step {first['step']}" in capsys.readouterr().err
    with checkpoints.checkpoint_manager(str(tmp_path), read_only=True) as manager:
        assert manager.latest_step() == first["step"]
    second = train_lib.train_and_evaluate(config, str(tmp_path))
    assert second["step"] > first["step"] and f"resuming at step {first['step']}" in capsys.readouterr().err
    assert list(read_losses(tmp_path)) == list(range(1, second["step"] + 1))  # continued, not restarted


def test_train_evaluate_and_restore_need_no_tensorflow(tmp_path):
    """train.py (grain), evaluate.py and d2ljax's API where `import tensorflow` fails, in this
    process and in grain's workers: the losses equal tf.data's, step for step."""
    (tmp_path / "fake" / "tensorflow").mkdir(parents=True)
    (tmp_path / "fake" / "tensorflow" / "__init__.py").write_text("raise ImportError('no TensorFlow here')\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path / 'fake'}{os.pathsep}{ROOT}", "D2LJAX_HUGE_PAGES": "0",
           "JAX_DISABLE_MOST_OPTIMIZATIONS": "1"}
    overrides = ["--config.wf=4", "--config.depth=2", "--config.patch_size=16", "--config.num_train_steps=4",
                 "--config.log_every_steps=1", "--config.val_crop=64", "--config.data_workers=1"]
    workdir = tmp_path / "grain"
    run = functools.partial(subprocess.run, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    out = run([sys.executable, "train.py", "--config=configs/quickstart.py", f"--workdir={workdir}",
               "--config.input_pipeline=grain", *overrides])
    assert out.returncode == 0, out.stderr[-3000:]
    reference = tiny_config(num_train_steps=4, log_every_steps=1, ema_decay=0.0, learning_rate=1e-3,
                            warmup_steps=50, checkpoint_every_steps=100, input_pipeline="tf.data")
    train_lib.train_and_evaluate(reference, str(tmp_path / "tf.data"))
    assert read_losses(workdir) == read_losses(tmp_path / "tf.data")
    assert list((workdir / "tensorboard").glob("events.out.tfevents.*"))
    out = run([sys.executable, "evaluate.py", f"--dataset={SAMPLE_PHOTOS_DIR}", "--mode=color", "--qf=10",
               f"--checkpoint={workdir}", f"--output={tmp_path / 'eval.json'}"])
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.load(open(tmp_path / "eval.json"))["results"]
    code = ("import numpy as np, d2ljax, sys\n"
            "out = d2ljax.restore(np.full((20, 30, 3), 128, np.uint8), model=sys.argv[1])\n"
            "assert out.shape == (20, 30, 3) and 'tensorflow' not in sys.modules\n")
    out = run([sys.executable, "-c", code, str(workdir)])
    assert out.returncode == 0, out.stderr[-3000:]
