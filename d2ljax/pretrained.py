"""Named D2LNet models: model folders found on a search path, described by their model.json.

A pretrained model is a model folder (`d2ljax.checkpoints`: `model.json` + `params/`, as
training exports and `d2ljax convert` writes) whose folder name is its name. Folders
are searched in this order, the first one with a name winning:

1. each entry of `$D2LJAX_MODELS` (folders separated by `os.pathsep`),
2. the user cache `~/.cache/d2ljax/models` (`$XDG_CACHE_HOME/d2ljax/models` when set),
3. `d2ljax/weights/` inside the package (the models shipped with d2ljax).

Wherever d2ljax takes a model (`load_pretrained`, `d2ljax.restore`, the restore CLI's --model
and --checkpoint, evaluate.py's --checkpoint, training's config.init_from), `resolve` turns a
name, a model folder or a training workdir into a folder: one vocabulary everywhere.

Besides the architecture, `model.json` may say what a model restores, so that
`d2ljax.restore` can pick the right one for a photo:
- `"qf"`: the JPEG qualities it was trained at: `10` or `[10]` (one), `[10, 20, 30]` (several),
  `"5-95"` (a range, as blind training draws QFs), or `"blind"` (any, same as `"1-100"`).
  Absent: unstated, chosen only when no model states a fitting QF.
- `"mode"`: `"gray"` or `"color"`; optional, as `in_chn` (1 or 3) already says it, and an
  error when the two disagree.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import re
from typing import Any, Callable, Mapping, Optional, Union

from d2ljax import checkpoints
from d2ljax.imageio import MODES
from d2ljax.jpeg import check_quality
from d2ljax.model import D2LNet

PACKAGE_MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")
BLIND = ((1, 100),)
# The benchmark set whose measured gains (model.json "results") settle the choice between models
# that fit a photo's quality equally well (restoration.choose_model); every shipped model has it.
MEASURED_ON = "LIVE1"

Qualities = Optional[tuple[tuple[int, int], ...]]
ModelName = Union[str, os.PathLike]


class UnknownModelError(LookupError):
    """A model name that is neither on the search path nor a model folder or training workdir."""


def cache_dir(env: Mapping[str, str] = os.environ) -> str:
    """d2ljax's user cache folder: $XDG_CACHE_HOME/d2ljax, else ~/.cache/d2ljax."""
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "d2ljax")


def search_path() -> list[str]:
    """The folders searched for named models, in order (see the module docstring)."""
    user = [p for p in os.environ.get("D2LJAX_MODELS", "").split(os.pathsep) if p]
    return [os.path.expanduser(p) for p in user] + [os.path.join(cache_dir(), "models"), PACKAGE_MODELS]


def _index() -> dict[str, str]:
    """Model name -> folder, the first on the search path winning."""
    found: dict[str, str] = {}
    for root in search_path():
        if not os.path.isdir(root):
            continue
        for name in sorted(os.listdir(root)):
            folder = os.path.join(root, name)
            if name not in found and os.path.isfile(os.path.join(folder, checkpoints.MODEL_JSON)):
                found[name] = folder
    return found


def list_pretrained() -> list[str]:
    """Names of the models on the search path, sorted."""
    return sorted(_index())


def resolve(name: ModelName) -> str:
    """The folder of a named model, or `name` itself when it is a model folder or a training
    workdir (both hold a model.json)."""
    name = os.fspath(name)
    index = _index()
    if name in index:
        return index[name]
    path = os.path.expanduser(name)
    if os.path.isfile(os.path.join(path, checkpoints.MODEL_JSON)):
        return os.path.abspath(path)
    available = ", ".join(sorted(index)) or "none installed"
    raise UnknownModelError(f"unknown model {name!r}: not a model folder or training workdir, and not one of "
                            f"the named models ({available}); searched {os.pathsep.join(search_path())}")


def load_pretrained(name: ModelName, dtype=None) -> tuple[D2LNet, dict]:
    """`(model, variables)` of a named model, a model folder or a training workdir."""
    return checkpoints.load_model(resolve(name), dtype)


