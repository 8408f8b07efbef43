"""Training D2LNet: config checks, the sharded train step, checkpoints, validation, the loop.

`train_and_evaluate(config, workdir)` is the whole job (`train.py` is its command line). The
batch is split over all devices of all processes (one `data` mesh axis) and the parameters
are replicated; the step is one jitted, donated, pure function. The workdir holds
`config.json`, `model.json` (so `d2ljax.checkpoints.load_model(workdir)` works),
`checkpoints/` (orbax: the latest `keep_checkpoints` and the best by validation PSNR),
`metrics.jsonl` and TensorBoard event files. Rerunning on a workdir resumes it, on the same
batches an uninterrupted run would have seen.
"""
from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import sys
import time
from typing import Any, Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax import struct
from jax.sharding import NamedSharding, PartitionSpec as P
from tqdm import tqdm

from d2ljax import checkpoints, console, losses, metrics, samples
from d2ljax.checkpoints import BEST_METRIC, checkpoint_manager
from d2ljax.imageio import MODES, list_image_files, side_by_side
from d2ljax.inference import apply_image
from d2ljax.jpeg import compress
from d2ljax.model import D2LNet, forward_flops
from d2ljax.testsets import BenchmarkSet, iter_images

SCHEDULES = ("cosine", "constant", "budget")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
# The last convolution of each image head: zero kernel and bias make out_1 == out_2 == input.
IDENTITY_INIT_CONVS = (("sam12", "conv2"), ("last", "conv_last"), ("last2", "conv_last"))
VAL_PICTURE_SIZE = 192  # side of the validation crops shown in TensorBoard


@struct.dataclass
class TrainState:
    """Everything a checkpoint holds. ema_params is None when config.ema_decay == 0."""
    step: jnp.ndarray
    params: Any
    opt_state: Any
    ema_params: Any = None


# ----------------------------------------------------------------------------- config
class ConfigError(ValueError):
    """A bad config value; the message is one line naming the field."""


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _check_qfs(name: str, qfs) -> None:
    _require(len(qfs) > 0 and all(isinstance(q, int) and 1 <= q <= 100 for q in qfs),
             f"config.{name}={qfs!r}: JPEG quality factors must be integers in [1, 100]")


def check_config(config: ml_collections.ConfigDict, device_count: int | None = None,
                 process_count: int | None = None) -> None:
    """Raises a one-line ValueError naming the first bad field."""
    device_count = device_count or jax.device_count()
    process_count = process_count or jax.process_count()
    _require(config.mode in MODES, f"config.mode={config.mode!r}: must be one of {tuple(MODES)}")
    _check_qfs("qf", tuple(config.qf))
    _check_qfs("val_qf", tuple(config.val_qf))
    if config.qf_range is not None:
        _require(len(config.qf_range) == 2 and config.qf_range[0] <= config.qf_range[1],
                 f"config.qf_range={config.qf_range!r}: must be (lo, hi) with lo <= hi")
        _check_qfs("qf_range", tuple(config.qf_range))
    _require(config.batch_size >= 1 and config.batch_size % device_count == 0
             and config.batch_size % process_count == 0,
             f"config.batch_size={config.batch_size} (global) must be a positive multiple of the "
             f"{device_count} devices over {process_count} process(es)")
    multiple = 2 ** (config.depth - 1)
    _require(config.depth >= 1 and config.patch_size >= multiple and config.patch_size % multiple == 0,
             f"config.patch_size={config.patch_size} must be a multiple of 2**(depth-1) = {multiple}")
    _require(config.num_train_steps >= 1, f"config.num_train_steps={config.num_train_steps} must be >= 1")
    _require(config.warmup_steps >= 0, f"config.warmup_steps={config.warmup_steps} must be >= 0")
    _require(config.schedule in SCHEDULES, f"config.schedule={config.schedule!r}: must be one of {SCHEDULES}")
    _require(config.time_budget_s >= 0, f"config.time_budget_s={config.time_budget_s} must be >= 0 (0: off)")
    _require(config.schedule != "budget" or config.time_budget_s > 0,
             "config.schedule='budget' spans the time budget: set config.time_budget_s > 0")
    _require(0 < config.budget_decay_fraction <= 1,
             f"config.budget_decay_fraction={config.budget_decay_fraction} must lie in (0, 1]")
    _require(config.input_pipeline in samples.PIPELINES,
             f"config.input_pipeline={config.input_pipeline!r}: must be one of {samples.PIPELINES}")
    _require(config.data_workers >= -1, f"config.data_workers={config.data_workers} must be >= 0 (-1: automatic)")
    _require(config.val_every_steps >= 0, f"config.val_every_steps={config.val_every_steps} must be >= 0")
    _require(config.dtype in DTYPES, f"config.dtype={config.dtype!r}: must be one of {tuple(DTYPES)}")
    _require(0 <= config.ema_decay < 1, f"config.ema_decay={config.ema_decay} must lie in [0, 1)")
    for name in ("l1_weight", "amp_weight", "phase_weight", "grad_clip_norm", "learning_rate"):
        _require(config[name] >= 0, f"config.{name}={config[name]} must be >= 0")
    for name in ("log_every_steps", "checkpoint_every_steps", "keep_checkpoints"):
        _require(config[name] >= 1, f"config.{name}={config[name]} must be >= 1")


