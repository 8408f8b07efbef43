"""Learning-rate schedules and the time budget of a training run.

A schedule is lr(step, start, end). 'cosine' and 'constant' span the whole run [0,
num_train_steps); 'budget' spans each invocation [start, end), where `end` is the step the
time budget (config.time_budget_s) is estimated to run out at: BudgetClock measures the step
rate and keeps `end` up to date, so the decay ends with the budget. The budget is counted on
the wall clock or, with config.budget_clock='cpu', in the process's CPU time: a run that is
paused or starved by other work keeps its budget.
"""
from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

SCHEDULES = ("cosine", "constant", "budget")
BUDGET_CLOCKS = ("wall", "cpu")


def clock_reading(kind: str) -> float:
    """Seconds on a budget clock: 'wall' (monotonic) or 'cpu' (this process's CPU time, all its
    threads; child processes such as grain's workers are not counted)."""
    return time.process_time() if kind == "cpu" else time.monotonic()


def create_learning_rate_fn(config: ml_collections.ConfigDict):
    """lr(step, start, end): the learning rate at `step` of a run scheduled over [start, end).

    'cosine': linear warmup from 0 over warmup_steps, then cosine decay to final_lr_fraction
    * learning_rate at num_train_steps; 'constant': the warmup, then flat. Both ignore start and
    end (their run is [0, num_train_steps)). 'budget' (with time_budget_s, see BudgetClock):
    each invocation is one warmup-constant-decay cycle over [start, end), `start` its first
    step and `end` the step its time budget is estimated to end at: warmup from `start`, flat,
    then a cosine decay over the last budget_decay_fraction of the run.
    """
    lr, warmup, final = config.learning_rate, config.warmup_steps, config.final_lr_fraction
    if config.schedule == "cosine":
        schedule = optax.warmup_cosine_decay_schedule(0.0, lr, warmup, config.num_train_steps,
                                                      end_value=lr * final)
    elif config.schedule == "constant":
        schedule = optax.join_schedules([optax.linear_schedule(0.0, lr, max(warmup, 1)),
                                         optax.constant_schedule(lr)], [warmup])
    else:
        return functools.partial(budget_learning_rate, peak=lr, warmup=warmup, final_fraction=final,
                                 decay_fraction=config.budget_decay_fraction)
    return lambda step, start, end: schedule(step)


def budget_learning_rate(step, start, end, *, peak: float, warmup: int, final_fraction: float,
                         decay_fraction: float):
    """The 'budget' schedule (create_learning_rate_fn): warmup from `start`, flat, cosine decay
    over the last `decay_fraction` of [start, end) to final_fraction * peak, then flat."""
    step, start, end = (jnp.asarray(v, jnp.float32) for v in (step, start, end))
    warm = jnp.clip((step - start) / max(warmup, 1), 0.0, 1.0) if warmup else 1.0
    decay_start = end - decay_fraction * (end - start)
    progress = jnp.clip((step - decay_start) / jnp.maximum(end - decay_start, 1.0), 0.0, 1.0)
    return peak * warm * (final_fraction + (1 - final_fraction) * 0.5 * (1 + jnp.cos(jnp.pi * progress)))


def schedule_span(start: int, end: int) -> np.ndarray:
    """The `span` argument of the train step: int32 (start, end) of the schedule."""
    return np.array([start, end], np.int32)


class BudgetClock:
    """The run's time budget (config.time_budget_s on config.budget_clock) and its learning-rate span.

    The 'cosine' and 'constant' schedules span [0, num_train_steps). The 'budget' schedule
    spans [start, end): `end` is re-estimated after every step from the measured step rate
    (the first step, which compiles, left out) and the time left, until the decay begins;
    from then on it is fixed, so the decay is smooth. All processes use process 0's figures.
    """

    def __init__(self, config: ml_collections.ConfigDict, start_step: int, started_at: float):
        """started_at: clock_reading(config.budget_clock) when the run began (setup counts too)."""
        self.budget_s, self.started_at, self.kind = config.time_budget_s, started_at, config.budget_clock
        self.num_train_steps, self.decay_fraction = config.num_train_steps, config.budget_decay_fraction
        self.budget_schedule = config.schedule == "budget"
        self.start = start_step if self.budget_schedule else 0
        self.end = config.num_train_steps
        self.decaying = False
        self.out_of_time = False
        self._first: tuple[float, int] | None = None

    def span(self) -> np.ndarray:
        return schedule_span(self.start, self.end)

    def tick(self, step: int) -> None:
        """Called after each step: updates out_of_time and the estimated end."""
        now = clock_reading(self.kind)
        out_of_time = bool(self.budget_s) and now - self.started_at >= self.budget_s
        end = self.end
        if self._first is None:
            self._first = (now, step)
        elif self.budget_schedule and not self.decaying and now > self._first[0]:
            rate = (step - self._first[1]) / (now - self._first[0])
            left_s = self.budget_s - (now - self.started_at)
            end = min(self.num_train_steps, step + max(int(left_s * rate), 1))
        if jax.process_count() > 1 and self.budget_s:  # every process must stop at the same step
            from jax.experimental import multihost_utils
            out_of_time, end = map(int, multihost_utils.broadcast_one_to_all(np.array([out_of_time, end])))
        self.out_of_time, self.end = bool(out_of_time), end
        self.decaying = self.decaying or step >= self.end - self.decay_fraction * (self.end - self.start)

    def elapsed_s(self) -> float:
        return clock_reading(self.kind) - self.started_at

    def finished(self, step: int) -> bool:
        return step >= self.num_train_steps or self.out_of_time or (self.budget_schedule and step >= self.end)
