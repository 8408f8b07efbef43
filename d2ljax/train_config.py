"""The training config's rules: checks that name the bad field, and the values resolved
before a run (the input pipeline for 'auto', a warmup no longer than the run).

The fields themselves are documented in configs/default.py.
"""
from __future__ import annotations

import jax
import ml_collections

from d2ljax import jpeg, samples
from d2ljax.imageio import MODES
from d2ljax.run_log import say
from d2ljax.schedules import BUDGET_CLOCKS, SCHEDULES
from d2ljax.train_state import DTYPES

# config.input_pipeline: 'auto' picks samples.default_pipeline() when the run starts.
PIPELINE_CHOICES = ("auto", *samples.PIPELINES)


class ConfigError(ValueError):
    """A bad config value; the message is one line naming the field."""


def require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _check_qfs(name: str, qfs) -> None:
    """At least one QF, each one by the library's QF rule (jpeg.check_quality)."""
    require(len(qfs) > 0, f"config.{name}={qfs!r}: needs at least one JPEG quality factor")
    for q in qfs:
        try:
            jpeg.check_quality(q)
        except ValueError as e:
            raise ConfigError(f"config.{name}={qfs!r}: {e}") from None


def check_config(config: ml_collections.ConfigDict, device_count: int | None = None,
                 process_count: int | None = None) -> None:
    """Raises a one-line ValueError naming the first bad field."""
    device_count = device_count or jax.device_count()
    process_count = process_count or jax.process_count()
    require(config.mode in MODES, f"config.mode={config.mode!r}: must be one of {tuple(MODES)}")
    _check_qfs("qf", tuple(config.qf))
    _check_qfs("val_qf", tuple(config.val_qf))
    if config.qf_range is not None:
        require(len(config.qf_range) == 2 and config.qf_range[0] <= config.qf_range[1],
                f"config.qf_range={config.qf_range!r}: must be (lo, hi) with lo <= hi")
        _check_qfs("qf_range", tuple(config.qf_range))
    require(config.batch_size >= 1 and config.batch_size % device_count == 0
            and config.batch_size % process_count == 0,
            f"config.batch_size={config.batch_size} (global) must be a positive multiple of the "
            f"{device_count} devices over {process_count} process(es)")
    multiple = 2 ** (config.depth - 1)
    require(config.depth >= 1 and config.patch_size >= multiple and config.patch_size % multiple == 0,
            f"config.patch_size={config.patch_size} must be a multiple of 2**(depth-1) = {multiple}")
    require(config.num_train_steps >= 1, f"config.num_train_steps={config.num_train_steps} must be >= 1")
    require(config.warmup_steps >= 0, f"config.warmup_steps={config.warmup_steps} must be >= 0")
    require(config.schedule in SCHEDULES, f"config.schedule={config.schedule!r}: must be one of {SCHEDULES}")
    require(config.time_budget_s >= 0, f"config.time_budget_s={config.time_budget_s} must be >= 0 (0: off)")
    require(config.budget_clock in BUDGET_CLOCKS,
            f"config.budget_clock={config.budget_clock!r}: must be one of {BUDGET_CLOCKS}")
    require(config.schedule != "budget" or config.time_budget_s > 0,
            "config.schedule='budget' spans the time budget: set config.time_budget_s > 0")
    require(0 < config.budget_decay_fraction <= 1,
            f"config.budget_decay_fraction={config.budget_decay_fraction} must lie in (0, 1]")
    require(config.input_pipeline in PIPELINE_CHOICES,
            f"config.input_pipeline={config.input_pipeline!r}: must be one of {PIPELINE_CHOICES}")
    require(config.data_workers >= -1, f"config.data_workers={config.data_workers} must be >= 0 (-1: automatic)")
    require(config.val_every_steps >= 0, f"config.val_every_steps={config.val_every_steps} must be >= 0")
    require(config.dtype in DTYPES, f"config.dtype={config.dtype!r}: must be one of {tuple(DTYPES)}")
    require(0 <= config.ema_decay < 1, f"config.ema_decay={config.ema_decay} must lie in [0, 1)")
    for name in ("l1_weight", "amp_weight", "phase_weight", "grad_clip_norm", "learning_rate"):
        require(config[name] >= 0, f"config.{name}={config[name]} must be >= 0")
    for name in ("log_every_steps", "checkpoint_every_steps", "keep_checkpoints"):
        require(config[name] >= 1, f"config.{name}={config[name]} must be >= 1")


def prepared_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A checked copy of the config as the run uses it: input_pipeline 'auto' resolved
    (samples.default_pipeline), and a warmup as long as the run or longer cut to a tenth of
    the run (said once), so that a short smoke test needs no other change."""
    check_config(config)
    config = ml_collections.ConfigDict(config.to_dict())
    if config.input_pipeline == "auto":
        config.input_pipeline = samples.default_pipeline()
    if config.schedule != "budget" and config.warmup_steps >= config.num_train_steps:
        warmup = config.num_train_steps // 10
        say(f"config.warmup_steps={config.warmup_steps} is not shorter than the run "
            f"(num_train_steps={config.num_train_steps}): warming up over {warmup} steps instead")
        config.warmup_steps = warmup
    return config


def trained_qualities(config: ml_collections.ConfigDict):
    """model.json's "qf" (d2ljax.pretrained): the QF list, or 'LO-HI' when QFs are also drawn
    from config.qf_range."""
    if config.qf_range is None or config.qf_range_prob == 0:
        return list(config.qf)
    qfs = [*config.qf_range, *(config.qf if config.qf_range_prob < 1 else ())]
    return f"{min(qfs)}-{max(qfs)}"
