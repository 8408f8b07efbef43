"""Training D2LNet: the loop, its input and its workdir.

`train_and_evaluate(config, workdir)` is the whole job (`train.py` is its command line). The
workdir holds `config.json`, `model.json` (so `d2ljax.checkpoints.load_model(workdir)` works),
`checkpoints/` (orbax: the latest `keep_checkpoints` and the best by validation PSNR),
`metrics.jsonl` and TensorBoard event files. Rerunning on a workdir resumes it, on the same
batches an uninterrupted run would have seen. SIGINT or SIGTERM stops the run after the step
under way, with a checkpoint at that step (d2ljax.stop_signals).

The parts: train_config (checks, resolved values), train_state (state, optimiser, sharded
step), schedules (learning rate, time budget), validation, run_log (metrics, progress).
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from typing import Iterator

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from d2ljax import checkpoints
from d2ljax.checkpoints import BEST_METRIC, checkpoint_manager
from d2ljax.model import D2LNet, forward_flops
from d2ljax.run_log import MetricWriter, StepBar, record_session, say, summarise, throughput
from d2ljax.schedules import BudgetClock, clock_reading, create_learning_rate_fn
from d2ljax.stop_signals import StopSignals, TrainingInterrupted
from d2ljax.train_config import prepared_config, require, trained_qualities
from d2ljax.train_state import (create_optimizer, create_train_state, export_params, global_batch, make_mesh,
                                make_model, make_train_step)
from d2ljax.validation import load_validation, validate


def train_batches(config: ml_collections.ConfigDict, start_step: int) -> Iterator:
    """This process's share of each global batch, from batch `start_step` on, from the input
    pipeline config.input_pipeline (both give the same batches; only tf.data needs TensorFlow)."""
    recipe = dict(patch_size=config.patch_size, mode=config.mode, qf=tuple(config.qf),
                  qf_range=tuple(config.qf_range) if config.qf_range is not None else None,
                  qf_range_prob=config.qf_range_prob, misalign=config.misalign, seed=config.seed)
    common = dict(batch_size=config.batch_size // jax.process_count(), start_step=start_step,
                  cache_budget_mb=config.cache_budget_mb, **recipe)
    if config.input_pipeline == "grain":
        from d2ljax import grain_data
        workers = None if config.data_workers < 0 else config.data_workers
        return grain_data.make_train_iterator(config.train_data or None, workers=workers, **common)
    from d2ljax import data  # TensorFlow, imported here: only this pipeline needs it
    return data.make_train_iterator(config.train_data or None, split=config.tfds_split,
                                    image_key=config.tfds_image_key, data_dir=config.tfds_data_dir or None,
                                    **common)


def initial_params(config: ml_collections.ConfigDict, model: D2LNet):
    """The parameters of config.init_from (a pretrained name, model folder or training
    workdir) to fine-tune, or None to initialise afresh. Its architecture must be `model`'s."""
    if not config.init_from:
        return None
    from d2ljax import pretrained
    source, variables = pretrained.load_pretrained(config.init_from)
    have, want = checkpoints.model_config(source), checkpoints.model_config(model)
    require(have == want, f"config.init_from={config.init_from!r} holds D2LNet({_arch(have)}) but the config "
                          f"builds D2LNet({_arch(want)}): set mode, wf and depth to match it")
    return variables["params"]


def _arch(model_config: dict) -> str:
    return ", ".join(f"{k}={model_config[k]}" for k in checkpoints.ARCH_FIELDS)


def write_run_files(workdir: str, config: ml_collections.ConfigDict, model: D2LNet) -> None:
    """config.json and model.json (architecture and training facts) in the workdir."""
    if jax.process_index() != 0:
        return
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "config.json"), "w") as f:
        f.write(config.to_json_best_effort(indent=2))
    facts = {"mode": config.mode, "qf": trained_qualities(config), "trained_by": "d2ljax.train_lib",
             "train_data": config.train_data, **({"init_from": config.init_from} if config.init_from else {})}
    with open(os.path.join(workdir, checkpoints.MODEL_JSON), "w") as f:
        json.dump({**checkpoints.model_config(model), **facts}, f, indent=2)


