"""Stopping training cleanly on SIGINT (Ctrl-C) and SIGTERM (what cloud VMs send before a
preemption): the step under way finishes, a checkpoint is saved at it, and the command exits
with the shell's status for the signal (130, 143). A second signal ends the process at once."""
from __future__ import annotations

import signal
import threading

import jax
import numpy as np

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped for a signal after saving a checkpoint at `step`."""

    def __init__(self, step: int, signum: int):
        super().__init__(f"interrupted at step {step}; checkpoint saved; rerun the same command to continue")
        self.step, self.signum = step, signum
        self.exit_code = 128 + signum  # what a shell reports for a process the signal ended


class StopSignals:
    """While active (a context manager), the first SIGINT or SIGTERM is only recorded, for the
    loop to act on between steps; the handlers then go back to the default action, so that a
    second signal ends the process at once. Outside the main thread (where Python cannot
    handle signals) it does nothing."""

    def __init__(self):
        self.signum = 0
        self._previous: dict = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._record) for s in SIGNALS}
        return self

    def __exit__(self, *exc_info) -> None:
        for s, handler in self._previous.items():
            if handler is not None:  # None: set outside Python, which cannot put it back
                signal.signal(s, handler)

    def _record(self, signum: int, frame) -> None:
        self.signum = signum
        for s in SIGNALS:
            signal.signal(s, signal.SIG_DFL)

    def agreed(self) -> int:
        """The signal every process stops for at this step (0: none): the largest number any
        process received. All processes must call it at every step: with several processes it
        is a collective (an all-gather of one integer)."""
        if jax.process_count() == 1:
            return self.signum
        from jax.experimental import multihost_utils
        return int(np.max(multihost_utils.process_allgather(np.int32(self.signum))))