def parse_qualities(value: Any) -> Qualities:
    """model.json's "qf" -> the trained quality intervals ((lo, hi), ...); None when absent."""
    if value is None:
        return None
    if value == "blind":
        return BLIND
    try:
        if isinstance(value, str) and (m := re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", value)):
            lo, hi = (check_quality(int(q)) for q in m.groups())
            if lo <= hi:
                return ((lo, hi),)
        values = [value] if isinstance(value, int) else value
        if isinstance(values, list) and values:
            return tuple((v, v) for v in sorted({check_quality(v) for v in values}))
    except ValueError:
        pass
    raise ValueError(f"model.json 'qf' must be a quality 1..100, a list of them, 'LO-HI' or 'blind'; got {value!r}")


def in_channels(metadata: Mapping[str, Any]) -> int:
    """The model's image channels (1 gray, 3 colour), checked against an optional "mode"."""
    in_chn = int(metadata.get("in_chn", 3))
    mode = metadata.get("mode")
    if mode is not None and MODES.get(mode) != in_chn:
        raise ValueError(f"model.json 'mode' {mode!r} disagrees with in_chn={in_chn} (modes: gray = 1, color = 3)")
    return in_chn


@dataclasses.dataclass(frozen=True, eq=False)
class ModelEntry:
    """A model to restore with: what it restores (from its metadata), loaded on first use."""
    name: str
    in_chn: int
    qualities: Qualities
    loader: Callable[[], tuple[D2LNet, dict]] = dataclasses.field(repr=False)
    restore_rule: Optional[Mapping[str, float]] = None  # model.json's never-worse table (restoration.rule_strength)
    gains: Optional[Mapping[int, float]] = None  # QF -> measured PSNR gain over JPEG on MEASURED_ON (dB)
    metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict, repr=False)  # its model.json

    @functools.cached_property
    def loaded(self) -> tuple[D2LNet, dict]:
        return self.loader()

    def describe(self) -> str:
        """'qf10 (color, QF 10)': the name with what the model was trained for."""
        if self.qualities is None:
            trained = "QF unstated"
        elif self.qualities == BLIND:
            trained = "blind"
        else:
            trained = "QF " + ", ".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in self.qualities)
        return f"{self.name} ({'gray' if self.in_chn == 1 else 'color'}, {trained})"


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def training_record(metadata: Mapping[str, Any]) -> str:
    """'27384 steps, 11.5 CPU-hours; LIVE1 QF 10: 27.148 dB (+1.455)': a model's total training and
    its PSNR (gain over the JPEG) on MEASURED_ON at each measured QF, as far as model.json records
    them ('' when it records neither)."""
    steps, hours = metadata.get("total_train_steps"), metadata.get("total_cpu_hours")
    accelerator_hours = metadata.get("total_accelerator_hours")
    trained = [f"{steps} steps"] if is_number(steps) and steps else []
    if is_number(hours) and hours:
        trained.append(f"{hours:.1f} CPU-hours")
    if is_number(accelerator_hours) and accelerator_hours:
        trained.append(f"{accelerator_hours:.2f} accelerator-hours")
    results = []
    for qf, row in sorted(measured_rows(metadata).items()):
        gain = f" ({row['psnr'] - row['jpeg_psnr']:+.3f})" if is_number(row.get("jpeg_psnr")) else ""
        results.append(f"QF {qf}: {row['psnr']:.3f} dB{gain}")
    parts = [", ".join(trained)] if trained else []
    if results:
        parts.append(f"{MEASURED_ON} " + ", ".join(results))
    return "; ".join(parts)


def measured_rows(metadata: Mapping[str, Any]) -> dict[int, Mapping[str, Any]]:
    """QF -> model.json's "results" row on MEASURED_ON, for the rows with a PSNR (others are skipped)."""
    rows = metadata.get("results", {}).get(MEASURED_ON, {})
    return {int(qf): row for qf, row in rows.items()
            if str(qf).isdigit() and isinstance(row, Mapping) and is_number(row.get("psnr"))}


def measured_gains(metadata: Mapping[str, Any]) -> Optional[dict[int, float]]:
    """QF -> the model's PSNR gain over JPEG on MEASURED_ON, from model.json's "results" (None: none)."""
    gains = {qf: row["psnr"] - row["jpeg_psnr"] for qf, row in measured_rows(metadata).items()
             if is_number(row.get("jpeg_psnr"))}
    return gains or None


def entry_from_metadata(name: str, metadata: Mapping[str, Any], loader) -> ModelEntry:
    return ModelEntry(name, in_channels(metadata), parse_qualities(metadata.get("qf")), loader,
                      metadata.get("restore_rule"), measured_gains(metadata), metadata)


def model_entry(name: ModelName) -> ModelEntry:
    """The entry of a named model, a model folder or a training workdir (reads model.json only)."""
    folder = resolve(name)
    return entry_from_metadata(os.fspath(name), checkpoints.read_model_json(folder),
                               functools.partial(checkpoints.load_model, folder))


def all_entries() -> list[ModelEntry]:
    """An entry for every named model on the search path."""
    return [model_entry(name) for name in list_pretrained()]