def check_finite(step: int, summary: dict, manager: ocp.CheckpointManager) -> None:
    """Stops the run when the loss or gradient went non-finite (NaN parameters stay NaN, so a
    check every log suffices); the last good checkpoint is left as it is."""
    if np.isfinite(summary["loss"]) and np.isfinite(summary["grad_norm"]):
        return
    last = manager.latest_step()
    raise FloatingPointError(
        f"step {step}: loss {summary['loss']}, gradient norm {summary['grad_norm']} is not finite; "
        f"training stopped. " + (f"The last good checkpoint (step {last}) in {manager.directory} is intact: "
                                 f"lower learning_rate or set grad_clip_norm and rerun to resume from it."
                                 if last is not None else "No checkpoint was saved yet."))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
    """Trains (resuming from the workdir) to config.num_train_steps, or until config.time_budget_s
    runs out; returns the last step and its logged summary. Raises TrainingInterrupted (a
    KeyboardInterrupt) after saving the step at which SIGINT or SIGTERM stopped it."""
    started_at, cpu_at_start = time.monotonic(), time.process_time()
    budget_started_at = clock_reading(config.budget_clock)
    config = prepared_config(config)
    workdir = os.path.abspath(os.path.expanduser(workdir))
    mesh = make_mesh()
    model = make_model(config)
    lr_fn = create_learning_rate_fn(config)
    tx = create_optimizer(config)
    write_run_files(workdir, config, model)
    val_pairs = load_validation(config) if config.val_data else []
    train_flops = 3 * forward_flops(model, config.patch_size, config.patch_size)
    summary: dict[str, float] = {}
    with StopSignals() as signals, checkpoint_manager(workdir, config.keep_checkpoints) as manager:
        params = initial_params(config, model) if manager.latest_step() is None else None
        state = checkpoints.resume_state(manager, create_train_state(config, model, tx, mesh, params))
        start = step = int(state.step)
        say(f"{'resuming at step ' + str(start) if start else 'training'} D2LNet(in_chn={model.in_chn}, "
            f"wf={model.wf}, depth={model.depth}) on {config.mode} {config.patch_size}x{config.patch_size} "
            f"patches, batch {config.batch_size}, {config.input_pipeline} -> {workdir}")
        clock = BudgetClock(config, start, budget_started_at)
        step_fn = make_train_step(config, model, tx, lr_fn, mesh)
        batches = train_batches(config, start)
        closing_batches = contextlib.closing(batches) if hasattr(batches, "close") else contextlib.nullcontext()
        window, waits, window_start = [], [], time.perf_counter()
        bar = StepBar(config.num_train_steps, start, disable=not config.progress_bar)
        stop_signal = 0
        with contextlib.closing(MetricWriter(workdir, start)) as writer, closing_batches:
            while not clock.finished(step) and not stop_signal:
                wait_start = time.perf_counter()
                batch = global_batch(next(batches), mesh)
                waits.append(time.perf_counter() - wait_start)
                state, step_metrics = step_fn(state, batch, clock.span())
                window.append(step_metrics)
                step += 1
                clock.tick(step)
                stop_signal = signals.agreed()
                last = clock.finished(step) or bool(stop_signal)
                save = step % config.checkpoint_every_steps == 0 or last
                check = bool(val_pairs) and (save or (config.val_every_steps and step % config.val_every_steps == 0))
                if save or check or step % config.log_every_steps == 0:
                    summary = summarise(window)
                    check_finite(step, summary, manager)
                    summary |= throughput(len(window), time.perf_counter() - window_start, waits,
                                          config.batch_size, train_flops)
                    summary["elapsed_s"] = time.monotonic() - started_at
                    pictures = {}
                    if check:
                        val_metrics, pictures["val/jpeg_restored_original"] = validate(model, export_params(state), val_pairs)
                        summary |= val_metrics
                    writer.write(step, summary, pictures)
                    bar.show(summary)
                    window, waits, window_start = [], [], time.perf_counter()
                if save:
                    manager.save(step, args=ocp.args.PyTreeSave(state),
                                 metrics={BEST_METRIC: summary[BEST_METRIC]} if val_pairs else None)
                bar.step_done(clock.end)
        bar.close()
    record_session(workdir, start, step, time.monotonic() - started_at, time.process_time() - cpu_at_start)
    if stop_signal:
        raise TrainingInterrupted(step, stop_signal)
    if step < config.num_train_steps:
        unit = "s" if config.budget_clock == "wall" else "CPU s"
        reason = (f"time budget of {config.time_budget_s:g} {unit} reached" if clock.out_of_time else
                  f"the budget schedule's decay ended ({clock.elapsed_s():.0f} {unit} of "
                  f"{config.time_budget_s:g})")
        say(f"{reason} after step {step}: checkpoint saved in {workdir}; rerun the same command to continue")
    return {"step": step, **summary}
