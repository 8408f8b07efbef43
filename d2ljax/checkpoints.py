"""Model folders and training checkpoints: everything d2ljax writes to disk for a model.

A model folder holds `model.json` (`{"architecture": "D2LNet", "in_chn", "wf", "depth",
"relu_slope", ...metadata}`) and `params/` (orbax). `d2ljax.convert` writes one and
`python -m d2ljax export` makes one of a training workdir. A training workdir holds
`model.json` too, beside `checkpoints/` (orbax, written through `checkpoint_manager`: the
latest checkpoints and the best by validation PSNR). `load_model` reads either kind.

Loading needs neither the trainer nor its optimiser: this module imports orbax, not optax or
TensorFlow, and the trainer (`d2ljax.train_lib`) imports it.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from typing import Any, Mapping

import jax
import numpy as np
import orbax.checkpoint as ocp

from d2ljax.model import D2LNet

MODEL_JSON = "model.json"
ARCH_FIELDS = ("in_chn", "wf", "depth", "relu_slope")
CHECKPOINT_DIR = "checkpoints"  # of a training workdir
BEST_METRIC = "val_psnr"  # the validation metric that picks a workdir's best checkpoint
EXPORT_WEIGHTS = ("ema", "latest_ema", "trained")  # which of a workdir's parameters load_model returns


def model_config(model: D2LNet) -> dict:
    return {"architecture": "D2LNet", **{f: getattr(model, f) for f in ARCH_FIELDS}}


def model_from_config(config: Mapping[str, Any], dtype=None) -> D2LNet:
    if config.get("architecture", "D2LNet") != "D2LNet":
        raise ValueError(f"not a D2LNet model folder (architecture {config.get('architecture')!r})")
    return D2LNet(**{f: config[f] for f in ARCH_FIELDS if f in config}, dtype=dtype)


def abstract_variables(model: D2LNet) -> dict:
    """Shapes and dtypes of the model's variables, without computing anything."""
    return jax.eval_shape(model.init, jax.random.PRNGKey(0), model.init_input())


def save_model(directory: str, model: D2LNet, variables: Mapping, *, overwrite: bool = False,
               metadata: Mapping[str, Any] | None = None) -> None:
    """Writes a model folder. Refuses to replace an existing folder unless `overwrite`."""
    directory = os.path.abspath(directory)
    if os.path.exists(directory):
        if not overwrite:
            raise FileExistsError(f"{directory} exists; choose another folder or pass overwrite=True (--overwrite)")
        if not os.path.isfile(os.path.join(directory, MODEL_JSON)):
            raise FileExistsError(f"{directory} exists and is not a d2ljax model folder; refusing to replace it")
        shutil.rmtree(directory)
    os.makedirs(directory)
    params = jax.device_get({"params": variables["params"]})
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(os.path.join(directory, "params"), params)
    with open(os.path.join(directory, MODEL_JSON), "w") as f:
        json.dump({**model_config(model), **(metadata or {})}, f, indent=2)


def read_model_json(directory: str) -> dict:
    path = os.path.join(directory, MODEL_JSON)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{directory}: not a d2ljax model folder or training workdir (no {MODEL_JSON})")
    with open(path) as f:
        return json.load(f)


def is_model_folder(directory: str) -> bool:
    """A model folder holds one set of parameters (params/); a training workdir holds checkpoints."""
    return os.path.isdir(os.path.join(directory, "params"))


def load_model(directory: str, dtype=None, weights: str = "ema") -> tuple[D2LNet, dict]:
    """`(model, variables)` from a model folder or a training workdir (`weights`: which of the
    workdir's parameters, see `load_workdir_variables`)."""
    directory = os.path.abspath(os.path.expanduser(directory))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"no such model folder or training workdir: {directory}")
    model = model_from_config(read_model_json(directory), dtype)
    target = {"params": abstract_variables(model)["params"]}
    if is_model_folder(directory):
        with ocp.StandardCheckpointer() as checkpointer:
            return model, checkpointer.restore(os.path.join(directory, "params"), target)
    return model, load_workdir_variables(directory, target, weights)


# ----------------------------------------------------------------------------- training history
SESSIONS_JSONL = "sessions.jsonl"  # in a workdir: one line per train.py invocation
METRICS_JSONL = "metrics.jsonl"  # in a workdir: the logged metrics (d2ljax.run_log.MetricWriter)
RECIPE_FIELDS = ("train_data", "mode", "qf", "qf_range", "qf_range_prob", "misalign", "patch_size",
                 "batch_size", "learning_rate", "schedule", "warmup_steps", "time_budget_s", "seed",
                 "val_data", "val_qf")


def read_jsonl(path: str) -> list[dict]:
    """The JSON objects of a .jsonl file, one per non-empty line; [] when there is no file."""
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def training_run(workdir: str) -> dict:
    """A workdir's training as one entry of model.json's "runs": what it started from, its
    recipe (config.json), the steps it trained, the wall-clock and CPU hours of the sessions
    that trained it (sessions.jsonl, written by the trainer), the device they ran on (when
    recorded) and its learning curve: the validation PSNR at each validated step
    (metrics.jsonl), when the run validated."""
    with open(os.path.join(workdir, "config.json")) as f:
        config = json.load(f)
    sessions = read_jsonl(os.path.join(workdir, SESSIONS_JSONL))
    devices = sorted({s["device"] for s in sessions if "device" in s})
    curve = [[row["step"], round(row[BEST_METRIC], 3)]
             for row in read_jsonl(os.path.join(workdir, METRICS_JSONL)) if BEST_METRIC in row]
    return {"init_from": config.get("init_from", ""),
            "recipe": {k: config[k] for k in RECIPE_FIELDS if k in config},
            "steps": max((s["end_step"] for s in sessions), default=None),
            "wall_hours": round(sum(s["wall_s"] for s in sessions) / 3600, 3),
            "cpu_hours": round(sum(s["cpu_s"] for s in sessions) / 3600, 3),
            **({"device": ", ".join(devices)} if devices else {}),
            "sessions": [{k: s[k] for k in ("date", "start_step", "end_step")} for s in sessions],
            **({"validation_psnr": curve} if curve else {})}