def make_model(config: ml_collections.ConfigDict, dtype=None) -> D2LNet:
    return D2LNet(in_chn=1 if config.mode == "gray" else 3, wf=config.wf, depth=config.depth,
                  relu_slope=config.relu_slope, dtype=dtype)


# ----------------------------------------------------------------------------- optimiser and state
def create_learning_rate_fn(config: ml_collections.ConfigDict):
    """lr(step, start, end): the learning rate at `step` of a run scheduled over [start, end).

    'cosine': linear warmup from 0 over warmup_steps, then cosine decay to final_lr_fraction
    * learning_rate at num_train_steps; 'constant': the warmup, then flat. Both ignore start and
    end (their run is [0, num_train_steps)). 'budget' (with time_budget_s, see BudgetClock):
    each invocation is one warmup-constant-decay cycle over [start, end), `start` its first
    step and `end` the step its time budget is estimated to end at: warmup from `start`, flat,
    then a cosine decay over the last budget_decay_fraction of the run.
    """
    lr, warmup, final = config.learning_rate, config.warmup_steps, config.final_lr_fraction
    if config.schedule == "cosine":
        schedule = optax.warmup_cosine_decay_schedule(0.0, lr, warmup, config.num_train_steps,
                                                      end_value=lr * final)
    elif config.schedule == "constant":
        schedule = optax.join_schedules([optax.linear_schedule(0.0, lr, max(warmup, 1)),
                                         optax.constant_schedule(lr)], [warmup])
    else:
        return functools.partial(budget_learning_rate, peak=lr, warmup=warmup, final_fraction=final,
                                 decay_fraction=config.budget_decay_fraction)
    return lambda step, start, end: schedule(step)


def budget_learning_rate(step, start, end, *, peak: float, warmup: int, final_fraction: float,
                         decay_fraction: float):
    """The 'budget' schedule (create_learning_rate_fn): warmup from `start`, flat, cosine decay
    over the last `decay_fraction` of [start, end) to final_fraction * peak, then flat."""
    step, start, end = (jnp.asarray(v, jnp.float32) for v in (step, start, end))
    warm = jnp.clip((step - start) / max(warmup, 1), 0.0, 1.0) if warmup else 1.0
    decay_start = end - decay_fraction * (end - start)
    progress = jnp.clip((step - decay_start) / jnp.maximum(end - decay_start, 1.0), 0.0, 1.0)
    return peak * warm * (final_fraction + (1 - final_fraction) * 0.5 * (1 + jnp.cos(jnp.pi * progress)))


def create_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """Adam's moments (after optional clipping) without the learning rate, which train_step
    applies: the 'budget' schedule's end is known only while the run goes."""
    clip = [optax.clip_by_global_norm(config.grad_clip_norm)] if config.grad_clip_norm > 0 else []
    return optax.chain(*clip, optax.scale_by_adam(b1=config.b1, b2=config.b2, eps=config.eps))


def identity_init(params):
    """Zeroes the last conv of each image head so the fresh network returns its input.

    With PyTorch's default initialisation the heads add a random image and training starts far
    below the JPEG input (spec/training_notes.md); from the identity every step improves on it.
    """
    def zero_head(path, x):
        keys = tuple(getattr(k, "key", None) for k in path[:2])
        return jnp.zeros_like(x) if keys in IDENTITY_INIT_CONVS else x
    return jax.tree_util.tree_map_with_path(zero_head, params)


