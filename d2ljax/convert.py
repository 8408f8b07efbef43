"""Import the authors' PyTorch D2LNet checkpoints.

    d2ljax convert IN.pth OUT_DIR    # or IN.npz; writes an orbax model folder

Torch keys map to Flax paths by one rule: split at dots, join an index to the name before
it (`up_path_1.0.conv_block.conv_1.weight` -> `up_path_1_0/conv_block/conv_1/kernel`).
Conv2d weights (out, in, kh, kw) and ConvTranspose2d weights (in, out, kh, kw) both become
`w.transpose(2, 3, 1, 0)`; InstanceNorm's `weight` is Flax's `scale`. The released model's
never-used tensors are recognised and skipped; anything else that does not fit is an error.
"""
from __future__ import annotations

import os
import re
from typing import Mapping, Union

import numpy as np
from flax import traverse_util

from d2ljax import checkpoints
from d2ljax.model import D2LNet

# Tensors the released model creates but never uses (docs/architecture.md#checkpoints).
UNUSED_KEYS = (
    re.compile(r"^(conv_0[12]\.[12]|pre_re\.1|skip_conv_[12]\.\d+)\.(identity|conv_3)\.(weight|bias)$"),
    re.compile(r"^up_path_[12]\.\d+\.conv_block\.(conv_fft_[12]\.(weight|bias)|sa\.conv1\.weight)$"),
)


class CheckpointMismatchError(ValueError):
    """A checkpoint that does not fit the D2LNet it describes."""


def flax_path(torch_key: str) -> tuple[str, ...]:
    """`last.process.0.conv_du.0.weight` -> ('last', 'process_0', 'conv_du_0', 'weight')."""
    path: list[str] = []
    for part in torch_key.split("."):
        if part.isdigit() and path:
            path[-1] = f"{path[-1]}_{part}"
        else:
            path.append(part)
    return tuple(path)


def flax_leaf(path: tuple[str, ...], value: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
    """Renames a torch leaf (weight/bias) to Flax's name and layout."""
    name = path[-1]
    if name == "bias":
        return path, value
    if name != "weight":
        raise CheckpointMismatchError(f"unexpected tensor {'.'.join(path)}: not a weight or bias")
    if value.ndim == 4:
        return path[:-1] + ("kernel",), value.transpose(2, 3, 1, 0)
    if value.ndim == 1:
        return path[:-1] + ("scale",), value
    raise CheckpointMismatchError(f"unexpected {value.ndim}-D weight {'.'.join(path)}")


def infer_config(state: Mapping[str, np.ndarray]) -> dict:
    """Reads in_chn, wf and depth off the weight shapes."""
    if "conv_01.0.weight" not in state:
        raise CheckpointMismatchError("not a D2LNet checkpoint: it has no 'conv_01.0.weight' "
                                      f"(first keys: {', '.join(list(state)[:3])})")
    wf, in_chn = state["conv_01.0.weight"].shape[:2]
    levels = {int(m.group(1)) for k in state if (m := re.match(r"down_path_1\.(\d+)\.", k))}
    return {"in_chn": int(in_chn), "wf": int(wf), "depth": len(levels)}


def load_state_dict(source: Union[str, os.PathLike, Mapping[str, np.ndarray]], param_key: str | None = None
                    ) -> dict[str, np.ndarray]:
    """Torch key -> float numpy array, from a .pth/.pt file, an .npz file or a mapping.

    A BasicSR checkpoint holds the state dict under 'params' or 'params_ema' (`param_key`
    picks one; by default 'params_ema' when present, else 'params'). DataParallel's
    'module.' prefixes and the fixtures' 'params/' prefixes are removed.
    """
    if isinstance(source, Mapping):
        state = dict(source)
    else:
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no such checkpoint file: {path}")
        if path.endswith(".npz"):
            with np.load(path) as npz:
                keys = [k for k in npz.files if k.startswith("params/")] or npz.files
                state = {k: npz[k] for k in keys}
        else:
            state = _torch_load(path)
    if param_key is None:
        param_key = next((k for k in ("params_ema", "params") if isinstance(state.get(k), Mapping)), None)
    if param_key is not None:
        if not isinstance(state.get(param_key), Mapping):
            raise CheckpointMismatchError(f"checkpoint has no '{param_key}' entry (keys: {', '.join(map(str, state))})")
        state = dict(state[param_key])
    out = {}
    for key, value in state.items():
        key = key.removeprefix("params/").removeprefix("module.")
        out[key] = np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value)
    return out


def _torch_load(path: str) -> dict:
    try:
        import torch
    except ImportError:
        raise ImportError(f"reading {path} needs PyTorch: pip install 'd2ljax[torch]' "
                          "(or pass an .npz / a mapping of numpy arrays, which needs no torch)") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for corrupt files
        raise CheckpointMismatchError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {e})") from None


def from_torch(source, param_key: str | None = None, dtype=None) -> tuple[D2LNet, dict]:
    """Builds `(model, variables)` from a released-model checkpoint (path or mapping).

    The model's size is inferred from the weights; unused released tensors are skipped;
    missing, unexpected or mis-shaped tensors raise CheckpointMismatchError listing them.
    """
    state = load_state_dict(source, param_key)
    model = D2LNet(**infer_config(state), dtype=dtype)
    expected = traverse_util.flatten_dict(checkpoints.abstract_variables(model)["params"])
    params, unexpected, misshaped, seen = {}, [], [], set()
    for key, value in state.items():
        if any(p.match(key) for p in UNUSED_KEYS):
            continue
        path, leaf = flax_leaf(flax_path(key), value)
        seen.add(path)
        if path not in expected:
            unexpected.append(key)
        elif leaf.shape != expected[path].shape:
            misshaped.append(f"{key} {tuple(value.shape)} (expected {_torch_shape(expected[path].shape)})")
        else:
            params[path] = leaf.astype(np.promote_types(leaf.dtype, np.float32))
    missing = ["/".join(p) for p in expected if p not in seen]
    problems = [f"{name}: {', '.join(items[:8])}{' ...' if len(items) > 8 else ''}"
                for name, items in (("missing (Flax paths)", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)) if items]
    if problems:
        raise CheckpointMismatchError(f"checkpoint does not fit D2LNet(in_chn={model.in_chn}, wf={model.wf}, "
                                      f"depth={model.depth}): " + "; ".join(problems))
    return model, {"params": traverse_util.unflatten_dict(params)}


def _torch_shape(flax_shape) -> tuple:
    """The torch layout of a Flax leaf's shape (kernels are (kh, kw, in, out) here)."""
    return tuple(int(flax_shape[i]) for i in (3, 2, 0, 1)) if len(flax_shape) == 4 else tuple(flax_shape)
