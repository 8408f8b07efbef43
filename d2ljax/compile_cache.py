"""A persistent cache of compiled XLA programs for the command lines (restore, train.py, evaluate.py).

XLA compiles each program (the model at one image size, the train step) the first time a
process runs it: seconds for the shipped models, often more than restoring a typical photo
takes, and again in every new process. JAX can keep compiled programs on disk and load them
instead (its persistent compilation cache); the command lines turn it on with `enable()`, so a
rerun, a resumed training run or a second evaluation starts at once. Programs that compile in
under a second are not kept (JAX's default).

Where: $D2LJAX_COMPILE_CACHE if set ("0" turns the cache off), else the `jax` folder in
d2ljax's cache folder (pretrained.cache_dir: ~/.cache/d2ljax/jax). Nothing is evicted (a
program takes 0.2-5 MB; the folder can be deleted at any time). A cache folder given to JAX
itself (JAX_COMPILATION_CACHE_DIR) is left as it is. Importing d2ljax changes no JAX setting.
"""
from __future__ import annotations

import os
from typing import Mapping, Optional

import jax

from d2ljax import pretrained

ENV = "D2LJAX_COMPILE_CACHE"


def folder(env: Mapping[str, str]) -> Optional[str]:
    """The cache folder that `env` asks for (None: off)."""
    chosen = env.get(ENV)
    if chosen is not None:
        return None if chosen in ("", "0") else os.path.expanduser(chosen)
    return os.path.join(pretrained.cache_dir(env), "jax")


def enable(env: Mapping[str, str] = os.environ) -> Optional[str]:
    """Turns JAX's persistent compilation cache on at `folder(env)`; returns the folder in use.

    Does nothing when the folder cannot be made or written (the cache only saves time)."""
    if jax.config.jax_compilation_cache_dir:
        return jax.config.jax_compilation_cache_dir
    path = folder(env)
    if path is None:
        return None
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return None
    if not os.access(path, os.W_OK):
        return None
    jax.config.update("jax_compilation_cache_dir", path)
    return path