def make_mesh(devices=None) -> jax.sharding.Mesh:
    """A 1-D `data` mesh over the given devices (default: all devices of all processes).

    Auto axes: XLA propagates the batch sharding through the model, so model code needs no
    sharding annotations (Explicit axes would reject e.g. reshapes of the sharded batch).
    """
    devices = jax.devices() if devices is None else devices
    return jax.make_mesh((len(devices),), ("data",), axis_types=(jax.sharding.AxisType.Auto,),
                         devices=devices)


def init_key(seed: int) -> jax.Array:
    """The parameter-initialisation key. XLA:CPU takes minutes to compile threefry draws for
    D2LNet's ~200 parameter arrays and seconds for the RngBitGenerator ('unsafe_rbg')."""
    return jax.random.key(seed, impl="unsafe_rbg")


def initial_params(config: ml_collections.ConfigDict, model: D2LNet):
    """The parameters of config.init_from (a pretrained name, model folder or training
    workdir) to fine-tune, or None to initialise afresh. Its architecture must be `model`'s."""
    if not config.init_from:
        return None
    from d2ljax import pretrained
    source, variables = pretrained.load_pretrained(config.init_from)
    have, want = checkpoints.model_config(source), checkpoints.model_config(model)
    _require(have == want, f"config.init_from={config.init_from!r} holds D2LNet({_arch(have)}) but the config "
                           f"builds D2LNet({_arch(want)}): set mode, wf and depth to match it")
    return variables["params"]


def _arch(model_config: dict) -> str:
    return ", ".join(f"{k}={model_config[k]}" for k in checkpoints.ARCH_FIELDS)


def create_train_state(config: ml_collections.ConfigDict, model: D2LNet, tx: optax.GradientTransformation,
                       mesh: jax.sharding.Mesh, params=None) -> TrainState:
    """Fresh state, replicated over the mesh: the given parameters, else new ones from
    config.seed (identity heads when config.identity_init); Adam moments; EMA parameters when
    config.ema_decay > 0."""
    def init(params):
        if params is None:
            params = model.init(init_key(config.seed), model.init_input())["params"]
            params = identity_init(params) if config.identity_init else params
        return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                          ema_params=params if config.ema_decay > 0 else None)
    return jax.jit(init, out_shardings=NamedSharding(mesh, P()))(params)


# ----------------------------------------------------------------------------- the step
def ema_decay_at(step, ema_decay: float):
    """The EMA's decay at `step`: ema_decay, capped at (1 + step) / (10 + step) early on so the
    average soon forgets the initial parameters (with 0.999 from step 0, 41% of the average
    after 900 steps would still be the initialisation)."""
    return jnp.minimum(ema_decay, (1.0 + step) / (10.0 + step))


def train_step(state: TrainState, batch, span, *, model: D2LNet, tx: optax.GradientTransformation,
               lr_fn, loss_weights: dict, ema_decay: float):
    """One Adam step on the dual-domain loss of a (degraded, clean) batch: (state, metrics).

    span: int32 (start, end) of the learning-rate schedule (create_learning_rate_fn).
    """
    degraded, clean = batch

    def loss_fn(params):
        out_1, _, _, out_2 = model.apply({"params": params}, degraded)
        return losses.dual_domain_loss(out_1, out_2, clean, **loss_weights)

    (loss, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    lr = lr_fn(state.step, span[0], span[1])
    updates = jax.tree.map(lambda u: jnp.asarray(-lr, u.dtype) * u, updates)
    params = optax.apply_updates(state.params, updates)
    ema_params = (None if state.ema_params is None
                  else optax.incremental_update(params, state.ema_params, 1.0 - ema_decay_at(state.step, ema_decay)))
    step_metrics = {"loss": loss, **terms, "grad_norm": optax.global_norm(grads), "lr": lr}
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                         ema_params=ema_params), step_metrics


def make_train_step(config: ml_collections.ConfigDict, model: D2LNet, tx, lr_fn, mesh):
    """train_step jitted over the mesh: batch split on `data`, state replicated and donated.

    The result is called as step(state, batch, schedule_span(start, end)).
    """
    replicated = NamedSharding(mesh, P())
    step = functools.partial(
        train_step, model=model.clone(dtype=DTYPES[config.dtype]), tx=tx, lr_fn=lr_fn,
        loss_weights={k: config[k] for k in ("l1_weight", "amp_weight", "phase_weight")},
        ema_decay=config.ema_decay)
    return jax.jit(step, in_shardings=(replicated, NamedSharding(mesh, P("data")), replicated),
                   out_shardings=replicated, donate_argnums=0)


def schedule_span(start: int, end: int) -> np.ndarray:
    """The `span` argument of the train step."""
    return np.array([start, end], np.int32)


