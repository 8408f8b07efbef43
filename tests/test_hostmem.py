"""d2ljax.cpu.hostmem: the entry points re-run themselves once with glibc's huge-page tunable, on CPU runs."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from d2ljax.cpu import hostmem

ROOT = Path(__file__).resolve().parents[1]
# Prints what the re-run process sees; a second line would mean it ran its body twice.
SCRIPT = ("import os, sys; from d2ljax.cpu import hostmem; hostmem.rerun_with_huge_pages(); "
          "print(os.environ.get('GLIBC_TUNABLES'), sys.argv[1:])")


def test_environment_keeps_other_tunables_and_respects_opt_out(monkeypatch):
    monkeypatch.setattr(hostmem, "huge_pages_available", lambda: True)
    assert hostmem.environment_with_huge_pages({}, [])["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=1"
    env = hostmem.environment_with_huge_pages({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2", "X": "1"}, [])
    assert env == {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1", "X": "1"}
    assert hostmem.environment_with_huge_pages({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, []) is None
    assert hostmem.environment_with_huge_pages({"D2LJAX_HUGE_PAGES": "0"}, []) is None
    assert hostmem.environment_with_huge_pages({"D2LJAX_CPU_TUNING": "0"}, []) is None
    monkeypatch.setattr(hostmem, "huge_pages_available", lambda: False)
    assert hostmem.environment_with_huge_pages({}, []) is None


def test_reruns_only_where_jax_runs_on_the_cpu(monkeypatch):
    """JAX_PLATFORMS decides when set; unset, any accelerator device file means no re-exec."""
    gpu = ["/dev/nvidia0", "/dev/nvidiactl"]
    assert hostmem.jax_runs_on_cpu({}, [])
    assert not hostmem.jax_runs_on_cpu({}, gpu)
    assert not hostmem.jax_runs_on_cpu({}, ["/dev/accel0"])
    assert hostmem.jax_runs_on_cpu({"JAX_PLATFORMS": "cpu"}, gpu)
    assert hostmem.jax_runs_on_cpu({"JAX_PLATFORMS": " CPU "}, [])
    assert hostmem.jax_runs_on_cpu({"JAX_PLATFORMS": ""}, [])
    assert not hostmem.jax_runs_on_cpu({"JAX_PLATFORMS": "cuda"}, [])
    assert not hostmem.jax_runs_on_cpu({"JAX_PLATFORMS": "cuda,cpu"}, [])
    assert not hostmem.jax_runs_on_cpu({"JAX_PLATFORMS": "tpu"}, gpu)
    monkeypatch.setattr(hostmem, "huge_pages_available", lambda: True)
    assert hostmem.environment_with_huge_pages({}, gpu) is None
    assert hostmem.environment_with_huge_pages({"JAX_PLATFORMS": "cuda"}, []) is None
    assert hostmem.environment_with_huge_pages({"JAX_PLATFORMS": "cpu"}, gpu) is not None


def run(env_extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("GLIBC_TUNABLES", "D2LJAX_HUGE_PAGES", "D2LJAX_CPU_TUNING", "JAX_PLATFORMS")}
    out = subprocess.run([sys.executable, "-c", SCRIPT, "--flag", "a b"], cwd=ROOT,
                         env={**env, "JAX_PLATFORMS": "cpu", **env_extra}, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.splitlines()


def test_process_reruns_once_with_the_tunable_and_its_arguments():
    if not hostmem.huge_pages_available():
        pytest.skip("no glibc >= 2.35 with transparent huge pages here")
    assert run({}) == ["glibc.malloc.hugetlb=1 ['--flag', 'a b']"]
    assert run({"D2LJAX_HUGE_PAGES": "0"}) == ["None ['--flag', 'a b']"]
    assert run({"D2LJAX_CPU_TUNING": "0"}) == ["None ['--flag', 'a b']"]  # the one switch, read at import
