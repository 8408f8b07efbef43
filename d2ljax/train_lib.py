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
import json
import os
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

from d2ljax import checkpoints, losses, metrics
from d2ljax.checkpoints import BEST_METRIC, checkpoint_manager
from d2ljax.imageio import MODES, list_image_files
from d2ljax.inference import apply_image
from d2ljax.jpeg import compress
from d2ljax.model import D2LNet
from d2ljax.testsets import BenchmarkSet, iter_images

SCHEDULES = ("cosine", "constant")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
# The last convolution of each image head: zero kernel and bias make out_1 == out_2 == input.
IDENTITY_INIT_CONVS = (("sam12", "conv2"), ("last", "conv_last"), ("last2", "conv_last"))


@struct.dataclass
class TrainState:
    """Everything a checkpoint holds. ema_params is None when config.ema_decay == 0."""
    step: jnp.ndarray
    params: Any
    opt_state: Any
    ema_params: Any = None


# ----------------------------------------------------------------------------- config
def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


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
    _require(0 <= config.warmup_steps <= config.num_train_steps,
             f"config.warmup_steps={config.warmup_steps} must lie in [0, num_train_steps]")
    _require(config.schedule in SCHEDULES, f"config.schedule={config.schedule!r}: must be one of {SCHEDULES}")
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
def create_learning_rate_fn(config: ml_collections.ConfigDict) -> optax.Schedule:
    """Linear warmup from 0, then cosine decay to final_lr_fraction * lr, or constant."""
    lr, warmup = config.learning_rate, config.warmup_steps
    if config.schedule == "cosine":
        return optax.warmup_cosine_decay_schedule(0.0, lr, warmup, config.num_train_steps,
                                                  end_value=lr * config.final_lr_fraction)
    return optax.join_schedules([optax.linear_schedule(0.0, lr, max(warmup, 1)),
                                 optax.constant_schedule(lr)], [warmup])


def create_optimizer(config: ml_collections.ConfigDict, lr_fn: optax.Schedule) -> optax.GradientTransformation:
    clip = [optax.clip_by_global_norm(config.grad_clip_norm)] if config.grad_clip_norm > 0 else []
    return optax.chain(*clip, optax.adam(lr_fn, b1=config.b1, b2=config.b2, eps=config.eps))


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


def train_step(state: TrainState, batch, *, model: D2LNet, tx: optax.GradientTransformation,
               lr_fn: optax.Schedule, loss_weights: dict, ema_decay: float):
    """One Adam step on the dual-domain loss of a (degraded, clean) batch: (state, metrics)."""
    degraded, clean = batch

    def loss_fn(params):
        out_1, _, _, out_2 = model.apply({"params": params}, degraded)
        return losses.dual_domain_loss(out_1, out_2, clean, **loss_weights)

    (loss, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    ema_params = (None if state.ema_params is None
                  else optax.incremental_update(params, state.ema_params, 1.0 - ema_decay_at(state.step, ema_decay)))
    step_metrics = {"loss": loss, **terms, "grad_norm": optax.global_norm(grads), "lr": lr_fn(state.step)}
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                         ema_params=ema_params), step_metrics


def make_train_step(config: ml_collections.ConfigDict, model: D2LNet, tx, lr_fn, mesh):
    """train_step jitted over the mesh: batch split on `data`, state replicated and donated."""
    replicated = NamedSharding(mesh, P())
    step = functools.partial(
        train_step, model=model.clone(dtype=DTYPES[config.dtype]), tx=tx, lr_fn=lr_fn,
        loss_weights={k: config[k] for k in ("l1_weight", "amp_weight", "phase_weight")},
        ema_decay=config.ema_decay)
    return jax.jit(step, in_shardings=(replicated, NamedSharding(mesh, P("data"))),
                   out_shardings=replicated, donate_argnums=0)


def global_batch(batch, mesh: jax.sharding.Mesh):
    """This process's rows of the batch -> global arrays split over the mesh's `data` axis."""
    sharding = NamedSharding(mesh, P("data"))
    return tuple(jax.make_array_from_process_local_data(sharding, x) for x in batch)


def train_batches(config: ml_collections.ConfigDict, start_step: int) -> Iterator:
    """This process's share of each global batch, from batch `start_step` on."""
    from d2ljax import data  # TensorFlow, imported here: only the input pipeline needs it
    return data.make_train_iterator(
        config.train_data or None, batch_size=config.batch_size // jax.process_count(),
        patch_size=config.patch_size, mode=config.mode, qf=tuple(config.qf),
        qf_range=tuple(config.qf_range) if config.qf_range is not None else None,
        qf_range_prob=config.qf_range_prob, misalign=config.misalign, seed=config.seed,
        start_step=start_step, cache_budget_mb=config.cache_budget_mb, split=config.tfds_split,
        image_key=config.tfds_image_key, data_dir=config.tfds_data_dir or None)


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