def on_accelerator(run: Mapping[str, Any]) -> bool:
    """Whether a run of model.json's "runs" trained on an accelerator (its "device" is not the
    CPU); runs that record no device trained on the CPU."""
    return run.get("device", "cpu") != "cpu"


def with_totals(metadata: Mapping[str, Any], runs: list[Mapping[str, Any]]) -> dict:
    """`metadata` with "runs" and the totals over them: "total_train_steps", "total_cpu_hours"
    (runs on the CPU) and, when any run trained on an accelerator, "total_accelerator_hours"
    (their wall-clock hours; the host's CPU time of such a run says nothing of its cost)."""
    on_cpu = [r for r in runs if not on_accelerator(r)]
    accelerated = [r for r in runs if on_accelerator(r)]
    totals = {"total_train_steps": sum(r.get("steps") or 0 for r in runs),
              "total_cpu_hours": round(sum(r.get("cpu_hours") or 0 for r in on_cpu), 3)}
    if accelerated:
        totals["total_accelerator_hours"] = round(sum(r.get("wall_hours") or 0 for r in accelerated), 3)
    return {**{k: v for k, v in metadata.items() if k != "total_accelerator_hours"}, "runs": list(runs), **totals}


def with_history(metadata: Mapping[str, Any], run: Mapping[str, Any], parent: Mapping[str, Any] | None) -> dict:
    """model.json for an export: `metadata` with "runs" (the parent model's runs, then this
    one), the totals over them (with_totals) and "num_train_steps", the steps this run trained
    (a budget run's config holds only a ceiling). A parent without "runs" counts as one run of
    its total_train_steps (hours unknown)."""
    earlier = []
    if parent:
        earlier = parent.get("runs") or [{"steps": parent.get("total_train_steps", parent.get("num_train_steps")),
                                          "description": parent.get("training", "")}]
    steps = {"num_train_steps": run["steps"]} if run.get("steps") is not None else {}
    return with_totals({**metadata, **steps}, [*earlier, dict(run)])


# ----------------------------------------------------------------------------- training checkpoints
def checkpoint_manager(workdir: str, keep: int = 1, read_only: bool = False) -> ocp.CheckpointManager:
    """WORKDIR/checkpoints: async saves, keeping the latest `keep` and the best by BEST_METRIC."""
    policy = ocp.checkpoint_managers.AnyPreservationPolicy([
        ocp.checkpoint_managers.LatestN(n=keep),
        ocp.checkpoint_managers.BestN(get_metric_fn=_best_metric, n=1)])
    directory = os.path.join(os.path.abspath(workdir), CHECKPOINT_DIR)
    with _absl_warnings_hidden(read_only):  # orbax warns of each setting read-only mode overrides
        options = ocp.CheckpointManagerOptions(
            best_fn=_best_metric, best_mode="max", preservation_policy=policy,
            enable_async_checkpointing=not read_only, read_only=read_only)
        return ocp.CheckpointManager(directory, options=options, item_handlers=ocp.PyTreeCheckpointHandler())


@contextlib.contextmanager
def _absl_warnings_hidden(hide: bool):
    logger = logging.getLogger("absl")
    level = logger.level
    if hide:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _best_metric(saved_metrics: dict) -> float:
    return saved_metrics[BEST_METRIC]


def load_workdir_variables(workdir: str, target: dict, weights: str = "ema") -> dict:
    """{'params': ...} of a training workdir, as NumPy arrays shaped like target['params'].

    weights 'ema': the best checkpoint by validation PSNR (else the latest), its EMA
    parameters when the run kept them (else its parameters); 'latest_ema': the same of the
    latest checkpoint (a run's end, where a decayed learning rate leaves its best weights more
    surely than a few validation photos can tell); 'trained': the latest checkpoint's trained
    (not averaged) parameters.
    """
    if weights not in EXPORT_WEIGHTS:
        raise ValueError(f"weights={weights!r}: must be one of {EXPORT_WEIGHTS}")
    with checkpoint_manager(workdir, read_only=True) as manager:
        step = manager.best_step() if weights == "ema" else None
        step = manager.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"{workdir}: no checkpoint in {CHECKPOINT_DIR}/")
        has_ema = manager.item_metadata(step).get("ema_params") is not None
        key = "ema_params" if weights != "trained" and has_ema else "params"
        as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), target["params"])
        restored = manager.restore(step, args=ocp.args.PyTreeRestore(
            item={key: target["params"]}, restore_args={key: as_numpy}, partial_restore=True))
    return {"params": restored[key]}


def resume_state(manager: ocp.CheckpointManager, state):
    """The latest checkpoint, placed like the pytree `state`, or `state` itself when there is none."""
    step = manager.latest_step()
    if step is None:
        return state
    logging.info("resuming from step %d of %s", step, manager.directory)
    return manager.restore(step, args=ocp.args.PyTreeRestore(
        state, restore_args=ocp.checkpoint_utils.construct_restore_args(state)))