def global_batch(batch, mesh: jax.sharding.Mesh):
    """This process's rows of the batch -> global arrays split over the mesh's `data` axis."""
    sharding = NamedSharding(mesh, P("data"))
    return tuple(jax.make_array_from_process_local_data(sharding, x) for x in batch)


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


# ----------------------------------------------------------------------------- validation
def load_validation(config: ml_collections.ConfigDict) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(qf, ground truth, JPEG) uint8 triples of config.val_data, centre-cropped to val_crop."""
    files = tuple(list_image_files(config.val_data))
    bench = BenchmarkSet(name="validation", path=config.val_data, files=files, known=None)
    pairs = []
    for _, gt in iter_images(bench, config.mode):
        gt = center_crop(gt, config.val_crop)
        pairs += [(qf, gt, compress(gt, qf)) for qf in config.val_qf]
    if not pairs:
        raise ValueError(f"config.val_data={config.val_data!r}: no readable image")
    return pairs


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The central size x size crop (0: the whole image), its corner on the 8x8 JPEG grid."""
    if not size:
        return image
    top, left = (max(d - size, 0) // 2 // 8 * 8 for d in image.shape[:2])
    return image[top:top + size, left:left + size]


def validate(model: D2LNet, params, pairs) -> tuple[dict[str, float], np.ndarray]:
    """Mean PSNR (protocol rounding) of the restored and of the JPEG images and the gain, and
    a picture for TensorBoard: the first image's JPEG, restored and original side by side."""
    restored = [apply_image(model, {"params": params}, jpeg) for _, _, jpeg in pairs]
    psnr = np.mean([metrics.psnr(gt, out) for (_, gt, _), out in zip(pairs, restored)])
    jpeg = np.mean([metrics.psnr(gt, jpeg) for _, gt, jpeg in pairs])
    _, gt, first_jpeg = pairs[0]
    picture = side_by_side([first_jpeg, restored[0], gt], size=VAL_PICTURE_SIZE)
    return {BEST_METRIC: float(psnr), "val_psnr_jpeg": float(jpeg), "val_gain": float(psnr - jpeg)}, picture


def export_params(state: TrainState):
    """The parameters to evaluate and export: the EMA when kept, else the trained ones."""
    return state.params if state.ema_params is None else state.ema_params


def trained_qualities(config: ml_collections.ConfigDict):
    """model.json's "qf" (d2ljax.pretrained): the QF list, or 'LO-HI' when QFs are also drawn
    from config.qf_range."""
    if config.qf_range is None or config.qf_range_prob == 0:
        return list(config.qf)
    qfs = [*config.qf_range, *(config.qf if config.qf_range_prob < 1 else ())]
    return f"{min(qfs)}-{max(qfs)}"


def write_run_files(workdir: str, config: ml_collections.ConfigDict, model: D2LNet) -> None:
    """config.json and model.json (architecture and training facts) in the workdir."""
    if jax.process_index() != 0:
        return
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "config.json"), "w") as f:
        f.write(config.to_json_best_effort(indent=2))
    facts = {"mode": config.mode, "qf": trained_qualities(config), "trained_by": "d2ljax.train_lib",
             "train_data": config.train_data, "num_train_steps": config.num_train_steps,
             **({"init_from": config.init_from} if config.init_from else {})}
    with open(os.path.join(workdir, checkpoints.MODEL_JSON), "w") as f:
        json.dump({**checkpoints.model_config(model), **facts}, f, indent=2)


# ----------------------------------------------------------------------------- logging
class MetricWriter:
    """Scalars to WORKDIR/metrics.jsonl (one JSON object per line, with `step`) and scalars and
    pictures to TensorBoard event files in WORKDIR/tensorboard (the tensorboard package's own
    writer: no TensorFlow needed); written by process 0 only.

    `start_step`: the step the run resumes from. Rows of later steps, logged before an
    interruption and about to be logged again, are dropped from metrics.jsonl, and TensorBoard
    is told to drop its own (a SessionLog START at that step).
    """

    def __init__(self, workdir: str, start_step: int = 0):
        self._enabled = jax.process_index() == 0
        if not self._enabled:
            return
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
        self._event, self._summary = event_pb2, summary_pb2
        path = os.path.join(workdir, "metrics.jsonl")
        keep_rows_until(path, start_step)
        self._jsonl = open(path, "a")
        self._events = EventFileWriter(os.path.join(workdir, "tensorboard"))
        self._events.add_event(event_pb2.Event(
            wall_time=time.time(), step=start_step,
            session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START)))

    def write(self, step: int, scalars: dict[str, float], pictures: dict[str, np.ndarray] | None = None) -> None:
        if not self._enabled:
            return
        self._jsonl.write(json.dumps({"step": step, **scalars}) + "\n")
        self._jsonl.flush()
        Summary = self._summary.Summary
        values = [Summary.Value(tag=k, simple_value=v) for k, v in scalars.items()]
        values += [Summary.Value(tag=k, image=png_summary(Summary, v)) for k, v in (pictures or {}).items()]
        self._events.add_event(self._event.Event(wall_time=time.time(), step=step, summary=Summary(value=values)))
        self._events.flush()

    def close(self) -> None:
        if self._enabled:
            self._jsonl.close()
            self._events.close()


