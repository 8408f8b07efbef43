"""Model folders: the architecture as JSON beside its parameters as an orbax checkpoint.

A model folder holds `model.json` (`{"architecture": "D2LNet", "in_chn", "wf", "depth",
"relu_slope", ...metadata}`) and `params/` (orbax). `d2ljax.convert` writes one, training
exports one, and `load_model` reads either that or a training workdir (its best, else its
latest, checkpoint; EMA parameters when the run kept them).
"""
from __future__ import annotations

import json
import os
import shutil
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from d2ljax.model import D2LNet

MODEL_JSON = "model.json"
ARCH_FIELDS = ("in_chn", "wf", "depth", "relu_slope")


def model_config(model: D2LNet) -> dict:
    return {"architecture": "D2LNet", **{f: getattr(model, f) for f in ARCH_FIELDS}}


def model_from_config(config: Mapping[str, Any], dtype=None) -> D2LNet:
    if config.get("architecture", "D2LNet") != "D2LNet":
        raise ValueError(f"not a D2LNet model folder (architecture {config.get('architecture')!r})")
    return D2LNet(**{f: config[f] for f in ARCH_FIELDS if f in config}, dtype=dtype)


def abstract_variables(model: D2LNet) -> dict:
    """Shapes and dtypes of the model's variables, without computing anything."""
    probe = jnp.zeros((1, model.multiple, model.multiple, model.in_chn), jnp.float32)
    return jax.eval_shape(model.init, jax.random.PRNGKey(0), probe)


def random_variables(model: D2LNet, seed: int = 0, scale: float = 0.05) -> dict:
    """Variables of the right shapes with N(0, scale^2) values, without running model.init.

    For tests and benchmarks: `model.init` compiles the whole network, which is slow on CPU.
    scale 0 gives all zeros, a model that returns its input exactly.
    """
    leaves, treedef = jax.tree_util.tree_flatten(abstract_variables(model))
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_unflatten(
        treedef, [(scale * rng.standard_normal(leaf.shape)).astype(np.float32) for leaf in leaves])


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


def load_model(directory: str, dtype=None, weights: str = "ema") -> tuple[D2LNet, dict]:
    """`(model, variables)` from a model folder or a training workdir (`weights`: which of the
    workdir's parameters, see train_lib.restore_export_variables)."""
    directory = os.path.abspath(os.path.expanduser(directory))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"no such model folder: {directory}")
    model = model_from_config(read_model_json(directory), dtype)
    target = {"params": abstract_variables(model)["params"]}
    if os.path.isdir(os.path.join(directory, "params")):
        with ocp.StandardCheckpointer() as checkpointer:
            return model, checkpointer.restore(os.path.join(directory, "params"), target)
    from d2ljax import train_lib  # a training workdir
    return model, train_lib.restore_export_variables(directory, target, weights)
