"""Transparent huge pages for XLA:CPU's per-step buffers (Linux, glibc).

XLA:CPU allocates its buffers with malloc at every execution and frees them afterwards; glibc
hands large freed blocks back to the kernel, so every training step faults in fresh 4 KiB pages
(about 303,000 per step of the full model at 128x128 here). With glibc's tunable
`glibc.malloc.hugetlb=1`, malloc asks for transparent huge pages: about 1,000 faults per step,
and the step 1.06-1.44x faster on the development CPU (benchmarks/README.md, "Host memory").
glibc reads tunables only when a process starts, so train.py and evaluate.py re-run themselves
once with it set. D2LJAX_HUGE_PAGES=0 turns this off.
"""
from __future__ import annotations

import os
import platform
import sys
from typing import Mapping, Optional

TUNABLE = "glibc.malloc.hugetlb=1"
OPT_OUT = "D2LJAX_HUGE_PAGES"  # "0": leave the process as it is
THP_MODE = "/sys/kernel/mm/transparent_hugepage/enabled"


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


def environment_with_huge_pages(env: Mapping[str, str]) -> Optional[dict]:
    """`env` plus the tunable (kept beside any other tunables), or None when there is nothing to do."""
    tunables = env.get("GLIBC_TUNABLES", "")
    if env.get(OPT_OUT) == "0" or "glibc.malloc.hugetlb" in tunables or not huge_pages_available():
        return None
    return {**env, "GLIBC_TUNABLES": ":".join(t for t in (tunables, TUNABLE) if t)}


def rerun_with_huge_pages() -> None:
    """Re-executes this Python process with the tunable set: same pid, arguments and environment
    otherwise. Returns at once when it is set already, unavailable, or turned off."""
    env = environment_with_huge_pages(os.environ)
    if env is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, sys.orig_argv, env)