def keep_rows_until(path: str, step: int) -> None:
    """Drops the rows of metrics.jsonl logged after `step` (atomically: a temporary file, then
    a rename)."""
    if not os.path.exists(path):
        return
    with open(path) as f:
        lines = f.readlines()
    kept = [line for line in lines if line.strip() and json.loads(line)["step"] <= step]
    if len(kept) != len(lines):
        with open(path + ".partial", "w") as f:
            f.writelines(kept)
        os.replace(path + ".partial", path)


def png_summary(Summary, image: np.ndarray):
    """A TensorBoard image summary of uint8 HxW or HxWxC."""
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(image.reshape(image.shape[:2]) if image.shape[-1:] == (1,) else image).save(buffer, "PNG")
    channels = 1 if image.ndim == 2 else image.shape[-1]
    return Summary.Image(height=image.shape[0], width=image.shape[1], colorspace=channels,
                            encoded_image_string=buffer.getvalue())


def summarise(window: list[dict]) -> dict[str, float]:
    """Means of the step metrics since the last log (lr: its latest value)."""
    host = jax.device_get(window)
    summary = {k: float(np.mean([m[k] for m in host])) for k in host[0]}
    summary["lr"] = float(host[-1]["lr"])
    return summary


def throughput(steps: int, seconds: float, input_waits: list[float], batch_size: int,
               train_flops: float) -> dict[str, float]:
    """Speed over a window of steps: steps and patches per second, achieved TFLOP/s (the
    convolutions' FLOPs, d2ljax.model.forward_flops, 3x for a step) and the mean time a step
    waited for its batch (the input pipeline keeps up when that is near 0)."""
    patches_per_s = steps * batch_size / seconds
    return {"steps_per_s": steps / seconds, "patches_per_s": patches_per_s,
            "tflops_per_s": patches_per_s * train_flops / 1e12, "input_wait_s": float(np.mean(input_waits))}


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


# ----------------------------------------------------------------------------- the job
class BudgetClock:
    """The run's wall-clock budget (config.time_budget_s) and its learning-rate span.

    The 'cosine' and 'constant' schedules span [0, num_train_steps). The 'budget' schedule
    spans [start, end): `end` is re-estimated after every step from the measured step rate
    (the first step, which compiles, left out) and the time left, until the decay begins;
    from then on it is fixed, so the decay is smooth. All processes use process 0's figures.
    """

    def __init__(self, config: ml_collections.ConfigDict, start_step: int, started_at: float):
        self.budget_s, self.started_at = config.time_budget_s, started_at
        self.num_train_steps, self.decay_fraction = config.num_train_steps, config.budget_decay_fraction
        self.budget_schedule = config.schedule == "budget"
        self.start = start_step if self.budget_schedule else 0
        self.end = config.num_train_steps
        self.decaying = False
        self.out_of_time = False
        self._first: tuple[float, int] | None = None

    def span(self) -> np.ndarray:
        return schedule_span(self.start, self.end)

    def tick(self, step: int) -> None:
        """Called after each step: updates out_of_time and the estimated end."""
        now = time.monotonic()
        out_of_time = bool(self.budget_s) and now - self.started_at >= self.budget_s
        end = self.end
        if self._first is None:
            self._first = (now, step)
        elif self.budget_schedule and not self.decaying and now > self._first[0]:
            rate = (step - self._first[1]) / (now - self._first[0])
            left_s = self.budget_s - (now - self.started_at)
            end = min(self.num_train_steps, step + max(int(left_s * rate), 1))
        if jax.process_count() > 1 and self.budget_s:  # every process must stop at the same step
            from jax.experimental import multihost_utils
            out_of_time, end = map(int, multihost_utils.broadcast_one_to_all(np.array([out_of_time, end])))
        self.out_of_time, self.end = bool(out_of_time), end
        self.decaying = self.decaying or step >= self.end - self.decay_fraction * (self.end - self.start)

    def finished(self, step: int) -> bool:
        return step >= self.num_train_steps or self.out_of_time or (self.budget_schedule and step >= self.end)


