"""Transparent huge pages for XLA:CPU's per-step buffers (Linux, glibc).

XLA:CPU allocates its buffers with malloc at every execution and frees them afterwards; glibc
hands large freed blocks back to the kernel, so every training step faults in fresh 4 KiB pages.
With glibc's tunable `glibc.malloc.hugetlb=1`, malloc asks for transparent huge pages: hundreds of
times fewer faults and a faster step (benchmarks/cpu_tuning.md). glibc reads tunables only
when a process starts, so train.py, evaluate.py and `d2ljax restore` call
`rerun_with_huge_pages` first: it re-executes the process once with the tunable set when all of
these hold, and otherwise returns:

- JAX will compute on the CPU (`jax_runs_on_cpu`): JAX_PLATFORMS names only `cpu`, or, where it
  is unset, the host has no accelerator device files (/dev/nvidia*, /dev/accel*, /dev/kfd,
  /dev/vfio/<n>). On GPU and TPU hosts the buffers live on the device, and a re-exec would only
  surprise debuggers and launchers; set JAX_PLATFORMS=cpu there to get it for a CPU run;
- CPU tuning is on (D2LJAX_CPU_TUNING is not 0; `d2ljax.cpu.tuning`), and D2LJAX_HUGE_PAGES,
  which turns off this re-execution alone, is not 0;
- GLIBC_TUNABLES does not set glibc.malloc.hugetlb already (also what stops a second re-exec);
- glibc >= 2.35 and the kernel's transparent huge pages in `always` or `madvise` mode.
"""
from __future__ import annotations

import glob
import os
import platform
import sys
from typing import Mapping, Optional, Sequence

from d2ljax import cpu

TUNABLE = "glibc.malloc.hugetlb=1"
OPT_OUT = "D2LJAX_HUGE_PAGES"  # "0": leave the process as it is
THP_MODE = "/sys/kernel/mm/transparent_hugepage/enabled"
# NVIDIA GPUs, TPUs (/dev/accel* on older TPU VMs, VFIO groups on newer ones), AMD GPUs (ROCm's kfd)
ACCELERATOR_FILES = ("/dev/nvidia*", "/dev/accel*", "/dev/vfio/[0-9]*", "/dev/kfd")


def accelerator_files() -> list:
    """The accelerator device files present on this host."""
    return sorted(path for pattern in ACCELERATOR_FILES for path in glob.glob(pattern))


def jax_runs_on_cpu(env: Mapping[str, str], accelerators: Sequence[str]) -> bool:
    """Whether JAX will compute on the CPU, given the environment and the host's accelerator device
    files: JAX_PLATFORMS lists only `cpu`, or it is unset and there are no accelerators."""
    platforms = {name.strip().lower() for name in env.get("JAX_PLATFORMS", "").split(",")} - {""}
    return platforms == {"cpu"} if platforms else not accelerators


def huge_pages_available() -> bool:
    """glibc >= 2.35 (the tunable's first release) and the kernel's THP in `always` or `madvise` mode."""
    name, version = platform.libc_ver()
    if sys.platform != "linux" or name != "glibc" or tuple(map(int, version.split(".")[:2])) < (2, 35):
        return False
    try:
        with open(THP_MODE) as f:
            mode = f.read()
    except OSError:
        return False
    return "[always]" in mode or "[madvise]" in mode


def environment_with_huge_pages(env: Mapping[str, str], accelerators: Sequence[str]) -> Optional[dict]:
    """`env` plus the tunable (kept beside any other tunables), or None when there is nothing to do
    (the rules of this module's docstring; `accelerators`: the host's accelerator device files)."""
    tunables = env.get("GLIBC_TUNABLES", "")
    if (env.get(OPT_OUT) == "0" or not cpu.requested(env) or "glibc.malloc.hugetlb" in tunables
            or not jax_runs_on_cpu(env, accelerators) or not huge_pages_available()):
        return None
    return {**env, "GLIBC_TUNABLES": ":".join(t for t in (tunables, TUNABLE) if t)}


def rerun_with_huge_pages() -> None:
    """Re-executes this Python process with the tunable set: same pid, arguments and environment
    otherwise. Returns at once when it is set already, unavailable, turned off or not a CPU run."""
    env = environment_with_huge_pages(os.environ, accelerator_files()) if cpu.enabled() else None
    if env is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, sys.orig_argv, env)
