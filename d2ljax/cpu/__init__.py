"""CPU-only tuning: forms of D2LNet's operations for what XLA's CPU backend runs slowly.

- `fastconv`: `conv3x3`, the 3x3 convolutions and their gradients as matrix products and
  elementwise sums (Winograd, im2col, few-channel forms) where XLA:CPU's own are slow;
- `fastmath`: float32 atan2 and sin/cos as polynomials XLA vectorises, where XLA:CPU calls the
  C library once per element (the values of `spectral.phase` and `spectral.from_polar`);
- `hostmem`: train.py and evaluate.py re-run themselves once with glibc's huge-page tunable,
  as XLA:CPU's per-execution buffers otherwise fault in fresh pages at every step;
- `hostdevices`: the restore command asks JAX for two CPU devices, and inference splits each
  batch of tiles across them, as one XLA:CPU device leaves part of the second core idle;
- `thresholds`: the shape limits that choose among fastconv's forms, tuned on one 2-core
  machine (benchmarks/cpu_tuning.md gives the measurement and the command behind each).

Other platforms run XLA's own operations: fastconv and fastmath choose their forms with
`lax.platform_dependent`, so a program compiled for a GPU or TPU holds none of them, and hostmem
re-executes only when JAX will run on the CPU. The results are the same to float32 rounding
either way (tests/test_fastconv.py, tests/test_fastmath.py).

**The switch.** `D2LJAX_CPU_TUNING=0` in the environment (read when this package is imported;
"false", "off" and "no" work too), or `d2ljax.cpu.tuning(False)` in Python, turns all of it
off: `conv3x3` is XLA's convolution with XLA's gradients, spectral takes jnp's atan2, sin and
cos (keeping its NaN-safe derivatives), nothing re-executes and JAX keeps one CPU device. The switch is read when JAX
traces: a function jitted and run before a change keeps its compiled program (JAX caches it by
function and shapes) until `jax.clear_caches()`; functions traced afterwards follow the switch.
That is what a same-process A/B wants: compile each variant under its setting, then time them.
"""
from __future__ import annotations

import os
from typing import Mapping

SWITCH = "D2LJAX_CPU_TUNING"
_OFF = ("0", "false", "off", "no")


def requested(env: Mapping[str, str]) -> bool:
    """Whether `env` leaves CPU tuning on: anything but SWITCH set to 0 / false / off / no."""
    return env.get(SWITCH, "1").strip().lower() not in _OFF


_enabled = requested(os.environ)


def enabled() -> bool:
    """Whether CPU tuning is on now (the environment at import, then `tuning`)."""
    return _enabled


class tuning:  # noqa: N801 (used as a function)
    """Turns CPU tuning on or off from this call on; as a context manager, back to the previous
    setting when the block ends.

        d2ljax.cpu.tuning(False)                # for the rest of the process
        with d2ljax.cpu.tuning(False):          # for what JAX traces in the block
            untuned = jax.jit(forward)
            untuned(variables, x)               # traced and compiled here, untuned from now on

    It does not clear JAX's caches: functions traced before the change keep their program (call
    `jax.clear_caches()` to retrace them under the new setting).
    """

    def __init__(self, on: bool):
        global _enabled
        self.previous, _enabled = _enabled, bool(on)

    def __enter__(self) -> "tuning":
        return self

    def __exit__(self, *exc_info) -> None:
        global _enabled
        _enabled = self.previous