def prepared_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A checked copy of the config; a warmup as long as the run or longer is cut to a tenth
    of the run (said once), so that a short smoke test needs no other change."""
    check_config(config)
    config = ml_collections.ConfigDict(config.to_dict())
    if config.schedule != "budget" and config.warmup_steps >= config.num_train_steps:
        warmup = config.num_train_steps // 10
        say(f"config.warmup_steps={config.warmup_steps} is not shorter than the run "
            f"(num_train_steps={config.num_train_steps}): warming up over {warmup} steps instead")
        config.warmup_steps = warmup
    return config


def say(message: str) -> None:
    """One line for the user (process 0), above the progress bar."""
    if jax.process_index() == 0:
        tqdm.write(message, file=sys.stderr)


def report(summary: dict[str, float], workdir: str) -> None:
    """The run's result in a line or two."""
    if len(summary) < 2:  # nothing was trained
        return
    line = f"step {summary['step']}: loss {summary['loss']:.4f}"
    if BEST_METRIC in summary:
        line += (f", validation PSNR {summary[BEST_METRIC]:.3f} dB (JPEG {summary['val_psnr_jpeg']:.3f}, "
                 f"{summary['val_gain']:+.3f})")
    say(f"{line}\nmodel: {workdir} (evaluate.py --checkpoint={workdir}; metrics.jsonl, tensorboard/)")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
    """Trains (resuming from the workdir) to config.num_train_steps, or until config.time_budget_s
    runs out; returns the last step and its logged summary."""
    started_at = time.monotonic()
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
    with checkpoint_manager(workdir, config.keep_checkpoints) as manager:
        params = initial_params(config, model) if manager.latest_step() is None else None
        state = checkpoints.resume_state(manager, create_train_state(config, model, tx, mesh, params))
        start = step = int(state.step)
        say(f"{'resuming at step ' + str(start) if start else 'training'} D2LNet(in_chn={model.in_chn}, "
            f"wf={model.wf}, depth={model.depth}) on {config.mode} {config.patch_size}x{config.patch_size} "
            f"patches, batch {config.batch_size}, {config.input_pipeline} -> {workdir}")
        clock = BudgetClock(config, start, started_at)
        step_fn = make_train_step(config, model, tx, lr_fn, mesh)
        batches = train_batches(config, start)
        closing_batches = contextlib.closing(batches) if hasattr(batches, "close") else contextlib.nullcontext()
        window, waits, window_start = [], [], time.perf_counter()
        bar = console.progress_bar(total=config.num_train_steps, initial=start, unit="step",
                                  disable=not config.progress_bar or jax.process_index() != 0)
        with contextlib.closing(MetricWriter(workdir, start)) as writer, closing_batches:
            while not clock.finished(step):
                wait_start = time.perf_counter()
                batch = global_batch(next(batches), mesh)
                waits.append(time.perf_counter() - wait_start)
                state, step_metrics = step_fn(state, batch, clock.span())
                window.append(step_metrics)
                step += 1
                clock.tick(step)
                last = clock.finished(step)
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
                    bar.set_postfix(loss=f"{summary['loss']:.4f}", patches_per_s=f"{summary['patches_per_s']:.1f}",
                                    **({"val_psnr": f"{summary[BEST_METRIC]:.2f}"} if BEST_METRIC in summary else {}))
                    window, waits, window_start = [], [], time.perf_counter()
                if save:
                    manager.save(step, args=ocp.args.PyTreeSave(state),
                                 metrics={BEST_METRIC: summary[BEST_METRIC]} if val_pairs else None)
                if config.schedule == "budget" and bar.total != clock.end:
                    bar.total = clock.end
                bar.update()
        bar.close()
    if step < config.num_train_steps:
        reason = (f"time budget of {config.time_budget_s:g} s reached" if clock.out_of_time else
                  f"the budget schedule's decay ended ({time.monotonic() - started_at:.0f} s of "
                  f"{config.time_budget_s:g})")
        say(f"{reason} after step {step}: checkpoint saved in {workdir}; rerun the same command to continue")
    return {"step": step, **summary}