def validate(model: D2LNet, params, pairs) -> dict[str, float]:
    """Mean PSNR (protocol rounding) of the restored and of the JPEG images, and the gain."""
    restored = np.mean([metrics.psnr(gt, apply_image(model, {"params": params}, jpeg))
                        for _, gt, jpeg in pairs])
    jpeg = np.mean([metrics.psnr(gt, jpeg) for _, gt, jpeg in pairs])
    return {BEST_METRIC: float(restored), "val_psnr_jpeg": float(jpeg), "val_gain": float(restored - jpeg)}


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
    """Scalars to WORKDIR/metrics.jsonl (one JSON object per line, with `step`) and to
    TensorBoard event files in WORKDIR/tensorboard; written by process 0 only."""

    def __init__(self, workdir: str):
        self._enabled = jax.process_index() == 0
        if self._enabled:
            import tensorflow as tf
            self._tf = tf
            self._events = tf.summary.create_file_writer(os.path.join(workdir, "tensorboard"))
            self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")

    def write(self, step: int, scalars: dict[str, float]) -> None:
        if not self._enabled:
            return
        self._jsonl.write(json.dumps({"step": step, **scalars}) + "\n")
        self._jsonl.flush()
        from tensorflow.core.framework import summary_pb2  # simple_value scalars need no tensorboard package
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=k, simple_value=v)
                                             for k, v in scalars.items()])
        with self._events.as_default():
            self._tf.summary.experimental.write_raw_pb(summary.SerializeToString(), step=step)
        self._events.flush()

    def close(self) -> None:
        if self._enabled:
            self._jsonl.close()
            self._events.close()


def summarise(window: list[dict]) -> dict[str, float]:
    """Means of the step metrics since the last log (lr: its latest value)."""
    host = jax.device_get(window)
    summary = {k: float(np.mean([m[k] for m in host])) for k in host[0]}
    summary["lr"] = float(host[-1]["lr"])
    return summary


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
def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
    """Trains (resuming from the workdir) to config.num_train_steps; returns the last summary."""
    check_config(config)
    workdir = os.path.abspath(os.path.expanduser(workdir))
    mesh = make_mesh()
    model = make_model(config)
    lr_fn = create_learning_rate_fn(config)
    tx = create_optimizer(config, lr_fn)
    write_run_files(workdir, config, model)
    val_pairs = load_validation(config) if config.val_data else []
    summary: dict[str, float] = {}
    with checkpoint_manager(workdir, config.keep_checkpoints) as manager, \
            contextlib.closing(MetricWriter(workdir)) as writer:
        params = initial_params(config, model) if manager.latest_step() is None else None
        state = checkpoints.resume_state(manager, create_train_state(config, model, tx, mesh, params))
        start = int(state.step)
        step_fn = make_train_step(config, model, tx, lr_fn, mesh)
        batches = train_batches(config, start)
        window, window_start = [], time.perf_counter()
        bar = tqdm(total=config.num_train_steps, initial=start, unit="step", dynamic_ncols=True,
                   disable=not config.progress_bar or jax.process_index() != 0)
        for step in range(start + 1, config.num_train_steps + 1):
            state, step_metrics = step_fn(state, global_batch(next(batches), mesh))
            window.append(step_metrics)
            save = step % config.checkpoint_every_steps == 0 or step == config.num_train_steps
            if save or step % config.log_every_steps == 0:
                summary = summarise(window)
                check_finite(step, summary, manager)
                elapsed = time.perf_counter() - window_start
                summary |= {"steps_per_s": len(window) / elapsed,
                            "patches_per_s": len(window) * config.batch_size / elapsed}
                if save and val_pairs:
                    summary |= validate(model, export_params(state), val_pairs)
                writer.write(step, summary)
                bar.set_postfix(loss=f"{summary['loss']:.4f}", patches_per_s=f"{summary['patches_per_s']:.1f}",
                                **({"val_psnr": f"{summary[BEST_METRIC]:.2f}"} if BEST_METRIC in summary else {}))
                window, window_start = [], time.perf_counter()
            if save:
                manager.save(step, args=ocp.args.PyTreeSave(state),
                             metrics={BEST_METRIC: summary[BEST_METRIC]} if val_pairs else None)
            bar.update()
        bar.close()
    return summary
