"""Two JAX CPU devices for the restore command, so that restoring keeps two cores busy.

XLA:CPU runs a program on one device with a thread pool for its convolutions and matrix
products, but much of a small D2LNet's work (elementwise fusions, FFTs) runs on one thread:
restoring a tile keeps about 1.7 of 2 cores busy. Given two CPU devices, `d2ljax.inference`
splits each batch of tiles across them and both cores work throughout (benchmarks/README.md,
"Restoring on two CPU devices"). JAX fixes its CPU device count (`jax_num_cpu_devices`) when
its backend starts, so the restore command calls `split_host` before anything computes. It
changes nothing when the user chose a count (JAX_NUM_CPU_DEVICES, or XLA_FLAGS'
--xla_force_host_platform_device_count), when JAX will not compute on the CPU
(`hostmem.jax_runs_on_cpu`), when the process may use a single core, or when CPU tuning is
off (`d2ljax.cpu`).

Training is left as it is: its step keeps both cores busy already. Each device holds its own
share of a batch, so memory grows with the count: hence at most MAX_DEVICES.
"""
from __future__ import annotations

import os
from typing import Mapping, Optional, Sequence

from d2ljax import cpu
from d2ljax.cpu import hostmem

MAX_DEVICES = 2
XLA_FLAG = "--xla_force_host_platform_device_count"


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS tells it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def device_count(env: Mapping[str, str], cores: int, accelerators: Sequence[str]) -> Optional[int]:
    """The CPU devices to ask JAX for, min(cores, MAX_DEVICES), or None when there is nothing to
    do (the cases of the module docstring; `accelerators`: the host's accelerator device files)."""
    devices = min(cores, MAX_DEVICES)
    if (devices < 2 or "JAX_NUM_CPU_DEVICES" in env or XLA_FLAG in env.get("XLA_FLAGS", "")
            or not cpu.requested(env) or not hostmem.jax_runs_on_cpu(env, accelerators)):
        return None
    return devices


def split_host() -> None:
    """Asks JAX for two CPU devices where the module docstring says so; call it before JAX
    computes anything (JAX raises a RuntimeError otherwise)."""
    import jax

    devices = device_count(os.environ, usable_cores(), hostmem.accelerator_files()) if cpu.enabled() else None
    if devices is not None and jax.config.jax_num_cpu_devices < 0:  # < 0: not set in Python either
        jax.config.update("jax_num_cpu_devices", devices)
